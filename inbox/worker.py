"""The outbox worker: sends scheduled texts when their time comes, and retries attachment downloads.

A row is claimed by a conditional UPDATE (scheduled → queued) before it is sent, so two workers,
or a worker and a web process, can never send the same text twice — on SQLite and PostgreSQL alike.
The same UPDATE is what a person's "cancel" races against (inbox.services.queue): one of them wins.

Before claiming, each due text passes two checks, with the clock as a parameter so tests drive it:
quiet hours (a text due outside the window in the client's time zone waits, and says until when)
and consent (a number that opted out, or is no longer okay to text, since the text was scheduled
gets nothing: the text is cancelled with the reason).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from inbox import clock
from inbox.events import MessageStatusChanged
from inbox.models import Message, MessageStatus, MessageStatusEvent
from inbox.services import messaging, quiet_hours
from inbox.services.errors import Refused
from inbox.services.media import fetch_due_media
from inbox.services.messaging import Outbox, hand_to_provider
from inbox.services.queue import cancel_waiting
from inbox.services.unit_of_work import unit_of_work

log = logging.getLogger(__name__)

# Due texts read at a time: held ones are skipped, so a round may read several pages.
SCAN_PAGE = 500


async def _announce_holds(outbox: Outbox, held: list[tuple[Message, quiet_hours.Hold]]) -> None:
    """A due text that must wait says so beside its status (once, not every round)."""
    for message, hold in held:
        async with unit_of_work(outbox.bus) as uow:
            if await quiet_hours.save_note(message, hold):
                uow.publish(
                    MessageStatusChanged(
                        message_id=message.id,
                        conversation_id=message.conversation_id,
                        status=message.status.value,
                        case_ids=[message.case_id] if message.case_id else [],
                    )
                )


async def due_now(outbox: Outbox, now: datetime, limit: int) -> list[Message]:
    """Due texts that may go now: inside the client's quiet-hours window and still with consent."""
    window = await quiet_hours.current_window()
    ready: list[Message] = []
    held: list[tuple[Message, quiet_hours.Hold]] = []
    due = Message.filter(status=MessageStatus.SCHEDULED, send_at__lte=now).order_by("send_at", "id")
    offset = 0
    while len(ready) < limit:
        page = await due.offset(offset).limit(SCAN_PAGE)
        offset += SCAN_PAGE
        zones = await quiet_hours.zones_for(
            [quiet_hours.Recipient(m.id, m.to_number, m.case_id) for m in page], window.organisation_zone
        )
        for message in page:
            hold = quiet_hours.hold_for(message.send_at, zones[message.id], window, now)
            if hold is not None:
                held.append((message, hold))
                continue
            try:
                await messaging.check_consent(message.to_number)
            except Refused as exc:
                if await cancel_waiting(outbox.bus, message, f"Not sent: {exc.message}", now):
                    offset -= 1  # it left the due list
                continue
            ready.append(message)
            if len(ready) >= limit:
                break
        if len(page) < SCAN_PAGE:
            break
    await _announce_holds(outbox, held)
    return ready


async def claim_due(outbox: Outbox, limit: int = 20, now: datetime | None = None) -> list[Message]:
    # In UTC: on SQLite, Tortoise compares a time with another offset as text, and gets it wrong.
    moment = (now or clock.now()).astimezone(UTC)
    claimed = []
    for message in await due_now(outbox, moment, limit):
        won = await Message.filter(id=message.id, status=MessageStatus.SCHEDULED).update(
            status=MessageStatus.QUEUED, error_message=None
        )
        if won:
            await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.QUEUED, at=clock.now())
            claimed.append(await Message.get(id=message.id))
    return claimed


async def send_due(outbox: Outbox, now: datetime | None = None) -> int:
    """Hand every text that is due, and may go, to the provider. `now`: the clock (tests drive it)."""
    claimed = await claim_due(outbox, now=now)
    for message in claimed:
        await hand_to_provider(outbox, message)
    return len(claimed)


async def fetch_due(outbox: Outbox) -> int:
    """Attachments whose download failed (or whose process died mid-download), when their retry is due."""
    return await fetch_due_media(outbox.provider, outbox.media_dir, outbox.bus)


async def run_worker(outbox: Outbox, interval: float = 1.0) -> None:
    while True:
        for step in (send_due, fetch_due):
            try:
                await step(outbox)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the outbox running; the failure is in the log
                log.exception("The outbox worker failed a round of %s", step.__name__)
        await asyncio.sleep(interval)
