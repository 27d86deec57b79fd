"""A client confirming an event by text: "C" or "CONFIRM" in answer to a reminder that asked for it.

Read like a keyword (the whole message, trimmed, any casing), but only in its window: the number was
sent a reminder asking for confirmation, that reminder has left (it was handed to Twilio at or before the
reply), and its event has neither started nor been cancelled. Y and YES never confirm: they are opt-in
keywords (inbox.services.keywords) and mean consent. A C outside any window is an ordinary text.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from inbox.events import Bus
from inbox.models import Alert, CaseEvent, Direction, EventKind, EventReminder, Message, MessageStatus
from inbox.services import alerts, case_events
from inbox.services.unit_of_work import unit_of_work

# An unconfirmed hearing this close raises an alert to the case's assignees (issue 9: "48 hours ahead").
UNCONFIRMED_ALERT_AHEAD = timedelta(hours=48)
CONFIRM_WORDS = frozenset({"C", "CONFIRM"})
# The reminder's text has left our hands: Twilio took it (or reported on it). A scheduled, cancelled or
# failed reminder never reached the client, so a C cannot be answering it.
LEFT = (
    MessageStatus.ACCEPTED,
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.PARTIALLY_DELIVERED,
)


def is_confirmation_word(body: str) -> bool:
    return (body or "").strip().upper() in CONFIRM_WORDS


async def event_awaiting_confirmation(sender: str, at: datetime) -> CaseEvent | None:
    """The event a C from `sender` at `at` confirms: the newest reminder asking for confirmation sent to
    that number whose event has not started, is not cancelled and is not yet confirmed."""
    reminders = (
        EventReminder.filter(
            ask_confirmation=True,
            message__direction=Direction.OUTBOUND,
            message__to_number=sender,
            message__status__in=LEFT,
            message__first_attempt_at__lte=at,
            event__starts_at__gt=at,
            event__cancelled_at__isnull=True,
            event__confirmed_at__isnull=True,
        )
        .order_by("-message__first_attempt_at", "-id")
        .prefetch_related("event")
    )
    newest = await reminders.first()
    return newest.event if newest is not None else None


async def confirm_by_text(message: Message, at: datetime) -> CaseEvent | None:
    """Marks the event the inbound `message` confirms (inside the inbound unit of work); None when the
    text is not a confirmation (then it is an ordinary text, with its alert)."""
    if not is_confirmation_word(message.body):
        return None
    event = await event_awaiting_confirmation(message.from_number, at)
    if event is None:
        return None
    # Conditional, so two C's racing confirm once and the first time stands.
    if await CaseEvent.filter(id=event.id, confirmed_at__isnull=True).update(confirmed_at=at):
        case_events.announce(event, "confirmed")
    await event.refresh_from_db()
    return event


# ---------------------------------------------------------------- the unconfirmed-hearing alert


async def alert_unconfirmed_hearings(bus: Bus, now: datetime) -> int:
    """Hearings that asked for a C, are not confirmed, not cancelled and start within 48 hours: an alert to
    the case's assignees, once per hearing; how many were raised. The worker calls it every minute.

    An Alert is about a text (its message is required, and it is unique per case and text), so this one is
    tied to the hearing's first reminder that asks for a C: the alert shows what the client was asked, and
    answering the client clears it like any alert (when the organisation has that setting). "Once" is that
    no alert exists on the case for any of the hearing's reminders: no new column is needed, and a
    dismissed alert is never raised again."""
    hearings = await CaseEvent.filter(
        kind=EventKind.HEARING,
        cancelled_at__isnull=True,
        confirmed_at__isnull=True,
        starts_at__gt=now,
        starts_at__lte=now + UNCONFIRMED_ALERT_AHEAD,
        reminders__ask_confirmation=True,
        reminders__message_id__isnull=False,
    ).distinct()
    raised = 0
    for hearing in hearings:
        raised += await _alert_once(bus, hearing)
    return raised


async def _alert_once(bus: Bus, hearing: CaseEvent) -> bool:
    reminders = await EventReminder.filter(event_id=hearing.id, message_id__isnull=False).order_by("id")
    message_ids = [r.message_id for r in reminders if r.message_id is not None]
    asking = next((r.message_id for r in reminders if r.ask_confirmation and r.message_id is not None), None)
    if asking is None or await Alert.exists(case_id=hearing.case_id, message_id__in=message_ids):
        return False
    async with unit_of_work(bus):
        message = await Message.get(id=asking)
        return await alerts.raise_alert(message, hearing.case_id, await alerts.alert_policy())
