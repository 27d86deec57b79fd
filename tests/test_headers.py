"""Headers on every answer: the Content-Security-Policy, no sniffing, no framing, the referrer
policy, and `Vary: HX-Request` where htmx and a full page get different answers. And no GET writes.

The sweep walks the app's own route table (mounts included), so a new page is covered without
editing this file; a route it cannot fill in with real ids fails it. It runs against the real app
under uvicorn, in development mode with the simulator (so the client phone's pages exist too),
with every kind of row seeded through the real services and webhooks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from tortoise import Tortoise

from inbox.clock import now
from inbox.crypto import SecretBox
from inbox.headers import CONTENT_SECURITY_POLICY
from inbox.models import (
    Alert,
    Assignment,
    AuditEntry,
    ClientPhone,
    Conversation,
    Direction,
    Media,
    MediaStatus,
    Staff,
    StaffSession,
)
from inbox.routes.media import PDF_POLICY, SANDBOXED_POLICY
from inbox.services import campaigns, case_events, import_jobs, outgoing_webhooks, queue
from inbox.services import media as media_service
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.import_files import CsvFile
from inbox.services.messaging import SendRequest
from inbox.services.quick_entries import QuickEntryInput, create_entry
from inbox.services.staff import create_api_token, create_staff
from inbox.settings import Settings
from tests.support.apps import running, simulator_settings
from tests.support.attachments import PNG
from tests.support.config import PUBLIC_URL
from tests.support.live import browser_client
from tests.support.paths import REPO
from tests.support.records import MARIA
from tests.support.servers import serve_asgi
from tests.support.staff import PASSWORD, StaffClient, sign_in
from tests.support.webhooks import inbound_params, post_text

# ---------------------------------------------------------------- what every answer must carry


def assert_security_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") in ("same-origin", "no-referrer"), where
    assert headers.get("x-frame-options") == "DENY", where
    assert len(headers.get_list("content-security-policy")) == 1, where
    policy = headers["content-security-policy"]
    if response.status_code == 200 and re.match(r"(/api/v1)?/media/", response.request.url.path):
        # The files keep their own policy, stricter than the pages'.
        assert policy in (SANDBOXED_POLICY, PDF_POLICY), where
    else:
        assert policy == CONTENT_SECURITY_POLICY, where


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_the_page_policy_allows_only_our_own_scripts_and_styles() -> None:
    policy = directives(CONTENT_SECURITY_POLICY)
    for name in ("default-src", "script-src", "style-src", "connect-src", "form-action"):
        assert policy[name] == ["'self'"], name
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert not [value for values in policy.values() for value in values if "unsafe" in value]


INLINE_CODE = {
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I),
    "<style> element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "hx-on attribute": re.compile(r"\s(?:hx|data-hx)-on", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def inline_code(html: str) -> list[str]:
    return [f"{what}: {match.group(0)!r}" for what, pattern in INLINE_CODE.items() for match in pattern.finditer(html)]


def test_templates_hold_no_inline_script_style_or_handler() -> None:
    found = {
        str(path.relative_to(REPO)): inline_code(path.read_text())
        for path in sorted((REPO / "templates").rglob("*.html"))
    }
    assert {path: what for path, what in found.items() if what} == {}


def test_only_is_htmx_reads_the_hx_request_header() -> None:
    """So every handler that answers htmx differently goes through is_htmx, which adds the Vary."""
    readers = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "inbox").rglob("*.py"))
        if re.search(r"""headers(?:\.get\(|\[)\s*["']HX-Request""", path.read_text(), re.I)
    ]
    assert readers == ["inbox/web.py"]


# ---------------------------------------------------------------- the app's routes


@dataclass(frozen=True)
class Page:
    path: str  # as the route table spells it, e.g. /api/v1/cases/{case_id:int}
    endpoint: str


def get_pages(routes: list[BaseRoute], prefix: str = "") -> Iterator[Page]:
    for route in routes:
        if isinstance(route, Route):
            if route.methods is None or "GET" in route.methods:
                yield Page(prefix + route.path, getattr(route.endpoint, "__qualname__", repr(route.endpoint)))
        elif isinstance(route, Mount):
            if route.routes:
                yield from get_pages(route.routes, prefix + route.path)
            else:  # an app mounted whole (the static files)
                yield Page(prefix + route.path + "/{mounted}", type(route.app).__name__)
        else:
            pytest.fail(f"the header test does not know this kind of route: {route!r}")


PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass
class Seeded:
    """Real ids for every path parameter, and the query some pages need."""

    admin: Staff
    values: dict[str, str]
    queries: dict[str, str]
    bearer: str

    def url_of(self, page: Page) -> str:
        missing = [name for name in PARAMETER.findall(page.path) if name not in self.values]
        if missing:
            pytest.fail(
                f"{page.path} ({page.endpoint}) needs {missing}: seed a row for it in tests/test_headers.py "
                "and add its id to Seeded.values"
            )
        path = PARAMETER.sub(lambda match: self.values[match.group(1)], page.path)
        query = self.queries.get(page.path)
        return f"{path}?{query}" if query else path


# Answers that are right as they are for a signed-in admin; every other page must answer 200. (/readyz: the
# test app runs no outbox worker, so it is rightly not ready.)
EXPECTED_STATUS = {"/login": 303, "/readyz": 503}


@pytest.fixture
async def dev_app(settings: Settings) -> AsyncIterator[Starlette]:
    """Development mode with the simulator: every route the app can have is registered."""
    async with running(simulator_settings(settings, environment="development")) as app:
        yield app


async def seed_every_kind_of_row(app: Starlette) -> Seeded:
    admin, _ = await create_staff(email="ada@example.org", name="Ada Admin", role="admin", password=PASSWORD)
    client = await create_client(name="Maria Lopez", phones=[PhoneInput(MARIA, "mobile", True)])
    case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id, legal_problem="Housing")
    await create_assignment(case_id=case.id, staff_email=admin.email, primary=True)
    entry = await create_entry(admin, QuickEntryInput(name="Hearing", language="", body="Hi {client_first_name}"))
    staff = await sign_in(app, admin)
    try:
        # The client texts a photo from the client phone: a signed webhook, a stored file, an alert.
        reply = await staff.http.post(
            f"/dev/phone/{MARIA}",
            data={"body": "Here is the letter", "csrf_token": staff.csrf},
            files={"photo": ("letter.png", PNG, "image/png")},
        )
        assert reply.status_code == 303, reply.text
        conversation = await Conversation.get(phone=MARIA)
        # We answer with a photo: an outbound file, which Twilio fetches by signed URL.
        await staff.get(f"/conversations/{conversation.id}")
        sent = await staff.post(
            f"/conversations/{conversation.id}/messages",
            {"body": "Thanks"},
            files={"attachment": ("reply.png", PNG, "image/png")},
        )
        assert sent.status_code == 200, sent.text
        scheduled = await queue.schedule_text(
            app.state.outbox,
            admin,
            SendRequest(body="Reminder", conversation_id=conversation.id, send_at=now() + timedelta(days=1)),
        )
        # A hearing on the case, with its reminders scheduled in the outbox.
        hearing = await case_events.create_event(
            app.state.bus,
            admin,
            case.id,
            case_events.EventInput(kind="hearing", title="Eviction hearing", starts_at=now() + timedelta(days=30)),
        )
        # A bulk text, as a draft (its pages; previewing it wrote what it wrote before the walk).
        bulk_text = await campaigns.create_campaign(
            app.state.bus, admin, campaigns.CampaignInput("Clinic closed", "Hi {client_first_name}")
        )
        # A dry run of an import from the upload page's service (its job's pages).
        import_job = await import_jobs.start_import(
            app.state.bus,
            admin,
            [CsvFile("clients.csv", b"external_id,name,mobile,okay_to_text,preferred_language\n")],
            True,
        )
        await import_jobs.wait(import_job.id)
        # An outgoing webhook endpoint (its delivery log page).
        endpoint, _secret = await outgoing_webhooks.create_endpoint(
            SecretBox(app.state.settings.secret_key), admin, "https://cms.example.org/hooks", ["message.received"]
        )
        # And the client answers: the thread is unread again, so a GET that marked it read would show.
        again = await staff.post(f"/dev/phone/{MARIA}", {"body": "Got it"})
        assert again.status_code == 303, again.text
    finally:
        await staff.http.aclose()
    await app.state.provider.wait_idle()  # the simulator's status callbacks
    outbound_media = await Media.get(message__direction=Direction.OUTBOUND, status=MediaStatus.STORED)
    assert await Media.exists(message__direction=Direction.INBOUND, status=MediaStatus.STORED)
    signed = media_service.public_url_of(PUBLIC_URL, str(app.state.settings.secret_key), outbound_media.id)
    phone_media_token = next(iter(app.state.phone_media))
    return Seeded(
        admin=admin,
        values={
            "conversation_id": str(conversation.id),
            "client_id": str(client.id),
            "phone_id": str((await ClientPhone.get(number=MARIA)).id),
            "case_id": str(case.id),
            "message_id": str(scheduled.id),
            "media_id": str(outbound_media.id),
            "alert_id": str((await Alert.first()).id),  # type: ignore[union-attr]
            "assignment_id": str((await Assignment.get(case_id=case.id)).id),
            "channel_id": str(app.state.channel.id),
            "entry_id": str(entry.id),
            "event_id": str(hearing.id),
            "campaign_id": str(bulk_text.id),
            "job_id": import_job.id,
            "endpoint_id": str(endpoint.id),
            "number": MARIA,
            "token": phone_media_token,
            "rest": "no-such-call",
            "mounted": "app.css",
        },
        queries={
            "/media/public/{media_id:int}": signed.split("?", 1)[1],
            "/quick-entries/picker": f"conversation_id={conversation.id}",
            "/quick-entries/fill": f"quick_entry={entry.id}&conversation_id={conversation.id}",
            "/alerts/dashboard/more": f"office=none&after={(await Alert.first()).id}",  # type: ignore[union-attr]
        },
        bearer=await create_api_token(admin.email),
    )


async def every_row() -> dict[str, list[str]]:
    """The whole database, to show that reading pages changed nothing."""
    rows: dict[str, list[str]] = {}
    for model in Tortoise.apps["models"].values():
        if model is StaffSession:
            continue  # the session store notes who was seen (and a visitor's CSRF token): not the app's data
        if model is AuditEntry:
            continue  # reading a transcript, an attachment or the audit CSV is recorded, by design
        rows[model._meta.db_table] = sorted(repr(sorted(row.items())) for row in await model.all().values())
    return rows


@pytest.fixture
async def browser_of(dev_app: Starlette) -> AsyncIterator[Any]:
    """Browser-like clients of the app served by uvicorn, behind a TLS-terminating proxy."""
    clients: list[httpx.AsyncClient] = []
    async with serve_asgi(dev_app, lifespan="off") as server:

        def open_for(session_of: StaffClient | None = None) -> httpx.AsyncClient:
            client = browser_client(server)
            if session_of is not None:
                client.cookies = session_of.http.cookies
            clients.append(client)
            return client

        try:
            yield open_for
        finally:
            for client in clients:
                await client.aclose()


async def fetch(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The answer's headers and, unless it is an endless event stream, its body."""
    async with client.stream("GET", url, headers=headers) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # The stream flows through the middleware: its first event arrives, then we hang up.
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break
        else:
            await response.aread()
    return response


async def test_every_page_answers_with_the_security_headers_and_no_get_writes(dev_app: Starlette, browser_of) -> None:
    seeded = await seed_every_kind_of_row(dev_app)
    admin = await sign_in(dev_app, seeded.admin)
    pages = list(get_pages(dev_app.routes))
    paths = {page.path for page in pages}
    # The walk finds the app's areas, mounts included (a sanity check on the walk itself).
    for expected in ("/", "/dev/phone/{number}", "/api/v1/cases/{case_id}", "/static/{mounted}", "/events"):
        assert expected in paths, expected
    before = await every_row()
    signed_in_browser, signed_out_browser = browser_of(admin), browser_of()
    await admin.http.aclose()
    for page in pages:
        url = seeded.url_of(page)
        headers = {"Authorization": f"Bearer {seeded.bearer}"} if page.path.startswith("/api/") else None
        response = await fetch(signed_in_browser, url, headers)
        assert response.status_code == EXPECTED_STATUS.get(page.path, 200), (url, response.status_code)
        assert_security_headers(response)
        if response.headers.get("content-type", "").startswith("text/html"):
            assert inline_code(response.text) == [], url
        # Signed out, the same page answers a redirect to sign in, a 401 or a 404 (/readyz: as signed in): same headers.
        response = await fetch(signed_out_browser, url)
        assert response.status_code < 500 or response.status_code == EXPECTED_STATUS.get(page.path), (url, response)
        assert_security_headers(response)
    assert (await fetch(signed_out_browser, "/login")).status_code == 200
    assert await every_row() == before, "a GET changed the database"
    assert len(pages) > 40


# ---------------------------------------------------------------- Vary: HX-Request, and the webhooks


def varies_on_htmx(response: httpx.Response) -> bool:
    return "hx-request" in [value.strip().lower() for value in response.headers.get("vary", "").split(",")]


async def test_answers_that_differ_for_htmx_say_vary_hx_request(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=MARIA, assignee=advocate)
    assert (await post_text(anonymous, MARIA, "Which courtroom?", sid="SM" + "1" * 32)).status_code == 200
    conversation = await Conversation.get(phone=MARIA)
    alert = await Alert.get()
    staff = await signed_in(advocate)
    htmx = {"HX-Request": "true"}

    # Signed out: htmx gets 401 and HX-Redirect, a browser a redirect to the sign-in page.
    as_htmx, as_page = await anonymous.get("/", headers=htmx), await anonymous.get("/")
    assert (as_htmx.status_code, as_page.status_code) == (401, 303)
    # Marking read: 204 for htmx, back to the thread for a form.
    read_htmx = await staff.post(f"/conversations/{conversation.id}/read", headers=htmx)
    read_page = await staff.post(f"/conversations/{conversation.id}/read")
    assert (read_htmx.status_code, read_page.status_code) == (204, 303)
    # Sending: a fresh composer for htmx, the whole thread page for a form.
    send_htmx = await staff.post(f"/conversations/{conversation.id}/messages", {"body": "Room 4B."}, headers=htmx)
    send_page = await staff.post(f"/conversations/{conversation.id}/messages", {"body": "At 9."})
    assert send_htmx.text.lstrip().startswith('<form id="composer"') and "<html" in send_page.text
    # Dismissing an alert: an empty answer for htmx, back to the alerts page for a form.
    dismiss_htmx = await staff.post(f"/alerts/{alert.id}/dismiss", headers=htmx)
    dismiss_page = await staff.post(f"/alerts/{alert.id}/dismiss")
    assert (dismiss_htmx.status_code, dismiss_page.status_code) == (200, 303)

    for response in (as_htmx, as_page, read_htmx, read_page, send_htmx, send_page, dismiss_htmx, dismiss_page):
        assert varies_on_htmx(response), (response.request.method, response.request.url.path)
        assert_security_headers(response)
    # A page that answers htmx and a browser alike says nothing of HX-Request.
    assert not varies_on_htmx(await staff.get("/cases"))


async def test_webhook_answers_carry_the_headers_too(anonymous: httpx.AsyncClient) -> None:
    answered = await post_text(anonymous, MARIA, "Hello", sid="SM" + "2" * 32)
    assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/xml")
    forged = await anonymous.post("/webhooks/twilio/messages", data=inbound_params("SM" + "3" * 32, MARIA, "Hi"))
    assert forged.status_code == 403
    for response in (answered, forged):
        assert_security_headers(response)


async def test_a_server_error_carries_the_headers_and_the_api_error_shape(app: Starlette) -> None:
    """Starlette answers a bug from its outermost middleware, outside ResponseHeaders: the handler adds them."""

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app.router.routes[:0] = [Route("/broken-page", broken), Route("/api/v1/broken", broken)]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        page, api = await client.get("/broken-page"), await client.get("/api/v1/broken")
    assert page.status_code == api.status_code == 500
    assert "a bug" not in page.text and "a bug" not in api.text
    assert api.json() == {"error": api.json()["error"], "fields": {}} and "logged" in api.json()["error"]
    for response in (page, api):
        assert_security_headers(response)
