"""Driving the outbox from tests: what a route does once it has answered, and what a worker does."""

from __future__ import annotations

from starlette.applications import Starlette

from inbox.models import Message
from inbox.services import outbox
from inbox.worker import send_due


async def handed_over(app: Starlette, message: Message) -> Message:
    """The stored text handed to Twilio now (a route does this after its answer); as it is then."""
    await outbox.send_now(app.state.outbox, message.id)
    return await Message.get(id=message.id)


async def drain(app: Starlette) -> int:
    """Every text due now handed over, as a worker would; how many."""
    return await send_due(app.state.outbox)
