"""New case events of a CSV import, written in bulk with their reminders, inside the import's unit of work.

What `case_events.add_event` writes for one event made by hand, for every new event of a file at once: the event,
its reminders (the organisation's defaults for its kind), each reminder's scheduled text — in the thread the client
last talked in, else a new one on the case's office's channel or the default, as channels.channel_for_new_text
chooses — with its first timeline step, its link and case note on the case, the quiet-hours note a text due in the
client's quiet hours carries, the importer's read pointer and each thread's inbox row. The same words and times as
by hand (case_events.reminder_words, reminder_times.reminder_time, quiet_hours.hold_for), from look-ups made once
per import instead of ~90 queries per event (bench/import.py). Imported events have no attendees: no staff
reminders. A reminder whose time has passed, or for a client without a number, is skipped and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inbox.events import CaseEventChanged, MessageSent
from inbox.models import (
    Case,
    CaseNote,
    Channel,
    Client,
    Direction,
    EventKind,
    LinkReason,
    MessagePurpose,
    MessageStatus,
    Office,
    Organisation,
    OutboxState,
    PhoneKind,
    QuickEntry,
    Staff,
)
from inbox.phones import for_people
from inbox.segments import count_segments
from inbox.services import bulk, case_events, quick_entries, quiet_hours
from inbox.services.channels import default_channel, later_thread
from inbox.services.limits import clip
from inbox.services.linking import LINK_COLUMNS, NOTE_COLUMNS
from inbox.services.messaging import CAMPAIGN_TEXT_COLUMNS, preview_of
from inbox.services.reminder_times import ReminderSpec, reminder_time
from inbox.services.unit_of_work import current_unit

CHUNK = 5000  # values per `IN (…)`: under SQLite's and asyncpg's limits on parameters
# A reminder's text: a bulk text's columns, and the quiet-hours note of one due in the client's quiet hours.
TEXT_COLUMNS = {**CAMPAIGN_TEXT_COLUMNS, "error_message": "text"}


@dataclass(frozen=True)
class NewEvent:
    external_id: str
    case_id: int
    kind: EventKind
    title: str
    starts_at: datetime  # UTC
    place: str


@dataclass
class _CaseFacts:
    """What a case's reminders need: its client, the number they go to, their zone, the placeholders' values."""

    case: Case
    client: Client
    number: str | None
    zone: str  # the reminder times' (the client's record, else the number's region, else the organisation's)
    hold_zone: str  # the quiet hours' (quiet_hours.zones_for: also every client on file with the number)
    values: dict[str, str | None]


async def _in_chunks(statement: str, values: Sequence[Any]) -> list[Sequence[Any]]:
    rows: list[Sequence[Any]] = []
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        rows.extend(await bulk.fetch(statement.format(marks=", ".join("?" for _ in chunk)), chunk))
    return rows


async def _facts(case_ids: list[int], staff: Staff, org: Organisation, now: datetime) -> dict[int, _CaseFacts]:
    """Every case's facts in a few queries (case_events._context and quick_entries.values_for, for many cases)."""
    cases: dict[int, Case] = {}
    for row in await _in_chunks(
        'SELECT id, client_id, office_id, number, title FROM "case" WHERE id IN ({marks})', case_ids
    ):
        cases[int(row[0])] = Case(id=int(row[0]), client_id=row[1], office_id=row[2], number=row[3], title=row[4])
    clients: dict[int, Client] = {}
    for row in await _in_chunks(
        "SELECT id, name, preferred_language, time_zone FROM client WHERE id IN ({marks})",
        [c.client_id for c in cases.values()],
    ):
        clients[int(row[0])] = Client(id=int(row[0]), name=row[1], preferred_language=row[2], time_zone=row[3])
    numbers: dict[int, str] = {}  # directory.mobile_of: the first mobile, else the first number on file
    for client_id, number, _kind, _id in sorted(
        await _in_chunks(
            "SELECT client_id, number, kind, id FROM client_phone WHERE client_id IN ({marks}) ORDER BY id",
            list(clients),
        ),
        key=lambda row: (row[2] != PhoneKind.MOBILE.value,),  # stable: mobiles first, each in id order
    ):
        numbers.setdefault(int(client_id), str(number))
    on_file: dict[str, list[str | None]] = {}  # every client with the number, in client order (zones_for)
    for number, zone in await _in_chunks(
        "SELECT cp.number, cl.time_zone FROM client_phone cp JOIN client cl ON cl.id = cp.client_id "
        "WHERE cp.number IN ({marks}) ORDER BY cp.client_id",
        list(numbers.values()),
    ):
        on_file.setdefault(str(number), []).append(zone)
    offices = {office.id: office for office in await Office.all()}
    facts: dict[int, _CaseFacts] = {}
    for case_id, case in cases.items():
        client = clients[case.client_id]
        number = numbers.get(client.id)
        # quiet_hours.choose_zone twice, the number's region (a parse of the number) worked out once.
        region = quiet_hours.zone_for_number(number or "", org.time_zone)
        zone = _first_zone([client.time_zone], region)
        hold_zone = _first_zone([client.time_zone, *on_file.get(number or "", [])], region)
        office = offices.get(case.office_id or staff.office_id or 0)
        values = quick_entries.values_from(staff, client, case, org, office, now)
        facts[case_id] = _CaseFacts(case, client, number, zone, hold_zone, values)
    return facts


def _first_zone(explicit: list[str | None], region: str) -> str:
    """quiet_hours.choose_zone with the number's region already known."""
    for name in explicit:
        if quiet_hours.zone_named(name) is not None:
            return str(name).strip()
    return region


async def _threads(numbers: dict[str, int | None], now: datetime) -> dict[str, tuple[int, Channel]]:
    """(conversation id, channel) per number: the thread the client last talked in, else a new thread on the
    case's office's channel (`numbers`: number → office id) or the default (campaigns._conversations_for)."""
    channels = {channel.id: channel for channel in await Channel.all().order_by("id")}
    best: dict[str, tuple[int, int, datetime | None]] = {}
    for cid, phone, channel_id, last in await _in_chunks(
        "SELECT id, phone, channel_id, last_message_at FROM conversation WHERE phone IN ({marks}) ORDER BY id",
        list(numbers),
    ):
        last = datetime.fromisoformat(last) if isinstance(last, str) else last
        seen = best.get(phone)
        if seen is None or later_thread(last, int(cid), seen[2], seen[0]):
            best[str(phone)] = (int(cid), int(channel_id), last)
    chosen = {phone: (cid, channels[channel_id]) for phone, (cid, channel_id, _) in best.items()}
    missing = {number: office_id for number, office_id in numbers.items() if number not in chosen}
    if missing:
        office_channel: dict[int, Channel] = {}
        for channel in channels.values():
            if channel.office_id is not None:
                office_channel.setdefault(channel.office_id, channel)
        fallback = await default_channel()
        ids = await bulk.reserve_ids("conversation", len(missing))
        opened = {
            number: (cid, office_channel.get(office_id or 0, fallback))
            for (number, office_id), cid in zip(missing.items(), ids, strict=True)
        }
        await bulk.insert_rows(
            "conversation",
            {
                "id": "int",
                "channel_id": "int",
                "phone": "text",
                "last_message_preview": "text",  # each thread's row is set below, with its newest reminder
                "last_message_at": "timestamptz",
                "last_direction": "text",
                "created_at": "timestamptz",
            },
            [
                (cid, channel.id, number, "", now, Direction.OUTBOUND.value, now)
                for number, (cid, channel) in opened.items()
            ],
        )
        chosen |= opened
    return chosen


@dataclass
class _Reminder:
    event_index: int
    spec: ReminderSpec
    send_at: datetime | None  # None: skipped
    skipped: str
    body: str = ""
    message_id: int | None = None


async def create_events(events: list[NewEvent], staff: Staff, org: Organisation, now: datetime) -> None:
    """Every event of `events` with its reminders, in bulk (see the module's words)."""
    if not events:
        return
    facts = await _facts([e.case_id for e in events], staff, org, now)
    entries = await QuickEntry.all()
    defaults = {kind: case_events.defaults_of(org, kind) for kind in EventKind}
    window = quiet_hours.Window.of(org)
    await bulk.insert_rows(
        "case_event",
        {
            "case_id": "int",
            "kind": "text",
            "title": "text",
            "starts_at": "timestamptz",
            "place": "text",
            "notes": "text",
            "created_by_id": "int",
            "external_id": "text",
            "created_at": "timestamptz",
        },
        [(e.case_id, e.kind.value, e.title, e.starts_at, e.place, "", staff.id, e.external_id, now) for e in events],
    )
    event_ids = {
        str(external): int(row_id)
        for external, row_id in await _in_chunks(
            "SELECT external_id, id FROM case_event WHERE external_id IN ({marks})", [e.external_id for e in events]
        )
    }
    reminders = _plan_reminders(events, facts, defaults, entries, now)
    due = [r for r in reminders if r.send_at is not None]
    if due:
        await _store_texts(due, events, facts, staff, window, now)
    await bulk.insert_rows(
        "event_reminder",
        {
            "event_id": "int",
            "minutes_before": "int",
            "at_local_time": "text",
            "quick_entry_id": "int",
            "ask_confirmation": "bool",
            "message_id": "int",
            "skipped": "text",
            "created_at": "timestamptz",
        },
        [
            (
                event_ids[events[r.event_index].external_id],
                r.spec.minutes_before,
                r.spec.at_local_time,
                r.spec.quick_entry_id,
                r.spec.ask_confirmation,
                r.message_id,
                r.skipped,
                now,
            )
            for r in reminders
        ],
    )
    unit = current_unit()
    for event in events:  # open case pages show the new events once the import commits
        unit.publish(CaseEventChanged(event_id=event_ids[event.external_id], case_id=event.case_id, change="added"))


def _plan_reminders(
    events: list[NewEvent],
    facts: dict[int, _CaseFacts],
    defaults: dict[EventKind, list[ReminderSpec]],
    entries: Sequence[QuickEntry],
    now: datetime,
) -> list[_Reminder]:
    """Each event's reminders: its time and words, or why it is skipped (case_events._schedule)."""
    planned: list[_Reminder] = []
    for index, event in enumerate(events):
        fact = facts[event.case_id]
        for spec in defaults[event.kind]:
            send_at = reminder_time(event.starts_at, spec, fact.zone)
            if fact.number is None:
                planned.append(_Reminder(index, spec, None, case_events.NO_NUMBER))
            elif send_at <= now:
                planned.append(_Reminder(index, spec, None, case_events.PASSED))
            else:
                filled = {
                    **fact.values,
                    **case_events.event_values(event.title, event.starts_at, event.place, fact.zone),
                }
                body = case_events.reminder_words(entries, spec, fact.client.preferred_language, filled)
                planned.append(_Reminder(index, spec, send_at, "", body))
    return planned


async def _store_texts(
    due: list[_Reminder],
    events: list[NewEvent],
    facts: dict[int, _CaseFacts],
    staff: Staff,
    window: quiet_hours.Window,
    now: datetime,
) -> None:
    """The reminders' scheduled texts and all they come with (messaging.schedule_reminder, for many)."""
    numbers: dict[str, int | None] = {}
    for r in due:
        fact = facts[events[r.event_index].case_id]
        numbers.setdefault(str(fact.number), fact.case.office_id)
    threads = await _threads(numbers, now)
    ids = await bulk.reserve_ids("message", len(due))
    texts: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    newest: dict[int, tuple[int, str]] = {}  # conversation → (its newest text, that text's words)
    authors: dict[str, str] = {}  # a case note's author per number (formatting a number parses it: ~0.4 ms)
    for r, message_id in zip(due, ids, strict=True):
        r.message_id = message_id
        fact = facts[events[r.event_index].case_id]
        conversation_id, channel = threads[str(fact.number)]
        count = count_segments(r.body)
        assert r.send_at is not None
        hold = quiet_hours.hold_for(r.send_at, fact.hold_zone, window, now)
        values = {
            "id": message_id,
            "conversation_id": conversation_id,
            "direction": Direction.OUTBOUND.value,
            "from_number": channel.from_number or channel.messaging_service_sid or "",
            "to_number": fact.number,
            "body": r.body,
            "status": MessageStatus.SCHEDULED.value,
            "outbox_state": OutboxState.WAITING.value,
            "next_attempt_at": r.send_at,
            "send_at": r.send_at,
            "segments": count.segments,
            "encoding": count.encoding,
            "sent_by_id": staff.id,
            "case_id": fact.case.id,
            "purpose": MessagePurpose.EVENT_REMINDER.value,
            "campaign_id": None,
            "attempt_count": 0,
            "outcome_unknown": False,
            "created_at": now,
            "updated_at": now,
            "error_message": hold.note if hold else None,
        }
        texts.append(tuple(values[name] for name in TEXT_COLUMNS))
        if fact.number not in authors:
            authors[str(fact.number)] = clip(
                f"{staff.name} (text to {for_people(str(fact.number))})", CaseNote, "author"
            )
        author = authors[str(fact.number)]
        notes.append((fact.case.id, message_id, author, r.body, now, now))
        newest[conversation_id] = (message_id, r.body)
    await bulk.insert_rows("message", TEXT_COLUMNS, texts)
    await bulk.insert_rows(
        "message_status_event",
        {"message_id": "int", "status": "text", "at": "timestamptz"},
        [(r.message_id, MessageStatus.SCHEDULED.value, now) for r in due],
    )
    await bulk.insert_rows(
        "message_link",
        LINK_COLUMNS,
        [(row[1], row[0], LinkReason.SENT_FROM.value, staff.id, now) for row in notes],
    )
    await bulk.insert_rows(
        "case_note",
        NOTE_COLUMNS,
        notes,
    )
    await bulk.update_rows(
        "conversation",
        {"last_direction": "text", "last_message_at": "timestamptz", "last_message_preview": "text"},
        [(Direction.OUTBOUND.value, now, preview_of(body), cid) for cid, (_, body) in newest.items()],
    )
    await _read_up_to(staff, {cid: message_id for cid, (message_id, _) in newest.items()})
    unit = current_unit()
    for r in due:
        fact = facts[events[r.event_index].case_id]
        conversation_id, _ = threads[str(fact.number)]
        assert r.message_id is not None
        unit.publish(
            MessageSent(
                message_id=r.message_id, conversation_id=conversation_id, provider_sid=None, case_ids=[fact.case.id]
            )
        )


async def _read_up_to(staff: Staff, newest: dict[int, int]) -> None:
    """The importer has read each thread up to the reminder it scheduled there (messaging._mark_read_to)."""
    pointers = {
        int(cid): (int(row_id), int(last))
        for row_id, cid, last in await _in_chunks(
            f"SELECT id, conversation_id, last_read_message_id FROM conversation_read WHERE staff_id = {int(staff.id)} "
            "AND conversation_id IN ({marks})",
            list(newest),
        )
    }
    await bulk.insert_rows(
        "conversation_read",
        {"staff_id": "int", "conversation_id": "int", "last_read_message_id": "int"},
        [(staff.id, cid, message_id) for cid, message_id in newest.items() if cid not in pointers],
    )
    await bulk.update_rows(
        "conversation_read",
        {"last_read_message_id": "int"},
        [
            (message_id, pointers[cid][0])
            for cid, message_id in newest.items()
            if cid in pointers and pointers[cid][1] < message_id
        ],
    )
