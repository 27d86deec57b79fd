"""The outbox worker: sends scheduled texts when their time comes, and retries attachment downloads.

A row is claimed by a conditional UPDATE (scheduled → queued) before it is sent, so two workers,
or a worker and a web process, can never send the same text twice — on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import logging

from inbox.models import Message, MessageStatus, MessageStatusEvent
from inbox.services.media import fetch_due_media
from inbox.services.messaging import Outbox, hand_to_provider, now

log = logging.getLogger(__name__)


async def claim_due(limit: int = 20) -> list[Message]:
    due = await Message.filter(status=MessageStatus.SCHEDULED, send_at__lte=now()).order_by("send_at").limit(limit)
    claimed = []
    for message in due:
        won = await Message.filter(id=message.id, status=MessageStatus.SCHEDULED).update(status=MessageStatus.QUEUED)
        if won:
            await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.QUEUED, at=now())
            claimed.append(await Message.get(id=message.id))
    return claimed


async def send_due(outbox: Outbox) -> int:
    claimed = await claim_due()
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
