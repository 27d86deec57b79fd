"""The app under test: run with its lifespan as production runs it, and spoken to in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette

from inbox.app import create_app
from inbox.settings import Settings

from . import database
from .config import PUBLIC_URL
from .fake_twilio import FakeTwilio
from .openapi_check import check_against_document


@asynccontextmanager
async def running(settings: Settings, fake_twilio: FakeTwilio | None = None) -> AsyncIterator[Starlette]:
    """The app made from `settings` with its lifespan running; every row is deleted when it stops.

    With `fake_twilio`, Twilio's status callbacks come back into this app through its real webhook
    route, and all of them must have arrived when the test ends.
    """
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            if fake_twilio is None:
                yield application
            else:
                transport = httpx.ASGITransport(app=application)
                async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as callbacks:
                    fake_twilio._callback_client = callbacks
                    yield application
                    await fake_twilio.callbacks_done()
        finally:
            # Texts still being processed after their answer would write into the next test's tables.
            await application.state.ingest.drained()
            await database.wipe()


def simulator_settings(settings: Settings, **changes: object) -> Settings:
    """`settings` without Twilio credentials: the app's built-in simulator plays Twilio."""
    return settings.with_changes(twilio_account_sid=None, twilio_auth_token=None, **changes)


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    """A client of the app; every API answer it gets is checked against the OpenAPI document."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=PUBLIC_URL,
        event_hooks={"response": [check_against_document]},
    )
