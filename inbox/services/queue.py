"""The SMS queue: texts scheduled for later or waiting to be sent; scheduling, editing, cancelling and
retrying them, and the state of the outbox as people see it.

A scheduled text can be changed until the outbox claims it, and any text can be cancelled while it
waits in our outbox — for its time, or between retries — but not while a worker is handing it to
Twilio, nor once Twilio has it. The same conditional UPDATE as the outbox's claim guards edits,
cancellations and retries here, so a person racing a worker either wins or is told it lost.

Each text in (or just out of) the outbox is in one queue state (`QueueState`): scheduled, waiting,
sending, retrying, stuck (owed to Twilio for longer than the outbox's `stuck_after`), or failed. The
same rule is written twice — in Python for one text (`state_of`) and as a query (`state_query`) for
counts and lists — and the tests hold them to each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum

from tortoise.expressions import Q
from tortoise.functions import Count, Sum

from inbox import clock
from inbox.events import Bus
from inbox.models import (
    AttemptOutcome,
    Channel,
    Direction,
    Message,
    MessageStatus,
    OutboxState,
    SendAttempt,
    Staff,
)
from inbox.services import messaging, organisation, quiet_hours, visibility
from inbox.services import outbox as outbox_service
from inbox.services.delivery_rules import OutboxRules
from inbox.services.errors import Refused, ValidationFailed, require
from inbox.services.messaging import Outbox, SendRequest, status_changed
from inbox.services.pacing import DatabasePacer, Pacer
from inbox.services.unit_of_work import current_unit, unit_of_work
from inbox.sms.errors import explain

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


class QueueState(StrEnum):
    """What the outbox is doing with a text, as the queue page and the API's `state` filter say it."""

    SCHEDULED = "scheduled"  # waiting for the time a person chose
    WAITING = "waiting"  # due, waiting for a worker (hand-sent, automatic, or a scheduled one whose time came)
    SENDING = "sending"  # a worker is handing it to Twilio now
    RETRYING = "retrying"  # Twilio could not take it; tried again at next_attempt_at
    STUCK = "stuck"  # owed to Twilio for longer than stuck_after: a person should look
    FAILED = "failed"  # failed (the queue shows those since the start of today)


# The page's order: what needs a person first.
STATE_ORDER = (
    QueueState.STUCK,
    QueueState.FAILED,
    QueueState.RETRYING,
    QueueState.SENDING,
    QueueState.WAITING,
    QueueState.SCHEDULED,
)
IN_THE_OUTBOX = (OutboxState.WAITING, OutboxState.SENDING, OutboxState.RETRYING)
# Twilio's codes for "busy" and "had a problem" (HTTP 429, 500, 503): the same text may well go later.
TRANSIENT_CODES = frozenset({20429, 20500, 20503})


def due_since(message: Message) -> datetime | None:
    """Since when the outbox has owed the text to Twilio; None when it is not in the outbox.

    A waiting text is owed from its `next_attempt_at` — its time, the end of a quiet-hours hold, or when
    it was written — so a text held for quiet hours is not stuck. A text being tried (retrying, or sending)
    is owed from its first attempt in this round: a person's retry of a failed text starts a new round."""
    if message.outbox_state == OutboxState.WAITING:
        return message.next_attempt_at or message.send_at or message.created_at
    if message.outbox_state in (OutboxState.RETRYING, OutboxState.SENDING):
        return message.first_attempt_at or message.next_attempt_at
    return None


def lease_expired(message: Message, now: datetime) -> bool:
    return message.lease_expires_at is not None and message.lease_expires_at < now


def is_stuck(message: Message, rules: OutboxRules, now: datetime) -> bool:
    """Owed to Twilio for longer than `stuck_after` — and not in a worker's hands right now (a live lease)."""
    since = due_since(message)
    if since is None:
        return False
    if message.outbox_state == OutboxState.SENDING and not lease_expired(message, now):
        return False
    return since < now - rules.stuck_after


def state_of(message: Message, rules: OutboxRules, now: datetime | None = None) -> QueueState | None:
    """The queue state of one text (None: received, or with Twilio, or ended other than failed)."""
    if message.direction != Direction.OUTBOUND:
        return None
    if message.status == MessageStatus.FAILED:
        return QueueState.FAILED
    if message.outbox_state not in IN_THE_OUTBOX:  # (the field is typed as never None)
        return None
    if is_stuck(message, rules, now or clock.now()):
        return QueueState.STUCK
    if message.status == MessageStatus.SCHEDULED:
        return QueueState.SCHEDULED
    return QueueState(message.outbox_state.value)


def _owed_before(cutoff: datetime) -> Q:
    """`due_since` < cutoff, as a query (a waiting text's next attempt; a tried text's first attempt)."""
    return Q(outbox_state=OutboxState.WAITING, next_attempt_at__lt=cutoff) | (
        Q(outbox_state__in=[OutboxState.RETRYING, OutboxState.SENDING])
        & (Q(first_attempt_at__lt=cutoff) | Q(first_attempt_at=None, next_attempt_at__lt=cutoff))
    )


def _owed_since(cutoff: datetime) -> Q:
    """`due_since` >= cutoff: written out rather than negated, since NOT of a NULL comparison is NULL."""
    return Q(outbox_state=OutboxState.WAITING, next_attempt_at__gte=cutoff) | (
        Q(outbox_state__in=[OutboxState.RETRYING, OutboxState.SENDING])
        & (Q(first_attempt_at__gte=cutoff) | Q(first_attempt_at=None, next_attempt_at__gte=cutoff))
    )


def _stuck(rules: OutboxRules, now: datetime) -> Q:
    claimable_or_abandoned = Q(outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING]) | Q(
        outbox_state=OutboxState.SENDING, lease_expires_at__lt=now
    )
    return claimable_or_abandoned & _owed_before(now - rules.stuck_after)


def _not_stuck(rules: OutboxRules, now: datetime) -> Q:
    live_lease = Q(outbox_state=OutboxState.SENDING, lease_expires_at__gte=now)
    return live_lease | _owed_since(now - rules.stuck_after)


def state_query(state: QueueState, rules: OutboxRules, now: datetime, day_start: datetime) -> Q:
    """The texts in `state` (failed: since `day_start`), as `state_of` decides it for one."""
    now, day_start = now.astimezone(UTC), day_start.astimezone(UTC)  # SQLite compares datetimes as text
    outbound = Q(direction=Direction.OUTBOUND)
    if state == QueueState.FAILED:
        return outbound & Q(
            status=MessageStatus.FAILED, timeline__status=MessageStatus.FAILED, timeline__at__gte=day_start
        )
    if state == QueueState.STUCK:
        return outbound & ~Q(status=MessageStatus.FAILED) & _stuck(rules, now)
    fresh = outbound & ~Q(status=MessageStatus.FAILED) & _not_stuck(rules, now)
    if state == QueueState.SCHEDULED:
        return fresh & Q(status=MessageStatus.SCHEDULED)
    in_state = Q(outbox_state=OutboxState(state.value))
    return fresh & in_state & ~Q(status=MessageStatus.SCHEDULED)


async def start_of_today(now: datetime | None = None) -> datetime:
    """Midnight in the organisation's time zone, as UTC: "failed today" starts here."""
    zone = quiet_hours.zone_named(await organisation_zone()) or UTC
    local = (now or clock.now()).astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def may_retry(message: Message, last_attempt: SendAttempt | None) -> bool:
    """A failed text the outbox gave up on, which may well go if tried again: Twilio never took it (no SID),
    and it failed by giving up — on 429s, 5xx, no connection, an unknown outcome, a sending number not ready
    — not by a refusal (21211 not a number, 21610 opted out, 21614 landline …) that would only repeat."""
    if message.direction != Direction.OUTBOUND or message.status != MessageStatus.FAILED:
        return False
    if message.provider_sid is not None or (message.attempt_count == 0 and last_attempt is None):
        return False  # Twilio has it (a failed delivery), or it never went through the outbox
    if last_attempt is not None and last_attempt.outcome in (AttemptOutcome.RETRY, AttemptOutcome.UNKNOWN):
        return True
    return message.error_code is None or message.error_code in TRANSIENT_CODES


def last_attempt_of(message: Message) -> SendAttempt | None:
    """The newest of the text's attempts (`message.attempts` must be fetched)."""
    attempts = sorted(message.attempts, key=lambda attempt: (attempt.at, attempt.id))
    return attempts[-1] if attempts else None


@dataclass(frozen=True)
class QueueEntry:
    message: Message
    zone: str  # the client's time zone (quiet hours)
    hold: quiet_hours.Hold | None
    state: QueueState | None = None
    retryable: bool = False  # a failed text a person may retry

    @property
    def may_change(self) -> bool:
        return self.message.status == MessageStatus.SCHEDULED

    @property
    def may_cancel(self) -> bool:
        """Still waiting in our outbox (for its time, between retries, or stuck there)."""
        return self.message.outbox_state in (OutboxState.WAITING, OutboxState.RETRYING)

    @property
    def may_retry_now(self) -> bool:
        return self.state == QueueState.STUCK or self.retryable


def _waiting(staff_numbers: list[str] | None) -> Q:
    query = Q(direction=Direction.OUTBOUND, status__in=list(WAITING))
    return query if staff_numbers is None else query & Q(conversation__phone__in=staff_numbers)


async def _entries(messages: list[Message], now: datetime, rules: OutboxRules | None = None) -> list[QueueEntry]:
    window = await quiet_hours.current_window()
    recipients = [quiet_hours.Recipient(m.id, m.to_number, m.case_id) for m in messages]
    zones = await quiet_hours.zones_for(recipients, window.organisation_zone)
    rules = rules or OutboxRules()
    entries = []
    for message in messages:
        zone = zones[message.id]
        scheduled = message.status == MessageStatus.SCHEDULED
        hold = quiet_hours.hold_for(message.send_at, zone, window, now) if scheduled else None
        state = state_of(message, rules, now)
        retryable = state == QueueState.FAILED and may_retry(message, last_attempt_of(message))
        entries.append(QueueEntry(message, zone, hold, state, retryable))
    return entries


MESSAGE_RELATIONS = ("conversation", "sent_by", "case", "timeline", "links", "media", "attempts")


async def queue_for(
    staff: Staff,
    limit: int = 50,
    before: int | None = None,
    now: datetime | None = None,
    rules: OutboxRules | None = None,
) -> list[QueueEntry]:
    """Scheduled and queued texts the reader may see, newest first (the API's order)."""
    query = Message.filter(_waiting(await visibility.visible_phone_numbers(staff)))
    if before is not None:
        query = query.filter(id__lt=before)
    messages = await query.order_by("-id").limit(limit).prefetch_related(*MESSAGE_RELATIONS)
    return await _entries(list(messages), now or clock.now(), rules)


async def queue_entry(
    staff: Staff, message_id: int, now: datetime | None = None, rules: OutboxRules | None = None
) -> QueueEntry:
    message = await _outbound_for(staff, message_id)
    await message.fetch_related("sent_by", "case", "media", "attempts")
    return (await _entries([message], now or clock.now(), rules))[0]


# ---------------------------------------------------------------- the queue by state


def _visible(numbers: list[str] | None) -> Q:
    return Q() if numbers is None else Q(conversation__phone__in=numbers)


async def texts_in_state(
    staff: Staff,
    state: QueueState,
    rules: OutboxRules,
    limit: int = 50,
    before: int | None = None,
    now: datetime | None = None,
    newest_first: bool = True,
) -> list[QueueEntry]:
    """The texts in one state that the reader may see: newest first (the API's paging), or for the page in
    the order a person works through them (soonest due first; failed ones newest first)."""
    moment = now or clock.now()
    query = Message.filter(
        state_query(state, rules, moment, await start_of_today(moment)),
        _visible(await visibility.visible_phone_numbers(staff)),
    )
    if before is not None:
        query = query.filter(id__lt=before)
    if newest_first or state == QueueState.FAILED:
        ordered = query.order_by("-id")
    else:
        ordered = query.order_by("next_attempt_at", "id")
    messages = await ordered.distinct().limit(limit).prefetch_related(*MESSAGE_RELATIONS)
    return await _entries(list(messages), moment, rules)


async def with_twilio(staff: Staff, limit: int = 200) -> list[QueueEntry]:
    """Texts Twilio has taken but not yet sent on (`queued`/`accepted` with a SID): nothing here can stop them."""
    query = Message.filter(
        _waiting(await visibility.visible_phone_numbers(staff)),
        outbox_state=None,
        status__in=[MessageStatus.QUEUED, MessageStatus.ACCEPTED],
    )
    messages = await query.order_by("-id").limit(limit).prefetch_related(*MESSAGE_RELATIONS)
    return await _entries(list(messages), clock.now())


@dataclass
class ChannelBacklog:
    """One sending number's share of the queue, and how long its due texts take at its pace."""

    channel: Channel
    counts: dict[QueueState, int] = field(default_factory=dict)
    due_texts: int = 0
    due_segments: int = 0
    through_in: timedelta = timedelta(0)

    @property
    def pace_words(self) -> str:
        """ "about 3 min at 1 segment/s" (or "nothing due")."""
        if not self.due_segments:
            return "nothing due"
        rate = f"{self.channel.throughput} segment{'s' if self.channel.throughput != 1 else ''}/s"
        return f"{duration_words(self.through_in)} at {rate}"


def duration_words(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"about {math.ceil(seconds / 60)} min"
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


@dataclass(frozen=True)
class QueueOverview:
    totals: dict[QueueState, int]
    channels: list[ChannelBacklog]


def _counted(entries: list[QueueEntry], per_channel: dict[int, dict[QueueState, int]], state: QueueState) -> None:
    """A state's texts per sending number, counted from its listed texts (their conversation fetched)."""
    for entry in entries:
        counts = per_channel.setdefault(entry.message.conversation.channel_id, {})
        counts[state] = counts.get(state, 0) + 1


async def overview(
    staff: Staff,
    rules: OutboxRules,
    now: datetime | None = None,
    pacer: Pacer | None = None,
    listed: Mapping[QueueState, list[QueueEntry]] | None = None,
    listed_limit: int = 0,
) -> QueueOverview:
    """How many texts the reader may see are in each state, per sending number, and each number's backlog:
    the texts due now (segments) and when they will be through at its throughput.

    `listed`: texts the caller has already read by state (`texts_in_state` with `listed_limit`): a state whose
    list came back shorter than its limit is complete, so it is counted from the list instead of asked again
    (the queue page: six COUNT queries saved while the queue is short)."""
    moment = (now or clock.now()).astimezone(UTC)
    day_start = await start_of_today(moment)
    visible = _visible(await visibility.visible_phone_numbers(staff))
    per_channel: dict[int, dict[QueueState, int]] = {}
    for state in STATE_ORDER:
        complete = (listed or {}).get(state)
        if complete is not None and len(complete) < listed_limit:
            _counted(complete, per_channel, state)
            continue
        rows = (
            await Message.filter(state_query(state, rules, moment, day_start), visible)
            .annotate(texts=Count("id", distinct=True))
            .group_by("conversation__channel_id")
            .values_list("conversation__channel_id", "texts")
        )
        for channel_id, texts in rows:
            per_channel.setdefault(channel_id, {})[state] = texts
    due = Q(outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING], next_attempt_at__lte=moment) | Q(
        outbox_state=OutboxState.SENDING
    )
    backlog = {
        channel_id: (texts, segments or 0)
        for channel_id, texts, segments in await Message.filter(due, visible, direction=Direction.OUTBOUND)
        .annotate(texts=Count("id"), segments_due=Sum("segments"))
        .group_by("conversation__channel_id")
        .values_list("conversation__channel_id", "texts", "segments_due")
    }
    channel_ids = list(set(per_channel) | set(backlog))
    channels = await Channel.filter(id__in=channel_ids).order_by("label", "id") if channel_ids else []
    lines = []
    for channel in channels:
        texts, segments = backlog.get(channel.id, (0, 0))
        schedule = await (pacer or DatabasePacer()).schedule_of(channel)
        starts = rules.free_at(schedule, channel.throughput, moment)
        through = (starts - moment) + timedelta(seconds=segments / max(channel.throughput, 1))
        lines.append(ChannelBacklog(channel, per_channel.get(channel.id, {}), texts, segments, through))
    totals = {state: sum(line.counts.get(state, 0) for line in lines) for state in STATE_ORDER}
    return QueueOverview(totals, lines)


# ---------------------------------------------------------------- retrying


NOT_STUCK = "This text is still on its way in the outbox; it is not stuck, so there is nothing to retry yet."
CANNOT_RETRY = "Only a text that is stuck, or that failed without Twilio refusing it, can be retried."


async def retry_now(
    bus: Bus, staff: Staff, message_id: int, rules: OutboxRules, now: datetime | None = None
) -> Message:
    """A person's "Retry now": a stuck text becomes due at once; a failed text the outbox gave up on goes
    back in the outbox for a new round of attempts (`queued`, retrying). Consent is not checked here: the
    outbox checks it as the text leaves. One conditional UPDATE decides, so a retry racing a worker either
    wins or is told what happened. The caller hands the text over once it has answered."""
    moment = (now or clock.now()).astimezone(UTC)
    message = await _outbound_for(staff, message_id)
    await message.fetch_related("attempts")
    state = state_of(message, rules, moment)
    async with unit_of_work(bus):
        if state == QueueState.STUCK and await outbox_service.due_at_once(message, staff.name, moment):
            return await _announced(message)
        if state == QueueState.FAILED and may_retry(message, last_attempt_of(message)):
            if await outbox_service.new_round(message, staff.name, moment):
                return await _announced(message)
    await message.refresh_from_db()
    raise Refused(_why_not_retried(message, rules, moment))


async def _announced(message: Message) -> Message:
    await message.refresh_from_db()
    current_unit().publish(status_changed(message))
    return message


def _why_not_retried(message: Message, rules: OutboxRules, now: datetime) -> str:
    """Words a person can act on, for a retry that cannot be."""
    if message.status == MessageStatus.CANCELED:
        return "This text was cancelled, so it cannot be retried; send a new one instead."
    if message.status == MessageStatus.FAILED:
        if message.provider_sid is not None:
            return (
                "Twilio took this text and it failed on the way to the phone; sending it again is a new text. "
                + (_action(message.error_code) or "")
            ).strip()
        if message.error_code is not None and message.error_code not in TRANSIENT_CODES:
            return f"Twilio refused this text, and would refuse it again. {_action(message.error_code)}".strip()
        return CANNOT_RETRY
    if message.outbox_state == OutboxState.SENDING and not lease_expired(message, now):
        return BEING_SENT.replace("cancelled or changed", "retried")
    if message.outbox_state in IN_THE_OUTBOX:
        return NOT_STUCK
    if message.provider_sid is not None:
        return "Twilio already has this text; it cannot be sent again from here."
    return CANNOT_RETRY


def _action(code: int | None) -> str:
    why = explain(code)
    return f"{why.summary} {why.action}" if why else ""


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
