"""Headers every answer carries: a Content-Security-Policy that lets pages run only our own files,
no framing, no sniffing, no referrer beyond our own site, `Vary: HX-Request` where a handler
answered htmx and a full page differently, and `X-Accel-Buffering: no` on event streams (nginx).

Pure ASGI on purpose: it edits `http.response.start` and passes every body message through as it
comes, so the endless event streams (`/events`, `/api/v1/events`) flow exactly as without it.
Starlette's BaseHTTPMiddleware would wrap them in a stream of its own.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Scripts and styles come only from /static: no inline <script>, style="" or on…= handlers, and
# no eval (htmx's allowEval is off in base.html). `data:` images: the empty favicon of base.html.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),  # frame-ancestors, for browsers that predate it
)

_VARIES_ON_HTMX = "varies_on_htmx"


def with_security_headers(response: Response) -> Response:
    """For the one answer ResponseHeaders never sees: a server error, which Starlette answers from its
    outermost middleware."""
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    return response


def note_varies_on_htmx(request: Request) -> None:
    """Records that this answer depends on the HX-Request header, so caches keep the two apart."""
    setattr(request.state, _VARIES_ON_HTMX, True)


class ResponseHeaders:
    """Adds SECURITY_HEADERS to every HTTP answer that lacks them (a route's own, stricter policy
    stays), and `Vary: HX-Request` to answers whose handler asked whether the request was htmx's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI, and MutableHeaders needs it
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                # nginx buffers proxied answers by default, which would hold events back: an event stream says not to.
                if headers.get("content-type", "").startswith("text/event-stream"):
                    headers.setdefault("X-Accel-Buffering", "no")
                # Request.state lives in scope["state"], so what the handler noted is visible here.
                if scope.get("state", {}).get(_VARIES_ON_HTMX):
                    headers.add_vary_header("HX-Request")
            await send(message)

        await self.app(scope, receive, send_with_headers)
