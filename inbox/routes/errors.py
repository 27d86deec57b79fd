"""Every error answer in one place: the API's JSON shape `{"error": "…", "fields": {…}}` (always both keys)
and the staff pages' error page, for service errors, HTTP errors (404, 405 with `Allow`), server errors, and
query strings that can never be valid."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from inbox.headers import with_security_headers
from inbox.routes.guards import printable, unstorable
from inbox.services.errors import ServiceError
from inbox.services.throttle import Throttled
from inbox.web import current_staff, render, templates

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
PLAIN_PREFIXES = ("/webhooks/", "/static/")  # callers that are programs but not API clients: plain text

HTTP_WORDS = {
    404: "There is no such page.",
    405: "This address does not take {method}: it takes {allowed}.",
}
API_WORDS = {404: "There is no such API path."}


def error_body(message: str, fields: Mapping[str, str] | None = None) -> bytes:
    return json.dumps({"error": message, "fields": dict(fields or {})}, ensure_ascii=False).encode()


def error_answer(
    status: int, message: str, fields: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """The API's error: JSON with `error` and `fields`, whatever the status."""
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(error_body(message, fields), status_code=status, headers=headers, media_type="application/json")


def error_headers(exc: ServiceError) -> dict[str, str]:
    """What an error answer says beyond its body: when a throttled caller may try again."""
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else {}


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if is_api(request):
        return error_answer(exc.status, exc.message, exc.fields, headers=error_headers(exc))
    if request.url.path.startswith(PLAIN_PREFIXES):
        return PlainTextResponse(exc.message, status_code=exc.status)
    await current_staff(request)  # for the header, should the error come before the handler looked
    return render(request, "error.html", {"message": exc.message, "status": exc.status}, status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request.app.router.routes, as_received(request.scope))
        headers["Allow"] = ", ".join(sorted(allowed))
        message = HTTP_WORDS[405].format(method=request.method, allowed=", ".join(sorted(allowed)))
    elif exc.status_code == 404 and message == "Not Found":  # Starlette's own: no route matched
        message = (API_WORDS if is_api(request) else HTTP_WORDS)[404]
    if is_api(request):
        return error_answer(exc.status_code, message, headers=headers)
    if request.url.path.startswith(PLAIN_PREFIXES):
        return PlainTextResponse(message, status_code=exc.status_code, headers=headers)
    # No handler ran for a path that matched no route (an id out of range, a mistyped address), so the
    # signed-in person is looked up here: the page keeps its header (navigation, Account, Sign out).
    await current_staff(request)
    page = render(request, "error.html", {"message": message, "status": exc.status_code}, status_code=exc.status_code)
    page.headers.update(headers)
    return page


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug: logged by the server (Starlette re-raises it after this answer); the caller gets the usual shape."""
    if is_api(request):
        answer = error_answer(500, "Something went wrong on our side. It has been logged; please try again later.")
    else:
        answer = PlainTextResponse("Internal Server Error", status_code=500)
    return with_security_headers(answer)


def as_received(scope: Scope) -> Scope:
    """The request's scope as the app received it, before a Mount moved its root path (to route it again)."""
    return {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", "")), "path_params": {}}


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """Every method some route takes at this path: Starlette's own 405 names only the first route's."""
    methods: set[str] = set()
    for route in routes:
        match, child_scope = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount) and not route.routes:  # a mounted app of its own: static files
            methods |= {"GET", "HEAD"}
        elif isinstance(route, Mount):
            methods |= allowed_methods(route.routes, {**scope, **child_scope})
        elif isinstance(route, Route) and route.methods:
            methods |= route.methods
    return methods


# ---------------------------------------------------------------- query strings


class QueryStringGuard:
    """Refuses, with a 422 naming the parameter, a query string holding text the database cannot store (a NUL
    byte, `?q=%00`), before any handler reads it. Webhooks are left alone: their signature is checked first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/webhooks/"):
            refused = unstorable_parameters(scope.get("query_string", b""))
            if refused:
                response = refusal(Request(scope), refused)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def unstorable_parameters(query_string: bytes) -> dict[str, str]:
    if b"%00" not in query_string and b"\x00" not in query_string:
        return {}  # the common case, without decoding anything
    refused = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        reason = unstorable(name) or unstorable(value)
        if reason:
            refused[printable(name)] = reason
    return refused


def refusal(request: Request, fields: dict[str, str]) -> Response:
    message = "Please correct the highlighted fields."
    if is_api(request):
        return error_answer(422, message, fields)
    words = "; ".join(f"{name}: {reason}" for name, reason in fields.items())
    context = {"message": f"This address cannot be used. {words}", "status": 422, "staff": None, "csrf_token": ""}
    # No session here (this runs before the app's handlers): a bare page, as for a signed-out visitor.
    return templates.TemplateResponse(request, "error.html", context, status_code=422)
