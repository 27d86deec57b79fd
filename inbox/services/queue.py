"""The SMS queue: texts scheduled for later or waiting to be sent; scheduling, editing and cancelling them.

A scheduled text can be changed until the outbox claims it, and any text can be cancelled while it
waits in our outbox — for its time, or between retries — but not while a worker is handing it to
Twilio, nor once Twilio has it. The same conditional UPDATE as the outbox's claim guards edits and
cancellations here, so a cancel racing a worker either wins or is told it lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from tortoise.expressions import Q

from inbox import clock
from inbox.events import Bus
from inbox.models import Direction, Message, MessageStatus, OutboxState, Staff
from inbox.services import messaging, organisation, quiet_hours, visibility
from inbox.services.errors import Refused, ValidationFailed, require
from inbox.services.messaging import Outbox, SendRequest, status_changed
from inbox.services.unit_of_work import unit_of_work

WAITING = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.ACCEPTED)
HANDED_OVER = "This text has already been handed to Twilio for sending; it can no longer be cancelled or changed."
BEING_SENT = "This text is being handed to Twilio right now; it can no longer be cancelled or changed."
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


# ---------------------------------------------------------------- times people type


def parse_local_time(raw: str, zone_name: str | None, offset_minutes: str | None, fallback_zone: str) -> datetime:
    """A `datetime-local` value ("2026-11-21T15:00") in the viewer's zone → an aware UTC time.

    The browser sends its IANA zone (right across daylight-saving changes) and its current
    offset; without JavaScript neither is sent and the organisation's zone is meant."""
    text = (raw or "").strip()
    if not text:
        raise ValidationFailed("Choose when to send it.", {"send_at": "Choose a date and time to send it."})
    if not LOCAL_TIME.fullmatch(text):
        raise ValidationFailed(
            "That is not a date and time.", {"send_at": "Give a date and time like 2026-11-21 15:00."}
        )
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("That is not a date and time.", {"send_at": "That date does not exist."}) from None
    zone = quiet_hours.zone_named(zone_name)
    if zone is not None:
        return naive.replace(tzinfo=zone).astimezone(UTC)
    if offset_minutes and re.fullmatch(r"[+-]?\d{1,4}", offset_minutes.strip()):
        minutes = int(offset_minutes)
        if -16 * 60 < minutes < 16 * 60:
            return naive.replace(tzinfo=timezone(timedelta(minutes=minutes))).astimezone(UTC)
    fallback = quiet_hours.zone_named(fallback_zone) or UTC
    return naive.replace(tzinfo=fallback).astimezone(UTC)


def local_value(moment: datetime | None, zone_name: str) -> str:
    """The `datetime-local` value for a time, in a zone (the form's starting value)."""
    if moment is None:
        return ""
    return moment.astimezone(quiet_hours.zone_named(zone_name) or UTC).strftime("%Y-%m-%dT%H:%M")


def _require_future(send_at: datetime, now: datetime) -> None:
    if send_at <= now:
        require({"send_at": "Choose a time in the future (to send now, use Send)."})


# ---------------------------------------------------------------- scheduling


async def schedule_text(outbox: Outbox, staff: Staff, request: SendRequest, now: datetime | None = None) -> Message:
    """A text a person chose to send later: the time must be ahead (the API may pass a past time to send at once)."""
    if request.send_at is None:
        require({"send_at": "Choose a date and time to send it."})
    else:
        _require_future(request.send_at, now or clock.now())
    return await messaging.send_text(outbox, staff, request)


# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class QueueEntry:
    message: Message
    zone: str  # the client's time zone (quiet hours)
    hold: quiet_hours.Hold | None

    @property
    def may_change(self) -> bool:
        return self.message.status == MessageStatus.SCHEDULED


def _waiting(staff_numbers: list[str] | None) -> Q:
    query = Q(direction=Direction.OUTBOUND, status__in=list(WAITING))
    return query if staff_numbers is None else query & Q(conversation__phone__in=staff_numbers)


async def _entries(messages: list[Message], now: datetime) -> list[QueueEntry]:
    window = await quiet_hours.current_window()
    recipients = [quiet_hours.Recipient(m.id, m.to_number, m.case_id) for m in messages]
    zones = await quiet_hours.zones_for(recipients, window.organisation_zone)
    entries = []
    for message in messages:
        zone = zones[message.id]
        scheduled = message.status == MessageStatus.SCHEDULED
        hold = quiet_hours.hold_for(message.send_at, zone, window, now) if scheduled else None
        entries.append(QueueEntry(message, zone, hold))
    return entries


MESSAGE_RELATIONS = ("conversation", "sent_by", "case", "timeline", "links", "media")


async def queue_for(
    staff: Staff, limit: int = 50, before: int | None = None, now: datetime | None = None
) -> list[QueueEntry]:
    """Scheduled and queued texts the reader may see, newest first (the API's order)."""
    query = Message.filter(_waiting(await visibility.visible_phone_numbers(staff)))
    if before is not None:
        query = query.filter(id__lt=before)
    messages = await query.order_by("-id").limit(limit).prefetch_related(*MESSAGE_RELATIONS)
    return await _entries(list(messages), now or clock.now())


async def queue_page(staff: Staff, limit: int = 200, now: datetime | None = None) -> list[QueueEntry]:
    """The page's order: texts already on their way first, then scheduled ones, soonest due first."""
    waiting = Message.filter(_waiting(await visibility.visible_phone_numbers(staff)))
    on_the_way = (
        await waiting.exclude(status=MessageStatus.SCHEDULED)
        .order_by("-id")
        .limit(limit)
        .prefetch_related(*MESSAGE_RELATIONS)
    )
    scheduled = (
        await waiting.filter(status=MessageStatus.SCHEDULED)
        .order_by("send_at", "id")
        .limit(limit)
        .prefetch_related(*MESSAGE_RELATIONS)
    )
    return await _entries([*on_the_way, *scheduled], now or clock.now())


async def queue_entry(staff: Staff, message_id: int, now: datetime | None = None) -> QueueEntry:
    message = await _outbound_for(staff, message_id)
    await message.fetch_related("sent_by", "case", "media")
    return (await _entries([message], now or clock.now()))[0]


async def _outbound_for(staff: Staff, message_id: int) -> Message:
    message = await messaging.get_message_for(staff, message_id)
    if message.direction != Direction.OUTBOUND:
        raise Refused("Only texts we send can be scheduled, changed or cancelled.")
    return message


# ---------------------------------------------------------------- cancelling


async def cancel_waiting(bus: Bus, message: Message, reason: str | None = None, now: datetime | None = None) -> bool:
    """waiting (scheduled, due, between retries) → canceled, with its timeline step and event; False when
    a worker got there first."""
    async with unit_of_work(bus):
        won = await messaging.cancel_if_waiting(message, reason, now or clock.now())
    await message.refresh_from_db()
    return won


async def cancel_scheduled(bus: Bus, staff: Staff, message_id: int, now: datetime | None = None) -> Message:
    """A person cancels a scheduled text. Cancelling it again is harmless; once handed to Twilio, 409."""
    message = await _outbound_for(staff, message_id)
    if await cancel_waiting(bus, message, f"Cancelled by {staff.name} before it was sent.", now):
        return message
    if message.status == MessageStatus.CANCELED:
        return message
    raise Refused(BEING_SENT if message.outbox_state == OutboxState.SENDING else HANDED_OVER)


# ---------------------------------------------------------------- editing


async def edit_scheduled(
    bus: Bus, staff: Staff, message_id: int, body: str, send_at: datetime, now: datetime | None = None
) -> Message:
    """New text or time for a scheduled text, while it is still waiting in our outbox."""
    at = now or clock.now()
    message = await _outbound_for(staff, message_id)
    if message.status == MessageStatus.CANCELED:
        raise Refused("This text was cancelled; schedule a new one instead.")
    if message.status != MessageStatus.SCHEDULED:
        raise Refused(HANDED_OVER)
    await message.fetch_related("media")
    errors: dict[str, str] = {}
    if not body.strip() and not message.media:
        errors["body"] = "Write a message."
    organisation.check_text_length(errors, "body", body, await organisation.text_limit())
    if send_at <= at:
        errors["send_at"] = "Choose a time in the future."
    require(errors)
    async with unit_of_work(bus) as uow:
        if not await messaging.reschedule(message, body, send_at):
            raise Refused(HANDED_OVER)
        await message.refresh_from_db()
        await quiet_hours.note_hold(message, at)
        # The bubble's status line says when it goes (and any hold) in every open tab.
        uow.publish(status_changed(message))
    return message


async def organisation_zone() -> str:
    return (await organisation.current()).time_zone
