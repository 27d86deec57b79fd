"""Shared HTTP helpers: templates, the signed-in user, CSRF, and turning service errors into answers."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup
from starlette.background import BackgroundTasks
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as Message_

from inbox import clock
from inbox.headers import note_varies_on_htmx
from inbox.models import Message, MessageStatus, Role, Staff
from inbox.phones import for_people
from inbox.routes.guards import printable, unstorable
from inbox.services import messaging, queue, visibility
from inbox.services import outbox as outbox_service
from inbox.services.delivery_rules import OutboxRules
from inbox.services.errors import Forbidden, ValidationFailed
from inbox.services.linking import REASON_WORDS
from inbox.services.messaging import Outbox
from inbox.session_middleware import session_record
from inbox.sms.errors import explain

ROOT = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(ROOT / "templates"))

STATUS_LABELS: dict[str, tuple[str, str]] = {
    # status: (icon, words for people and screen readers)
    MessageStatus.SCHEDULED: ("🕓", "scheduled"),
    MessageStatus.ACCEPTED: ("…", "queued"),
    MessageStatus.QUEUED: ("…", "queued"),
    MessageStatus.SENDING: ("…", "sending"),
    MessageStatus.SENT: ("✓", "sent"),
    MessageStatus.DELIVERED: ("✓✓", "delivered"),
    MessageStatus.READ: ("✓✓", "read"),
    MessageStatus.PARTIALLY_DELIVERED: ("✓", "partly delivered"),
    MessageStatus.UNDELIVERED: ("⚠", "not delivered"),
    MessageStatus.FAILED: ("⚠", "failed"),
    MessageStatus.CANCELED: ("✕", "canceled"),
    MessageStatus.RECEIVED: ("", "received"),
}


def status_label(status: str) -> dict[str, str]:
    icon, words = STATUS_LABELS.get(status, ("", str(status)))
    return {"icon": icon, "words": words}


def iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def _in_words(seconds: int) -> str:
    """A span of time as the pages say it ("5 min ago", "in 2 h"); static/app.js's relativeWords says the same."""
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now" if not ahead else "in a moment"
    if seconds < 3600:
        amount = f"{seconds // 60} min"
    elif seconds < 86400:
        amount = f"{seconds // 3600} h"
    elif seconds < 7 * 86400:
        amount = f"{seconds // 86400} d"
    else:
        return ""  # further off, the date says it better (time_ago)
    return f"in {amount}" if ahead else f"{amount} ago"


def time_ago(moment: datetime | None, now: datetime | None = None) -> Markup:
    """Every time on every page: how long ago (or until), in words, with the exact moment on hover. static/app.js
    re-renders it in the viewer's zone (its title) and keeps the words current; without it they are the server's."""
    if moment is None:
        return Markup("")
    words = _in_words(int(((now or clock.now()) - moment).total_seconds())) or moment.strftime("%b %d")
    exact = moment.strftime("%b %d, %H:%M UTC")
    # Written directly, not by Markup.format (which escapes each part through a Formatter: a third of an inbox
    # row's rendering): every part is made here from a datetime and digits, so none has anything to escape.
    return Markup(f'<time datetime="{iso(moment)}" title="{exact}" data-local>{words}</time>')


# One style across the pages: the older name stays for the templates that use it.
local_time = time_ago


def exact_time(moment: datetime | None) -> Markup:
    """A moment to the second, in the viewer's zone (static/app.js): a text's status timeline, where seconds matter."""
    if moment is None:
        return Markup("")
    exact = moment.strftime("%b %d, %H:%M:%S UTC")
    return Markup('<time datetime="{}" data-local="exact">{}</time>').format(iso(moment), exact)


def reason_once(words: str, reason: str) -> str:
    """A status's reason without the status said again: "canceled — Canceled: the client texted STOP." reads
    "canceled — the client texted STOP."."""
    head, colon, rest = reason.partition(":")
    return rest.strip() if colon and head.strip().lower() == words.lower() else reason


@dataclass(frozen=True)
class OutboxLine:
    """What a text's status line says while our outbox has it (or once it is stuck there)."""

    state: str  # a QueueState value: waiting, sending, retrying, stuck
    icon: str
    cause: str = ""  # retrying: why the last attempt did not go, as the outbox stored it
    at: datetime | None = None  # retrying: the next attempt; stuck: since when it is owed to Twilio
    attempt: int = 0  # retrying: the number of the next attempt …
    of: int = 0  # … of this many in a round


def outbox_line(message: Message, rules: OutboxRules | None = None) -> OutboxLine | None:
    """The outbox's part of a status line; None when the status says it all (scheduled, with Twilio, ended)."""
    rules = rules or OutboxRules()
    state = queue.state_of(message, rules, clock.now())
    if state == queue.QueueState.STUCK:
        return OutboxLine(state.value, "⚠", at=queue.due_since(message))
    if state == queue.QueueState.RETRYING:
        cause = (message.error_message or "Not taken yet.").strip().rstrip(".")
        attempt = min(message.attempt_count + 1, rules.max_attempts)
        return OutboxLine(state.value, "↻", cause, message.next_attempt_at, attempt, rules.max_attempts)
    if state in (queue.QueueState.SENDING, queue.QueueState.WAITING):
        return OutboxLine(state.value, "…")
    return None


templates.env.filters["phone"] = for_people
templates.env.filters["link_reason"] = lambda reason: REASON_WORDS.get(reason, reason)
templates.env.filters["local_time"] = local_time
templates.env.filters["time_ago"] = time_ago
templates.env.filters["exact_time"] = exact_time
templates.env.globals["reason_once"] = reason_once
templates.env.globals["status_label"] = status_label
templates.env.globals["explain_error"] = explain
templates.env.globals["outbox_line"] = outbox_line


# ---------------------------------------------------------------- the signed-in user


class OneVisibilityAnswer:
    """Who the reader may see is asked once per request (services/visibility.py keeps the answers), and
    asked afresh once the answer has started: a stream's events never use a kept one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with visibility.one_answer_per_request() as stop:

            async def started(message: Message_) -> None:
                if message["type"] == "http.response.start":
                    stop()
                await send(message)

            await self.app(scope, receive, started)


async def current_staff(request: Request) -> Staff | None:
    if "staff" not in request.state._state:
        staff_id = request.session.get("staff_id")
        record = session_record(request)
        if record is not None and record.staff is not None and record.staff_id == staff_id:
            staff = record.staff if record.staff.is_active else None  # loaded with the session
        else:
            staff = await Staff.get_or_none(id=staff_id, is_active=True) if staff_id else None
        request.state.staff = staff
    signed_in: Staff | None = request.state.staff
    return signed_in


def client_address(request: HTTPConnection) -> str:
    """The ASGI client host. Behind a proxy that is the proxy, unless uvicorn trusts its
    X-Forwarded-For (--proxy-headers with --forwarded-allow-ips naming the proxy)."""
    return request.client.host if request.client else "unknown"


class LoginRequired(Exception):
    pass


async def require_staff(request: Request) -> Staff:
    staff = await current_staff(request)
    if staff is None:
        raise LoginRequired()
    return staff


async def require_admin(request: Request, what: str = "change the organisation's settings") -> Staff:
    staff = await require_staff(request)
    if staff.role != Role.ADMIN:
        raise Forbidden(f"Only administrators may {what}.")
    return staff


def login_redirect(request: Request, exc: Exception) -> Response:
    target = request.url.path
    if is_htmx(request):
        # htmx asked from a page (a send, a pane): after signing in, come back to that page, not to the
        # fragment's address.
        response = Response(status_code=401)
        response.headers["HX-Redirect"] = _login_url(_page_path(request))
        return response
    return RedirectResponse(f"/login?next={target}", status_code=303)


def _page_path(request: Request) -> str:
    """The path of the page an htmx request came from (HX-Current-URL), when it is one of ours."""
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    same_site = not page.netloc or page.netloc == request.url.netloc
    return page.path if same_site and page.path.startswith("/") and not page.path.startswith("//") else ""


def _login_url(page_path: str) -> str:
    return f"/login?{urlencode({'next': page_path})}" if page_path and page_path != "/" else "/login"


# ---------------------------------------------------------------- CSRF


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token (field or htmx header) matches the session's and none of its text
    is something the database cannot store (a NUL byte): every page's form comes through here."""
    form = await request.form()
    sent = str(form.get("csrf_token") or request.headers.get("X-CSRF-Token") or "")
    expected = request.session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        await form.close()  # an uploaded file's spooled copy is closed, not left to the garbage collector
        raise HTTPException(
            403, "This form has expired or did not come from Case Inbox. Reload the page and try again."
        )
    refused = {
        printable(name): reason for name, value in form.multi_items() if (reason := _unstorable_field(name, value))
    }
    if refused:  # the error page names the field: the form's own pages do not expect this error
        words = " ".join(f"“{name}”: {reason}" for name, reason in refused.items())
        raise ValidationFailed(f"This form cannot be saved. {words}", refused)
    return form


class LazyCsrfToken:
    """The session's CSRF token, made only if a page prints it: an error page shown to a visitor who
    is not signed in (no forms) then stores no session for them."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def __str__(self) -> str:
        return csrf_token(self._request)

    def __html__(self) -> str:
        return str(self)  # URL-safe characters only: nothing to escape


def _unstorable_field(name: str, value: str | UploadFile) -> str | None:
    return unstorable(name) or (unstorable(value) if isinstance(value, str) else None)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    context = dict(context or {})
    context.setdefault("staff", getattr(request.state, "staff", None))
    outbox = getattr(request.app.state, "outbox", None)
    context.setdefault("outbox_rules", outbox.rules if outbox is not None else None)  # status lines: "attempt 2 of 6"
    context["csrf_token"] = LazyCsrfToken(request)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def is_htmx(request: Request) -> bool:
    """Whether htmx asked; asking marks the answer `Vary: HX-Request` (inbox.headers), because a
    handler that looks answers the two kinds of request differently."""
    note_varies_on_htmx(request)
    return request.headers.get("HX-Request") == "true"


Endpoint = Callable[[Request], Awaitable[Response]]


def send_after(response: Response, outbox: Outbox, *messages: Message) -> Response:
    """Texts due now are handed to Twilio once this answer has gone: a person never waits on Twilio,
    and the bubble ticks live as the outbox reports. (Anything not sent this way — the process ends,
    the channel is busy — is in the outbox, where the workers find it.)"""
    due = [message.id for message in messages if messaging.due_now(message)]
    if due:
        tasks = response.background if isinstance(response.background, BackgroundTasks) else BackgroundTasks()
        if response.background is not None and response.background is not tasks:
            tasks.tasks.append(response.background)
        tasks.add_task(outbox_service.send_all_now, outbox, due)
        response.background = tasks
    return response
