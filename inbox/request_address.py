"""Hands each HTTP request's client address to the audit trail (inbox.services.audit.address)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from inbox.services import audit


class RequestAddress:
    """Pure ASGI, so the context variable it sets is the one the route's task sees. The address is the ASGI
    client's (the proxy's, unless uvicorn trusts its X-Forwarded-For), as inbox.web.client_address reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = audit.address.set(client[0] if client else "unknown")
        try:
            await self.app(scope, receive, send)
        finally:
            audit.address.reset(token)
