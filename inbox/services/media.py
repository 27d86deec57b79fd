"""Attachments (MMS): what arrived with a text, fetched after the webhook is answered, stored by hash."""

from __future__ import annotations

from collections.abc import Sequence

from inbox.models import Media, MediaStatus, Message

MAX_MEDIA_ITEMS = 10  # Twilio's own limit per message
MAX_MEDIA_BYTES = 5 * 1024 * 1024


async def register_inbound_media(message: Message, items: Sequence[tuple[str, str]]) -> list[Media]:
    """A row per MediaUrlN, inside the inbound transaction: pending, or refused past the 10-item limit."""
    rows = []
    for position, (url, content_type) in enumerate(items):
        refused = position >= MAX_MEDIA_ITEMS
        rows.append(
            await Media.create(
                message=message,
                position=position,
                source_url=url,
                declared_type=content_type,
                status=MediaStatus.REFUSED if refused else MediaStatus.PENDING,
                error=f"Not kept: a text carries at most {MAX_MEDIA_ITEMS} attachments." if refused else None,
            )
        )
    return rows
