"""Driving the outbox from tests: what a route does once it has answered, what a worker does, and
waiting for texts to leave the outbox (events and conditions, never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from starlette.applications import Starlette

from inbox.models import Message, Organisation, OutboxState, SendAttempt, Staff
from inbox.services import outbox
from inbox.services.messaging import Outbox, SendRequest, send_text
from inbox.worker import send_due

from .events import WAIT_SECONDS


async def handed_over(app: Starlette, message: Message) -> Message:
    """The stored text handed to Twilio now (a route does this after its answer); as it is then."""
    await outbox.send_now(app.state.outbox, message.id)
    return await Message.get(id=message.id)


async def drain(app: Starlette) -> int:
    """Every text due now handed over, as a worker would; how many."""
    return await send_due(app.state.outbox)


async def no_quiet_hours() -> None:
    """Scheduled texts may leave at any hour: a test of faults must not depend on the time it runs at."""
    await Organisation.all().update(quiet_hours_start=0, quiet_hours_end=24)


async def stored_texts(
    box: Outbox, staff: Staff, case_id: int, bodies: Sequence[str], send_at: datetime | None = None
) -> list[Message]:
    """Texts put in the outbox as a person sends or schedules them, not yet handed over (a route would
    hand a text due now to `send_now` after its answer; here the test decides who sends them)."""
    return [await send_text(box, staff, SendRequest(body=body, case_id=case_id, send_at=send_at)) for body in bodies]


async def until(condition: Callable[[], Awaitable[bool]], what: str = "the condition") -> None:
    """Wait for `condition` to hold (a safety net of WAIT_SECONDS, never a claim about speed)."""
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"waited {WAIT_SECONDS} s for {what}") from None


async def out_of_the_outbox(*message_ids: int) -> None:
    """Wait until each text has left the outbox: accepted, failed or canceled."""

    async def left() -> bool:
        return not await Message.filter(id__in=message_ids, outbox_state__not_isnull=True).exists()

    await until(left, f"messages {message_ids} to leave the outbox")


async def outcomes(message_id: int) -> list[str]:
    """The text's attempts, oldest first, as their outcome words."""
    return [a.outcome.value for a in await SendAttempt.filter(message_id=message_id).order_by("id")]


def in_the_outbox(message: Message) -> bool:
    return message.outbox_state in (OutboxState.WAITING, OutboxState.SENDING, OutboxState.RETRYING)
