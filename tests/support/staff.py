"""Staff as the tests meet them: signing in through the real form, CSRF tokens, a signed-in browser."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from inbox.models import Staff

from .apps import asgi_client

PASSWORD = "correct horse battery"  # every test staff member's password

MakeStaff = Callable[..., Awaitable[Staff]]  # the make_staff fixture
ApiClientFactory = Callable[[Staff], Awaitable[httpx.AsyncClient]]  # the api_client fixture


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def post_form(http: httpx.AsyncClient, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    """A form posted the way a browser does: the page first, for its CSRF token."""
    form_page = await http.get(page)
    assert form_page.status_code == 200, form_page.text
    return await http.post(action, data={**data, "csrf_token": csrf_of(form_page.text)})


async def post_sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """The sign-in form, filled in and sent; the answer as it came."""
    return await post_form(http, "/login", "/login", {"email": email, "password": password})


@dataclass
class StaffClient:
    """A signed-in browser: keeps the session cookie and the page's CSRF token."""

    http: httpx.AsyncClient
    staff: Staff
    csrf: str = ""

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(url, **kwargs)
        if 'name="csrf_token"' in response.text:
            self.csrf = csrf_of(response.text)
        return response

    async def post(
        self, url: str, data: dict[str, Any] | None = None, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return await self.http.post(url, data=form, **kwargs)


async def sign_in(app: Starlette, staff: Staff) -> StaffClient:
    """A browser of the app, signed in as `staff` and on the inbox page (so it holds a CSRF token)."""
    http = asgi_client(app)
    response = await post_sign_in(http, staff.email)
    assert response.status_code == 303, response.text
    client = StaffClient(http, staff)
    await client.get("/")
    return client
