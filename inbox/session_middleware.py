"""request.session backed by the database (inbox.services.sessions), as a pure ASGI middleware.

Routes keep using `request.session` as a dict. The middleware loads it from the row the cookie's key
names and, when the response starts, saves what changed: a new row (and cookie) when there was
none, or when the signed-in person changed (a new key at sign-in, so a key planted before it is
worth nothing); the row's columns when only its contents changed; nothing but an occasional "last
seen" otherwise. An emptied session deletes its row and the cookie.

Why not starsessions: it writes the whole session back on every response (its metadata changes on
each request), keeps no link from staff to their sessions, and knows one lifetime, not an idle
timeout beside an absolute one. See NOTES.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inbox.models import StaffSession
from inbox.services import sessions
from inbox.services.sessions import SessionRules

COOKIE_NAME = "inbox_session"
_RECORD = "inbox.session_record"
# Paths that never read the session: no database read for a stylesheet, and none for a health check
# (/healthz must answer while the database does not).
_SKIPPED_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics")


def session_record(request: HTTPConnection) -> StaffSession | None:
    """The stored session this request came with (None: no cookie, or one that ended or expired)."""
    record: StaffSession | None = request.scope.get(_RECORD)
    return record


class ServerSessionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: SessionRules,
        secure: bool,
        clock: Callable[[], datetime],
        cookie_name: str = COOKIE_NAME,
    ) -> None:
        self.app = app
        self.rules = rules
        self.secure = secure
        self.clock = clock
        self.cookie_name = cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(_SKIPPED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = HTTPConnection(scope).cookies.get(self.cookie_name) or None
        record = await sessions.find_live(key, self._now(scope)) if key else None
        loaded = sessions.contents(record)
        scope["session"] = copy.deepcopy(loaded)
        scope[_RECORD] = record

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._save(scope, message, key, record, loaded)
            await send(message)

        await self.app(scope, receive, send_with_session)

    def _now(self, scope: Scope) -> datetime:
        # Tests move the app's clock (app.state.clock) to expire sessions without waiting.
        app = scope.get("app")
        clock = getattr(getattr(app, "state", None), "clock", None) or self.clock
        moment: datetime = clock()
        return moment

    async def _save(
        self, scope: Scope, message: Message, key: str | None, record: StaffSession | None, loaded: dict[str, Any]
    ) -> None:
        session: dict[str, Any] = scope["session"]
        now = self._now(scope)
        headers = MutableHeaders(scope=message)
        if session == loaded:
            if record is not None:
                await sessions.touch(record, now, self.rules)
            elif key:
                self._clear_cookie(headers)  # it named a session that ended or expired
            return
        if not session:
            if record is not None:
                await sessions.forget(record)
            if key:
                self._clear_cookie(headers)
            return
        if record is None or session.get(sessions.STAFF_KEY) != loaded.get(sessions.STAFF_KEY):
            if record is not None:
                await sessions.forget(record)
            new_key, _ = await sessions.start(session, now, self.rules)
            self._set_cookie(headers, new_key, int(self.rules.lifetime.total_seconds()))
            return
        await sessions.store(record, session, now, self.rules)

    def _set_cookie(self, headers: MutableHeaders, value: str, max_age: int) -> None:
        cookie: SimpleCookie = SimpleCookie()
        cookie[self.cookie_name] = value
        morsel = cookie[self.cookie_name]
        morsel["path"] = "/"
        morsel["max-age"] = max_age
        morsel["httponly"] = True
        morsel["samesite"] = "lax"
        if self.secure:
            morsel["secure"] = True
        headers.append("set-cookie", morsel.OutputString())

    def _clear_cookie(self, headers: MutableHeaders) -> None:
        self._set_cookie(headers, "", 0)
