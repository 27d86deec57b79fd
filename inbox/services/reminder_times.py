"""When a reminder goes, and what its state is: shared by a client's event reminders (case_events) and a staff
member's own (staff_reminders). A reminder is a scheduled text in the outbox, or none (`skipped`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from inbox.models import EventReminder, Message, MessageStatus, OutboxState, StaffReminder
from inbox.services import quiet_hours

DAY = 24 * 60


@dataclass(frozen=True)
class ReminderSpec:
    """When a reminder goes: `minutes_before` the start, or — with `at_local_time` — on the client's
    calendar day that lead time before the start, at that time."""

    minutes_before: int
    at_local_time: str | None = None
    quick_entry_id: int | None = None
    ask_confirmation: bool = False


def reminder_status(reminder: EventReminder | StaffReminder) -> str:
    """pending (scheduled in our outbox), sending, sent, failed, canceled, or skipped (never made)."""
    message: Message | None = reminder.message
    if message is None:
        return "skipped"
    if message.status == MessageStatus.SCHEDULED:
        return "pending"
    if message.status == MessageStatus.CANCELED:
        return "canceled"
    if message.status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
        return "failed"
    return "sending" if message.outbox_state is not None else "sent"


def is_pending(message: Message | None) -> bool:
    return (
        message is not None
        and message.status == MessageStatus.SCHEDULED
        and message.outbox_state == OutboxState.WAITING
    )


def reminder_time(starts_at: datetime, spec: ReminderSpec, zone_name: str) -> datetime:
    """When the reminder goes (UTC). With `at_local_time`: the client's calendar day of (start − lead
    time), at that wall-clock time — zoneinfo gives the offset of that day, so DST is right."""
    lead = starts_at - timedelta(minutes=spec.minutes_before)
    if spec.at_local_time is None:
        return lead.astimezone(UTC)
    zone = quiet_hours.zone_named(zone_name) or UTC
    hour, minute = (int(part) for part in spec.at_local_time.split(":"))
    day = lead.astimezone(zone).date()
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
