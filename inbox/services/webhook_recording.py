"""Outgoing webhooks, recorded: the delivery rows of a unit of work's events, written in its transaction
(inbox.services.unit_of_work calls `record_deliveries` just before committing). Delivering them, and the
endpoints admins keep, are inbox.services.outgoing_webhooks'; this part is apart because every unit of work
reaches it, and it must not reach back (the endpoints' changes are announced through a unit of work)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from inbox import clock
from inbox.events import (
    AlertDismissed,
    AlertRaised,
    CampaignProgressed,
    ConsentChanged,
    Event,
    MessageReceived,
    MessageStatusChanged,
)
from inbox.models import Campaign, CampaignState, DeliveryState, WebhookDelivery, WebhookEndpoint
from inbox.services import settings_cache

# The event types an endpoint may subscribe to, and what each means (the admin page and the API show these).
EVENT_TYPES: dict[str, str] = {
    "message.received": "A client's text arrived.",
    "message.status": "A text we sent moved on: queued, sent, delivered, undelivered, failed or canceled.",
    "consent.changed": "A number's okay-to-text state changed (STOP, START, a person, an import).",
    "alert.raised": "A client's text on a case is waiting for its assignees.",
    "alert.dismissed": "An alert was dismissed or answered.",
    "campaign.finished": "Every text of a bulk message has left the outbox.",
}


def _event_time(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def outgoing_of(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The webhook type and data of an event, or None when no endpoint can subscribe to it."""
    match event:
        case MessageReceived():
            return "message.received", {
                "message_id": event.message_id,
                "conversation_id": event.conversation_id,
                "case_ids": list(event.case_ids),
            }
        case MessageStatusChanged():
            return "message.status", {
                "message_id": event.message_id,
                "conversation_id": event.conversation_id,
                "status": event.status,
                "error_code": event.error_code,
                "case_ids": list(event.case_ids),
                "campaign_id": event.campaign_id,
            }
        case ConsentChanged():
            return "consent.changed", {
                "phone": event.phone,
                "okay_to_text": event.okay_to_text,
                "opted_out": event.opted_out,
                "conversation_ids": list(event.conversation_ids),
                "consent_event_ids": list(event.consent_event_ids),
                "message_id": event.message_id,
            }
        case AlertRaised():
            data = {"alert_id": event.alert_id, "case_id": event.case_id, "message_id": event.message_id}
            return "alert.raised", data | {"count": event.count}
        case AlertDismissed():
            return "alert.dismissed", {
                "alert_id": event.alert_id,
                "case_id": event.case_id,
                "message_id": event.message_id,
            }
        case CampaignProgressed():
            # Progress is also starting, pausing and resuming: only the finish is told (it happens once).
            if await Campaign.exists(id=event.campaign_id, state=CampaignState.FINISHED):
                return "campaign.finished", {"campaign_id": event.campaign_id}
    return None


async def record_deliveries(events: Sequence[Event]) -> int:
    """Inside the transaction that caused `events`: one delivery row per (endpoint, event) subscribed to.
    Costs one small query when some event is of a kind endpoints take, none otherwise."""
    kinds = (MessageReceived, MessageStatusChanged, ConsentChanged, AlertRaised, AlertDismissed, CampaignProgressed)
    candidates = [event for event in events if isinstance(event, kinds)]
    if not candidates:
        return 0
    # This process's copy (settings_cache): read from the database once, not in every unit of work.
    endpoints = await settings_cache.webhook_subscribers()
    if not endpoints:
        return 0
    now = clock.now()
    rows: list[WebhookDelivery] = []
    seen: set[str] = set()
    for event in candidates:
        outgoing = await outgoing_of(event)
        if outgoing is None:
            continue
        kind, data = outgoing
        body = json.dumps({"type": kind, "timestamp": _event_time(now), "data": data}, separators=(",", ":"))
        if body in seen:  # one unit of work telling the same thing twice
            continue
        seen.add(body)
        rows += [
            WebhookDelivery(
                endpoint_id=endpoint.id,
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event_type=kind,
                body=body,
                state=DeliveryState.WAITING,
                next_attempt_at=now,
            )
            for endpoint in endpoints
            if kind in endpoint.events
        ]
    if rows:
        await _insert(rows)
    return len(rows)


async def _insert(rows: list[WebhookDelivery]) -> None:
    """The delivery rows, in a savepoint: an endpoint deleted by another process whose news has not reached this
    one's copy yet fails its row's foreign key, and must not roll back the change that caused the event."""
    try:
        async with in_transaction():
            await WebhookDelivery.bulk_create(rows)
    except IntegrityError:
        settings_cache.forget(settings_cache.ENDPOINTS)
        ids = {row.endpoint_id for row in rows}
        existing = {endpoint.id for endpoint in await WebhookEndpoint.filter(id__in=ids).only("id")}
        kept = [row for row in rows if row.endpoint_id in existing]
        if kept:
            await WebhookDelivery.bulk_create(kept)
