"""Case events (hearings, appointments, meetings, deadlines) and their client reminders.

A reminder is an ordinary scheduled outbound text in the outbox, linked to its event and filed on the
case: consent and quiet hours are decided when it leaves, like any scheduled text. Its time is worked
out in the client's time zone (quiet_hours.choose_zone): "1 day before at 9 a.m." is 9 a.m. on the
client's calendar, whatever daylight saving did in between; a plain lead time ("2 hours before") is
that span before the start. Moving an event moves its pending reminders (and re-words them); cancelling
it cancels them. A reminder whose time has already passed is not created (`skipped` says why).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from inbox import clock
from inbox.events import Bus, CaseEventChanged
from inbox.models import (
    Case,
    CaseEvent,
    Client,
    EventAttendee,
    EventKind,
    EventReminder,
    Message,
    Organisation,
    QuickEntry,
    Role,
    Staff,
)
from inbox.services import (
    audit,
    directory,
    messaging,
    organisation,
    quick_entries,
    quiet_hours,
    staff_reminders,
    visibility,
)
from inbox.services.errors import Forbidden, NotFound, Refused, require
from inbox.services.limits import check_fits

# Re-exported: the routes, the API's shapes and the demo name them as this module's.
from inbox.services.reminder_times import DAY as DAY
from inbox.services.reminder_times import ReminderSpec as ReminderSpec
from inbox.services.reminder_times import is_pending as is_pending
from inbox.services.reminder_times import reminder_status as reminder_status
from inbox.services.reminder_times import reminder_time as reminder_time
from inbox.services.unit_of_work import current_unit, unit_of_work

CANCELLED_ENTRY_NAME = "Event cancelled"  # the quick entry offered when an event is cancelled, if there is one
CANCELLED_TEXT = "{organisation_name}: {event_title} at {event_time} on {event_date} is cancelled."
REMINDER_ENTRY_NAME = "Event reminder"  # the quick entry used when a reminder names none (variants per language)
BUILT_IN_TEXT = "Reminder from {organisation_name}: {event_title} at {event_time} on {event_date}. {event_place}"
LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MOVED_INTO_THE_PAST = "The event moved: this reminder's time has passed."
PASSED = "Its time had passed when the event was saved."
NO_NUMBER = "The client has no phone number on file."
MAX_LEAD_MINUTES = 366 * 24 * 60
# Ends a reminder that asks for confirmation. Plain GSM-7 (no curly quotes), so it never turns the text into
# UCS-2; it adds 20 characters, which a 140-character reminder pushes into a second segment.
ASK_TO_CONFIRM = "Reply C to confirm."
CONFIRM_ENTRY_NAME = "Confirmation request"  # the quick entry asking for a C (variants per language), if there is one
# Built-in requests by language (base codes); the quick entry overrides them. Plain GSM-7 too.
BUILT_IN_CONFIRMATION_REQUESTS = {"en": ASK_TO_CONFIRM, "es": "Responda C para confirmar."}


BUILT_IN_REMINDERS: dict[EventKind, list[ReminderSpec]] = {
    EventKind.HEARING: [ReminderSpec(7 * DAY, "09:00"), ReminderSpec(DAY, "09:00")],
    EventKind.APPOINTMENT: [ReminderSpec(DAY), ReminderSpec(120)],
    EventKind.MEETING: [ReminderSpec(DAY)],
    EventKind.DEADLINE: [ReminderSpec(7 * DAY, "09:00"), ReminderSpec(DAY, "09:00")],
}


@dataclass(frozen=True)
class EventInput:
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime | None = None
    place: str = ""
    notes: str = ""
    attendee_emails: tuple[str, ...] = ()
    reminders: tuple[ReminderSpec, ...] | None = None  # None: the organisation's defaults for the kind
    # Whether every reminder asks for a C (the case page's one choice per event); None: as each reminder says.
    ask_confirmation: bool | None = None


# ---------------------------------------------------------------- the organisation's defaults


def _spec_of(raw: dict[str, Any]) -> ReminderSpec:
    return ReminderSpec(
        int(raw["minutes_before"]),
        raw.get("at_local_time"),
        raw.get("quick_entry_id"),
        bool(raw.get("ask_confirmation", False)),
    )


async def default_reminders(kind: EventKind) -> list[ReminderSpec]:
    """The organisation's reminders for a kind of event, else the built-in ones."""
    return defaults_of(await organisation.current(), kind)


def defaults_of(org: Organisation, kind: EventKind) -> list[ReminderSpec]:
    saved = org.reminder_defaults
    if saved is not None and kind.value in saved:
        return [_spec_of(raw) for raw in saved[kind.value]]
    return list(BUILT_IN_REMINDERS[kind])


async def save_default_reminders(staff: Staff, defaults: dict[EventKind, list[ReminderSpec]]) -> None:
    """Admins set the reminders every new event of a kind gets (events already made keep theirs)."""
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may change the default reminders.")
    org = await organisation.current()
    before = {kind.value: _described(defaults_of(org, kind)) for kind in EventKind}
    org.reminder_defaults = {
        kind.value: [
            {
                "minutes_before": s.minutes_before,
                "at_local_time": s.at_local_time,
                "ask_confirmation": s.ask_confirmation,
            }
            for s in specs
        ]
        for kind, specs in defaults.items()
    }
    after = {kind.value: _described(defaults_of(org, kind)) for kind in EventKind}
    async with in_transaction():
        await org.save(update_fields=["reminder_defaults"])
        changes = audit.setting_changes(before, after)
        await audit.record(audit.Action.SETTING_CHANGED, staff, org, setting="reminder_defaults", **changes)


def _described(specs: list[ReminderSpec]) -> str:
    """A kind's default reminders for the audit trail, short: "10080 min at 09:00, 1440 min at 09:00 asking C"."""
    words = [
        f"{s.minutes_before} min"
        + (f" at {s.at_local_time}" if s.at_local_time else "")
        + (" asking C" if s.ask_confirmation else "")
        for s in specs
    ]
    return ", ".join(words) or "none"


# ---------------------------------------------------------------- checking


async def _check(data: EventInput) -> tuple[EventKind, list[Staff]]:
    errors: dict[str, str] = {}
    kind = None
    try:
        kind = EventKind(data.kind)
    except ValueError:
        errors["kind"] = "Choose hearing, appointment, meeting or deadline."
    if not data.title.strip():
        errors["title"] = "Give the event a title."
    check_fits(errors, "title", data.title.strip(), CaseEvent)
    check_fits(errors, "place", data.place.strip(), CaseEvent)
    if data.starts_at.tzinfo is None:
        errors["starts_at"] = "Give the time with its offset or zone."
    if data.ends_at is not None and (data.ends_at.tzinfo is None or data.ends_at < data.starts_at):
        errors["ends_at"] = "The end must be after the start, with its offset or zone."
    for index, spec in enumerate(data.reminders or ()):
        if not 0 <= spec.minutes_before <= MAX_LEAD_MINUTES:
            errors[f"reminders.{index}.minutes_before"] = "Give a lead time between 0 minutes and a year."
        if spec.at_local_time is not None and not LOCAL_TIME.fullmatch(spec.at_local_time):
            errors[f"reminders.{index}.at_local_time"] = "Give a time of day as HH:MM (09:00)."
        if spec.quick_entry_id is not None and not await QuickEntry.exists(id=spec.quick_entry_id):
            errors[f"reminders.{index}.quick_entry_id"] = "No quick entry has this id."
    attendees: list[Staff] = []
    for email in data.attendee_emails:
        person = await Staff.get_or_none(email=email.strip().lower()) if len(email) <= 254 else None
        if person is None:
            errors["attendee_emails"] = f"No staff account has the email {email}."
        else:
            attendees.append(person)
    require(errors)
    assert kind is not None
    return kind, attendees


# ---------------------------------------------------------------- reading


async def visible_case(staff: Staff, case_id: int) -> Case:
    case = await Case.get_or_none(id=case_id)
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


async def get_event(staff: Staff, event_id: int) -> CaseEvent:
    event = await CaseEvent.get_or_none(id=event_id).prefetch_related(
        "case", "attendees__staff", "reminders__message", "staff_reminders__message"
    )
    if event is None or not await visibility.can_see_case(staff, event.case):
        raise NotFound("No event has this id.")
    return event


async def events_of_case(staff: Staff, case_id: int) -> list[CaseEvent]:
    """A case's events, soonest first, cancelled ones included (they say so)."""
    case = await visible_case(staff, case_id)
    return await events_of_this_case(case.id)


async def events_of_this_case(case_id: int) -> list[CaseEvent]:
    """A case's events for a reader already allowed to see the case (the live hub decides who is)."""
    return (
        await CaseEvent.filter(case_id=case_id)
        .order_by("starts_at", "id")
        .prefetch_related("attendees__staff", "reminders__message", "staff_reminders__message")
    )


# ---------------------------------------------------------------- reminder time and words


def _values_of(event: CaseEvent, zone_name: str) -> dict[str, str | None]:
    return event_values(event.title, event.starts_at, event.place, zone_name)


def event_values(title: str, starts_at: datetime, place: str | None, zone_name: str) -> dict[str, str | None]:
    """An event's placeholders ({event_title}, {event_date}, …) as its client reads them, in their zone."""
    zone = quiet_hours.zone_named(zone_name) or UTC
    local = starts_at.astimezone(zone)
    return {
        "event_title": title,
        "event_date": quick_entries.long_date(local),
        "event_time": quiet_hours.clock_words(local),
        "event_place": place,
    }


def _filled_for_a_client(body: str, values: dict[str, str | None]) -> str:
    """Every known placeholder replaced, an empty one by nothing: an automatic text must not carry a
    visible `{event_place}` (a person filling the composer gets a warning instead)."""

    def replace_one(match: re.Match[str]) -> str:
        name = match.group(1)
        return (values.get(name) or "").strip() if name in quick_entries.PLACEHOLDERS else match.group(0)

    return " ".join(quick_entries.PLACEHOLDER.sub(replace_one, body).split())


async def reminder_text(
    staff: Staff, event: CaseEvent, case: Case, client: Client, spec: ReminderSpec, zone: str
) -> str:
    """The quick entry named by the reminder (else the organisation's "Event reminder", else a built-in
    text), in the client's language, filled in for the event."""
    entries = await QuickEntry.filter(
        Q(name__in=[REMINDER_ENTRY_NAME, CONFIRM_ENTRY_NAME])
        | Q(name__in=Subquery(QuickEntry.filter(id=spec.quick_entry_id or 0).values("name")))
    )
    values = await quick_entries.values_for(staff, client, case, clock.now())
    return reminder_words(
        entries,
        spec,
        client.preferred_language,
        {**values, **event_values(event.title, event.starts_at, event.place, zone)},
    )


def reminder_words(
    entries: Sequence[QuickEntry], spec: ReminderSpec, language: str | None, filled: dict[str, str | None]
) -> str:
    """`reminder_text` from quick entries already read (`entries`: at least the reminder's own, "Event
    reminder" and "Confirmation request", with their variants) and the placeholders' values (`filled`)."""
    chosen = next((e for e in entries if e.id == spec.quick_entry_id), None) if spec.quick_entry_id else None
    name = chosen.name if chosen is not None else REMINDER_ENTRY_NAME
    variants = [e for e in entries if e.name == name]
    body = quick_entries.pick_variant(variants, language).body if variants else BUILT_IN_TEXT
    text = _filled_for_a_client(body, filled)
    if not spec.ask_confirmation:
        return text
    asking = [e for e in entries if e.name == CONFIRM_ENTRY_NAME]
    return with_confirmation_request(text, _filled_for_a_client(confirmation_words(asking, language), filled))


async def confirmation_request(language: str | None) -> str:
    """The words asking for a C in the client's language: the quick entry "Confirmation request" in that
    language, else a built-in one in it, else the entry's default, else English. The reply is C or CONFIRM
    in every language (confirmations.CONFIRM_WORDS)."""
    return confirmation_words(await QuickEntry.filter(name=CONFIRM_ENTRY_NAME), language)


def confirmation_words(variants: Sequence[QuickEntry], language: str | None) -> str:
    """`confirmation_request` from the entry's variants already read."""
    wanted = (language or "").strip().lower().replace("_", "-")
    for code in dict.fromkeys((wanted, wanted.split("-")[0])):
        if not code:
            continue
        own = [v for v in variants if (v.language or "").lower() == code]
        if own:
            return own[0].body.strip()
        if code in BUILT_IN_CONFIRMATION_REQUESTS:
            return BUILT_IN_CONFIRMATION_REQUESTS[code]
    return quick_entries.pick_variant(list(variants), None).body.strip() if variants else ASK_TO_CONFIRM


def with_confirmation_request(text: str, request: str = ASK_TO_CONFIRM) -> str:
    """The reminder asking for a C, once: a quick entry that already ends with the request keeps its own."""
    if any(text.rstrip().upper().endswith(words.upper()) for words in (request, ASK_TO_CONFIRM) if words):
        return text
    text = text.rstrip()
    if text and not text.endswith(SENTENCE_ENDS):  # "… courtroom 4B" (a place ends the built-in text): a full stop
        text += "."
    return f"{text} {request}".strip()


SENTENCE_ENDS = (".", "!", "?", "…", "。")


async def cancellation_text(staff: Staff, event: CaseEvent) -> str:
    """The "this hearing is cancelled" text offered to the person who cancelled it (sent only if they send it):
    the quick entry "Event cancelled" in the client's language, else a built-in text."""
    case = await Case.get(id=event.case_id)
    context = await _context(staff, case)
    variants = await QuickEntry.filter(name=CANCELLED_ENTRY_NAME)
    body = quick_entries.pick_variant(variants, context.client.preferred_language).body if variants else CANCELLED_TEXT
    values = await quick_entries.values_for(staff, context.client, case, clock.now())
    return _filled_for_a_client(
        body, {**values, **event_values(event.title, event.starts_at, event.place, context.zone)}
    )


# ---------------------------------------------------------------- making, moving, cancelling reminders


@dataclass(frozen=True)
class ReminderContext:
    """What every reminder of one event needs: who schedules it, where it goes, in which zone."""

    staff: Staff
    case: Case
    client: Client
    number: str | None
    zone: str


async def _context(staff: Staff, case: Case) -> ReminderContext:
    client = await directory.get_client(case.client_id)
    phone = directory.mobile_of(client) or next(iter(client.phones), None)
    number = phone.number if phone is not None else None
    org_zone = (await organisation.current()).time_zone
    zone = quiet_hours.choose_zone([client.time_zone], number or "", org_zone)
    return ReminderContext(staff, case, client, number, zone)


def spec_of_row(row: EventReminder) -> ReminderSpec:
    return ReminderSpec(row.minutes_before, row.at_local_time, row.quick_entry_id, row.ask_confirmation)


async def _schedule(row: EventReminder, event: CaseEvent, context: ReminderContext, now: datetime) -> None:
    """The reminder's text in the outbox, or why there is none."""
    spec = spec_of_row(row)
    send_at = reminder_time(event.starts_at, spec, context.zone)
    if context.number is None:
        row.message_id, row.skipped = None, NO_NUMBER
    elif send_at <= now:
        row.message_id, row.skipped = None, PASSED
    else:
        body = await reminder_text(context.staff, event, context.case, context.client, spec, context.zone)
        message = await messaging.schedule_reminder(context.staff, context.case, context.number, body, send_at)
        row.message_id, row.skipped = message.id, ""
    await row.save(update_fields=["message_id", "skipped"])


async def _add_reminders(event: CaseEvent, specs: list[ReminderSpec], context: ReminderContext, now: datetime) -> None:
    for spec in specs:
        row = await EventReminder.create(
            event=event,
            minutes_before=spec.minutes_before,
            at_local_time=spec.at_local_time,
            quick_entry_id=spec.quick_entry_id,
            ask_confirmation=spec.ask_confirmation,
        )
        await _schedule(row, event, context, now)


async def _move(row: EventReminder, event: CaseEvent, context: ReminderContext, now: datetime) -> None:
    """A pending reminder follows its event (new time, new words); one whose new time has passed is
    cancelled; one never made (its time had passed) is made if its new time is ahead."""
    message = await Message.get_or_none(id=row.message_id) if row.message_id is not None else None
    if message is None:
        if row.skipped == PASSED:
            await _schedule(row, event, context, now)
        return
    if not is_pending(message):
        return  # sent, failed or cancelled: history, left as it is
    spec = spec_of_row(row)
    send_at = reminder_time(event.starts_at, spec, context.zone)
    if send_at <= now:
        await messaging.cancel_if_waiting(message, MOVED_INTO_THE_PAST, now)
        return
    body = await reminder_text(context.staff, event, context.case, context.client, spec, context.zone)
    if await messaging.reschedule(message, body, send_at):
        await message.refresh_from_db()
        await quiet_hours.note_hold(message, now)
        messaging.publish_status(message)


async def _cancel_pending(event: CaseEvent, why: str, now: datetime, keep: set[int] | None = None) -> None:
    for row in await EventReminder.filter(event_id=event.id).prefetch_related("message"):
        if keep is not None and row.id in keep:
            continue
        if row.message is not None and row.message.outbox_state is not None:
            await messaging.cancel_if_waiting(row.message, why, now)


# ---------------------------------------------------------------- the operations


def announce(event: CaseEvent, change: str) -> None:
    """Open case pages show the event as it is now, once the caller's unit of work commits."""
    current_unit().publish(CaseEventChanged(event_id=event.id, case_id=event.case_id, change=change))


async def create_event(
    bus: Bus, staff: Staff, case_id: int, data: EventInput, now: datetime | None = None
) -> CaseEvent:
    case = await visible_case(staff, case_id)
    await _check(data)  # before the unit of work: a wrong input opens no transaction
    async with unit_of_work(bus):
        event = await add_event(staff, case, data, now or clock.now())
    return await get_event(staff, event.id)


async def add_event(
    staff: Staff, case: Case, data: EventInput, now: datetime, external_id: str | None = None
) -> CaseEvent:
    """A new event with its reminders (the organisation's defaults unless `data` names others), inside the
    caller's unit of work. `staff` schedules the reminders; the caller has decided they may."""
    kind, attendees = await _check(data)
    specs = list(data.reminders) if data.reminders is not None else await default_reminders(kind)
    if data.ask_confirmation is not None:
        specs = [replace(spec, ask_confirmation=data.ask_confirmation) for spec in specs]
    context = await _context(staff, case)
    event = await CaseEvent.create(
        case=case,
        kind=kind,
        title=data.title.strip(),
        starts_at=data.starts_at.astimezone(UTC),
        ends_at=data.ends_at.astimezone(UTC) if data.ends_at else None,
        place=data.place.strip(),
        notes=data.notes,
        created_by=staff,
        external_id=external_id,
    )
    for person in attendees:
        await EventAttendee.create(event=event, staff=person)
    await _add_reminders(event, specs, context, now)
    await _sync_staff_reminders(event, now)
    announce(event, "added")
    return event


async def update_event(
    bus: Bus, staff: Staff, event_id: int, data: EventInput, now: datetime | None = None
) -> CaseEvent:
    """New details; a new start moves the pending reminders; new reminders (when given) replace the ones
    not yet sent."""
    event = await get_event(staff, event_id)
    if event.cancelled_at is not None:
        raise Refused("This event was cancelled; add a new one instead.")
    await _check(data)
    async with unit_of_work(bus):
        await change_event(staff, event, data, now or clock.now())
    return await get_event(staff, event.id)


async def change_event(staff: Staff, event: CaseEvent, data: EventInput, now: datetime) -> None:
    """`event` (with `case`, `attendees__staff` and `reminders__message` fetched) as `data` says, inside the
    caller's unit of work."""
    kind, attendees = await _check(data)
    context = await _context(staff, event.case)
    reminders = _asking_or_not(event, data)
    event.kind, event.title, event.place, event.notes = kind, data.title.strip(), data.place.strip(), data.notes
    event.starts_at = data.starts_at.astimezone(UTC)
    event.ends_at = data.ends_at.astimezone(UTC) if data.ends_at else None
    await event.save(update_fields=["kind", "title", "place", "notes", "starts_at", "ends_at"])
    await EventAttendee.filter(event_id=event.id).delete()
    for person in attendees:
        await EventAttendee.create(event=event, staff=person)
    if reminders is None:
        for row in await EventReminder.filter(event_id=event.id).order_by("id"):
            await _move(row, event, context, now)
    else:
        await _replace_reminders(event, list(reminders), context, now)
    await _sync_staff_reminders(event, now)
    announce(event, "updated")


def open_reminders(event: CaseEvent) -> list[EventReminder]:
    """The reminders an edit changes: those not sent (sent ones are history). `reminders__message` fetched."""
    return [r for r in sorted(event.reminders, key=lambda r: r.id) if reminder_status(r) in ("pending", "skipped")]


def asks_confirmation(event: CaseEvent) -> bool:
    """Whether the event's reminders ask for a C: those not yet sent, else any it had."""
    rows = open_reminders(event) or list(event.reminders)
    return any(r.ask_confirmation for r in rows)


def _asking_or_not(event: CaseEvent, data: EventInput) -> tuple[ReminderSpec, ...] | None:
    """The reminders an update makes, with the event's "ask for a C" choice applied; None: keep (and move) them.
    Changing only the choice re-makes the reminders not yet sent with the same lead times and quick entries, so
    their words gain or lose the request."""
    if data.ask_confirmation is None:
        return data.reminders
    if data.reminders is not None:
        return tuple(replace(spec, ask_confirmation=data.ask_confirmation) for spec in data.reminders)
    rows = open_reminders(event)
    if all(r.ask_confirmation == data.ask_confirmation for r in rows):
        return None
    return tuple(replace(spec_of_row(r), ask_confirmation=data.ask_confirmation) for r in rows)


async def _replace_reminders(
    event: CaseEvent, specs: list[ReminderSpec], context: ReminderContext, now: datetime
) -> None:
    """Reminders not yet sent are cancelled and forgotten; the sent ones stay as history."""
    for row in await EventReminder.filter(event_id=event.id).prefetch_related("message"):
        if row.message is None or is_pending(row.message):
            if row.message is not None:
                await messaging.cancel_if_waiting(row.message, "The event's reminders were changed.", now)
            await row.delete()
    await _add_reminders(event, specs, context, now)


async def cancel_event(bus: Bus, staff: Staff, event_id: int, now: datetime | None = None) -> CaseEvent:
    """Marked cancelled, its reminders still in the outbox cancelled. Cancelling it again is harmless."""
    event = await get_event(staff, event_id)
    if event.cancelled_at is not None:
        return event
    now = now or clock.now()
    async with unit_of_work(bus):
        event.cancelled_at = now
        await event.save(update_fields=["cancelled_at"])
        await _cancel_pending(event, f"The {event.kind.value} was cancelled.", now)
        await _sync_staff_reminders(event, now)
        announce(event, "cancelled")
    return await get_event(staff, event.id)


NOT_WAITING = "This reminder is no longer waiting to be sent: it has been sent or cancelled, or was never made."


async def send_reminder_now(
    bus: Bus, staff: Staff, event_id: int, reminder_id: int, now: datetime | None = None
) -> Message:
    """A person's "Send now" on a pending reminder: its scheduled text becomes a text due at once, in the
    outbox like any other (consent is still decided as it leaves). Sent by a person's hand, it is no longer a
    scheduled text, so the client's quiet hours do not hold it. The caller hands it over once it has answered."""
    event = await get_event(staff, event_id)
    row = next((r for r in event.reminders if r.id == reminder_id), None)
    if row is None:
        raise NotFound("No reminder has this id on this event.")
    if event.cancelled_at is not None:
        raise Refused(f"This {event.kind.value} was cancelled: its reminders are not sent.")
    message = row.message
    if message is None or not is_pending(message):
        raise Refused(NOT_WAITING)
    moment = now or clock.now()
    async with unit_of_work(bus):
        if not await messaging.send_scheduled_now(message, moment):
            raise Refused(NOT_WAITING)
    return message


async def _sync_staff_reminders(event: CaseEvent, now: datetime) -> None:
    """The attendees' own reminders follow the event (added, moved, cancelled: staff_reminders)."""
    await staff_reminders.sync_event(event, now)


def with_changes(event: CaseEvent, **changes: Any) -> EventInput:
    """The event as an input, with some fields changed (a PATCH, or the case page's edit form)."""
    current = EventInput(
        kind=event.kind.value,
        title=event.title,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        place=event.place,
        notes=event.notes,
        attendee_emails=tuple(a.staff.email for a in event.attendees),
    )
    return replace(current, **changes)


@dataclass(frozen=True)
class ShownReminder:
    row: EventReminder
    status: str
    send_at: datetime | None


@dataclass(frozen=True)
class ShownEvent:
    """An event as the case page lists it: its reminders with their status words."""

    event: CaseEvent
    reminders: list[ShownReminder]

    @property
    def cancelled(self) -> bool:
        return self.event.cancelled_at is not None


def shown(event: CaseEvent) -> ShownEvent:
    """`event.reminders__message` must be fetched."""
    rows = sorted(event.reminders, key=lambda r: r.id)
    return ShownEvent(event, [ShownReminder(r, reminder_status(r), _when(r.message)) for r in rows])


def _when(message: Message | None) -> datetime | None:
    """When the reminder goes, or went (one sent by hand has no scheduled time)."""
    if message is None:
        return None
    return message.send_at or message.first_attempt_at
