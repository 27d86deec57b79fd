"""CSV import: a case management system's clients, cases, assignments and case events, loaded night after night.

Rows are upserted by the system's external ids (assignments by case and staff member), so the same export
loaded again changes nothing. Every row of every file is checked first, against the database and against
the other files of the import (a case may name a client its clients file brings); any problem and nothing
is written. Otherwise one unit of work writes it all, kinds in dependency order: created rows in bulk (COPY on
PostgreSQL, executemany on SQLite: inbox.services.bulk), changed rows one by one through the same service
functions as the pages (a changed okay-to-text through the consent ledger, a moved event through its
reminders). A dry run stops after the checks and reports the same counts.

okay_to_text is recorded in the consent ledger with source `import`, and only when it changes something. It
never undoes an opt-out: a `true` for a number that texted STOP is reported and left as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from inbox import clock
from inbox.events import Bus
from inbox.models import (
    Case,
    CaseEvent,
    Client,
    ClientPhone,
    ConsentSource,
    EventKind,
    Office,
    PhoneKind,
    Role,
    Staff,
)
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services import audit, bulk, case_events, consent, event_import, organisation, quiet_hours
from inbox.services.errors import NotFound, ServiceError
from inbox.services.import_files import ORDER, CsvFile, Kind, ParsedFile, Problem, Row, UnreadableFile, parse
from inbox.services.limits import max_length
from inbox.services.unit_of_work import unit_of_work

YIELD_EVERY = 500  # rows checked between turns of the event loop
CHUNK = 5000  # values per `IN (…)`: under SQLite's and asyncpg's limits on parameters
IMPORTED = "client imported"
OKAY_COLUMN = "okay_to_text column of an import"
NEW_NUMBER = "mobile number changed by an import"
Progress = Callable[[int, int], None]  # (rows done, rows in all)


class ImportFailed(ServiceError):
    """Rows that cannot be imported, each naming its file, line and column. Nothing was written."""

    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"Nothing was imported: {len(problems)} problem(s) to correct first.")
        self.problems = problems


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def line(self, kind: Kind) -> str:
        return f"{kind.value}: created {self.created}, updated {self.updated}, unchanged {self.unchanged}"


@dataclass
class ImportReport:
    dry_run: bool
    tallies: dict[Kind, Tally]
    notices: list[str] = field(default_factory=list)  # rows imported with something left as it was, and why

    def lines(self) -> list[str]:
        return [tally.line(kind) for kind, tally in self.tallies.items()]

    @property
    def changes(self) -> int:
        return sum(t.created + t.updated for t in self.tallies.values())


# ---------------------------------------------------------------- values


class Bad(ValueError):
    """One value that cannot be imported; the checker adds its file, line and column."""


def _text(value: str, column: str, model: type[Any], name: str | None = None, required: bool = False) -> str | None:
    if not value:
        if required:
            raise Bad(f"{column} is empty; every row needs one.")
        return None
    limit = max_length(model, name or column)
    if len(value) > limit:
        raise Bad(f"“{value[:40]}…” is too long: keep it to {limit} characters (it has {len(value)}).")
    return value


def _bool(value: str) -> bool | None:
    if not value:
        return None
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise Bad(f"“{value}” is not true or false.")
    return lowered == "true"


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Bad(f"“{value}” is not a date: write it as YYYY-MM-DD (2026-11-21).") from None


def _moment(value: str, zone: ZoneInfo) -> datetime:
    if not value:
        raise Bad("starts_at is empty; every event needs one.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Bad(f"“{value}” is not a date and time: write it as 2026-11-21T15:00:00-05:00.") from None
    # A time without offset is the organisation's local time, as the case pages show it.
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def _as_date(value: Any) -> date | None:
    """A date column as the driver answers it (SQLite: text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _name(column: str) -> str:
    """A column or table name for `bulk.insert_rows`: as it is for PostgreSQL's COPY (asyncpg quotes names), quoted
    for SQLite's INSERT (`case`, `primary` and `end` are SQL words)."""
    return column if bulk.db().capabilities.dialect == "postgres" else f'"{column}"'


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def _rows_where_in(statement: str, values: Sequence[Any], before: Sequence[Any] = ()) -> list[Sequence[Any]]:
    """`statement` with `IN ({marks})` run per chunk of `values`."""
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(list(dict.fromkeys(values))):
        marks = ", ".join("?" for _ in chunk)
        rows.extend(await bulk.fetch(statement.format(marks=marks), [*before, *chunk]))
    return rows


# ---------------------------------------------------------------- the plan


@dataclass
class ClientRow:
    line: int
    external_id: str
    name: str
    mobile: str | None
    okay: bool | None
    language: str | None


@dataclass
class CaseRow:
    line: int
    external_id: str
    number: str
    title: str
    client_external_id: str
    legal_problem: str | None
    office: str | None
    opened_on: date | None
    closed_on: date | None


@dataclass
class AssignmentRow:
    line: int
    case_external_id: str
    staff_id: int
    primary: bool
    start: date | None
    end: date | None


@dataclass
class EventRow:
    line: int
    external_id: str
    case_external_id: str
    kind: EventKind
    title: str
    starts_at: datetime
    place: str


@dataclass
class Plan:
    """What an import will do, worked out before anything is written."""

    file_of: dict[Kind, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    tallies: dict[Kind, Tally] = field(default_factory=dict)
    clients: list[tuple[str, ClientRow]] = field(default_factory=list)
    cases: list[tuple[str, CaseRow]] = field(default_factory=list)
    assignments: list[tuple[str, AssignmentRow]] = field(default_factory=list)
    events: list[tuple[str, EventRow]] = field(default_factory=list)
    # Ids the database already has, by external id; new ones (planned) are absent until written.
    client_ids: dict[str, int] = field(default_factory=dict)
    case_ids: dict[str, int] = field(default_factory=dict)

    def problem(self, file: str, line: int, column: str | None, text: str) -> None:
        self.problems.append(Problem(file, line, column, text))


async def _check_rows(
    plan: Plan,
    parsed: ParsedFile,
    make: Callable[[Row], Any],
    key: Callable[[Any], Any],
    what: Callable[[Any], str],
    tick: Callable[[int], None],
) -> list[tuple[str, Any]]:
    """Each row made into its record (a value's problem named by column); a key seen twice is a problem."""
    checked: list[tuple[str, Any]] = []
    seen: dict[Any, int] = {}
    for index, row in enumerate(parsed.rows, start=1):
        if index % YIELD_EVERY == 0:
            tick(YIELD_EVERY)
            await asyncio.sleep(0)  # checking is all Python: let the web process answer others (and the progress poll)
        try:
            record = make(row)
        except _RowProblems as exc:
            for column, text in exc.problems:
                plan.problem(parsed.name, row.line, column, text)
            continue
        first = seen.setdefault(key(record), row.line)
        if first != row.line:
            plan.problem(parsed.name, row.line, None, f"{what(record)} appears again (first on line {first}).")
            continue
        checked.append((parsed.name, record))
    tick(len(parsed.rows) % YIELD_EVERY)
    return checked


class _RowProblems(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems


class _Reader:
    """One row's values read column by column, every column's problem kept (a person fixes a row at once)."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.problems: list[tuple[str, str]] = []

    def __call__(self, column: str, read: Callable[[str], Any]) -> Any:
        try:
            return read(self.row.values[column])
        except Bad as exc:
            self.problems.append((column, str(exc)))
            return None

    def check(self) -> None:
        if self.problems:
            raise _RowProblems(self.problems)


def _client_row(row: Row) -> ClientRow:
    def mobile(value: str) -> str | None:
        if not value:
            return None
        try:
            return normalise(value)
        except InvalidPhoneNumber:
            raise Bad(f"“{value}” is not a phone number (write it as +14045387319 or (404) 538-7319).") from None

    read = _Reader(row)
    checked = ClientRow(
        row.line,
        read("external_id", lambda v: _text(v, "external_id", Client, required=True)),
        read("name", lambda v: _text(v, "name", Client, required=True)),
        read("mobile", mobile),
        read("okay_to_text", _bool),
        read("preferred_language", lambda v: _text(v, "preferred_language", Client)),
    )
    read.check()
    return checked


def _case_row(row: Row) -> CaseRow:
    read = _Reader(row)
    checked = CaseRow(
        row.line,
        read("external_id", lambda v: _text(v, "external_id", Case, required=True)),
        read("number", lambda v: _text(v, "number", Case, required=True)),
        read("title", lambda v: _text(v, "title", Case, required=True)),
        read("client_external_id", lambda v: _text(v, "client_external_id", Client, "external_id", True)),
        read("legal_problem", lambda v: _text(v, "legal_problem", Case)),
        read("office", lambda v: _text(v, "office", Office, "name")),
        read("opened_on", _date),
        read("closed_on", _date),
    )
    read.check()
    return checked


def _event_row(zone: ZoneInfo) -> Callable[[Row], EventRow]:
    def kind(value: str) -> EventKind:
        try:
            return EventKind(value.lower())
        except ValueError:
            raise Bad(f"“{value}” is not hearing, appointment, meeting or deadline.") from None

    def make(row: Row) -> EventRow:
        read = _Reader(row)
        checked = EventRow(
            row.line,
            read("external_id", lambda v: _text(v, "external_id", CaseEvent, required=True)),
            read("case_external_id", lambda v: _text(v, "case_external_id", Case, "external_id", True)),
            read("kind", kind),
            read("title", lambda v: _text(v, "title", CaseEvent, required=True)),
            read("starts_at", lambda v: _moment(v, zone)),
            read("place", lambda v: _text(v, "place", CaseEvent) or ""),
        )
        read.check()
        return checked

    return make


def _assignment_row(staff_ids: dict[str, int]) -> Callable[[Row], AssignmentRow]:
    def staff(value: str) -> int:
        if not value:
            raise Bad("staff_email is empty; every row needs one.")
        if value.lower() not in staff_ids:
            raise Bad(f"no staff account has the email {value}.")
        return staff_ids[value.lower()]

    def make(row: Row) -> AssignmentRow:
        read = _Reader(row)
        checked = AssignmentRow(
            row.line,
            read("case_external_id", lambda v: _text(v, "case_external_id", Case, "external_id", True)),
            read("staff_email", staff),
            bool(read("primary", _bool)),
            read("start", _date),
            read("end", _date),
        )
        if checked.start and checked.end and checked.end < checked.start:
            read.problems.append(("end", "the end date is before the start date."))
        read.check()
        return checked

    return make


async def _existing_ids(table: str, external_ids: Iterable[str]) -> dict[str, int]:
    rows = await _rows_where_in(
        f'SELECT external_id, id FROM "{table}" WHERE external_id IN ({{marks}})', list(external_ids)
    )
    return {str(external_id): int(row_id) for external_id, row_id in rows}


async def _check_references(plan: Plan) -> None:
    """Cases name clients, assignments and events name cases: in the database, or in this import's files."""
    plan.client_ids = await _existing_ids("client", [row.client_external_id for _, row in plan.cases])
    planned_clients = {row.external_id for _, row in plan.clients}
    for file, case in plan.cases:
        if case.client_external_id not in plan.client_ids and case.client_external_id not in planned_clients:
            plan.problem(
                file, case.line, "client_external_id", f"no client has the external id {case.client_external_id}."
            )
    referenced = [row.case_external_id for _, row in plan.assignments] + [
        row.case_external_id for _, row in plan.events
    ]
    plan.case_ids = await _existing_ids("case", referenced)
    planned_cases = {row.external_id for _, row in plan.cases}
    items: list[tuple[str, AssignmentRow | EventRow]] = [*plan.assignments, *plan.events]
    for file, item in items:
        if item.case_external_id not in plan.case_ids and item.case_external_id not in planned_cases:
            plan.problem(file, item.line, "case_external_id", f"no case has the external id {item.case_external_id}.")


async def _check_case_numbers(plan: Plan) -> None:
    """A case number is unique: one already on another case (another external id, or none) cannot be taken."""
    owners = await _rows_where_in(
        'SELECT number, external_id FROM "case" WHERE number IN ({marks})', [r.number for _, r in plan.cases]
    )
    owner_of = {str(number): external_id for number, external_id in owners}
    first_with: dict[str, tuple[str, int]] = {}
    for file, case in plan.cases:
        first = first_with.setdefault(case.number, (file, case.line))
        if first != (file, case.line):
            where = f"{first[0]} line {first[1]}"
            plan.problem(file, case.line, "number", f"case number {case.number} is also on {where}.")
            continue
        if case.number in owner_of and owner_of[case.number] != case.external_id:
            other = owner_of[case.number]
            whose = f"the case with external id {other}" if other else "a case added by hand or through the API"
            plan.problem(file, case.line, "number", f"case number {case.number} already belongs to {whose}.")


async def make_plan(parsed: list[ParsedFile], tick: Callable[[int], None] = lambda _: None) -> Plan:
    plan = Plan()
    zone = quiet_hours.zone_named((await organisation.current()).time_zone) or ZoneInfo("UTC")
    staff_rows = await bulk.fetch("SELECT lower(email), id FROM staff", [])
    staff_ids = {str(email): int(staff_id) for email, staff_id in staff_rows}
    makers: dict[Kind, tuple[Callable[[Row], Any], Callable[[Any], Any], Callable[[Any], str]]] = {
        Kind.CLIENTS: (_client_row, lambda r: r.external_id, lambda r: f"client {r.external_id}"),
        Kind.CASES: (_case_row, lambda r: r.external_id, lambda r: f"case {r.external_id}"),
        Kind.ASSIGNMENTS: (
            _assignment_row(staff_ids),
            lambda r: (r.case_external_id, r.staff_id),
            lambda r: f"the assignment of this staff member to case {r.case_external_id}",
        ),
        Kind.EVENTS: (_event_row(zone), lambda r: r.external_id, lambda r: f"event {r.external_id}"),
    }
    records: dict[Kind, list[tuple[str, Any]]] = {kind: [] for kind in ORDER}
    seen_keys: dict[Kind, dict[Any, str]] = {kind: {} for kind in ORDER}
    for file in sorted(parsed, key=lambda f: ORDER.index(f.kind)):
        plan.file_of.setdefault(file.kind, []).append(file.name)
        make, key, what = makers[file.kind]
        for name, record in await _check_rows(plan, file, make, key, what, tick):
            other = seen_keys[file.kind].setdefault(key(record), name)
            if other != name:
                plan.problem(name, record.line, None, f"{what(record)} is also in {other}.")
                continue
            records[file.kind].append((name, record))
    plan.clients, plan.cases = records[Kind.CLIENTS], records[Kind.CASES]
    plan.assignments, plan.events = records[Kind.ASSIGNMENTS], records[Kind.EVENTS]
    await _check_references(plan)
    await _check_case_numbers(plan)
    return plan


# ---------------------------------------------------------------- clients


@dataclass
class _ClientNow:
    id: int
    name: str
    language: str | None
    phone: ClientPhone | None  # the first mobile


async def _clients_now(external_ids: list[str]) -> dict[str, _ClientNow]:
    rows = await _rows_where_in(
        "SELECT external_id, id, name, preferred_language FROM client WHERE external_id IN ({marks})", external_ids
    )
    found = {str(e): _ClientNow(int(i), str(n), lang, None) for e, i, n, lang in rows}
    by_id = {c.id: c for c in found.values()}
    for chunk in _chunks(list(by_id)):
        for phone in await ClientPhone.filter(client_id__in=chunk, kind=PhoneKind.MOBILE).order_by("-id"):
            by_id[phone.client_id].phone = phone  # ordered newest first: the first mobile is set last
    return found


async def _opted_out_numbers(numbers: list[str]) -> set[str]:
    """Numbers that opted out: on any client record, or — on none — by their latest consent change."""
    on_records = await _rows_where_in("SELECT number, opted_out FROM client_phone WHERE number IN ({marks})", numbers)
    opted = {str(n) for n, out in on_records if out}
    on_a_record = {str(n) for n, _ in on_records}
    bare = [n for n in numbers if n not in on_a_record]
    latest: dict[str, bool] = {}
    for number, out in await _rows_where_in(
        "SELECT number, opted_out FROM consent_event WHERE number IN ({marks}) ORDER BY at, id", bare
    ):
        latest[str(number)] = bool(out)
    return opted | {n for n, out in latest.items() if out}


def _left_opted_out(file: str, row: ClientRow) -> str:
    return (
        f"{file} line {row.line}: {row.mobile} has opted out (texted STOP): okay_to_text true left opted out; "
        "only the client can opt in again by texting START."
    )


async def _import_clients(plan: Plan, dry_run: bool, staff: Staff | None, tick: Callable[[int], None]) -> None:
    tally = plan.tallies.setdefault(Kind.CLIENTS, Tally())
    now_by_id = await _clients_now([row.external_id for _, row in plan.clients])
    opted_out = await _opted_out_numbers([row.mobile for _, row in plan.clients if row.mobile])
    new: list[ClientRow] = []
    changed: list[tuple[ClientRow, _ClientNow]] = []
    for file, row in plan.clients:
        if row.okay and row.mobile in opted_out:
            plan.notices.append(_left_opted_out(file, row))
        current = now_by_id.get(row.external_id)
        if current is None:
            new.append(row)
        elif _client_changes(row, current, opted_out):
            changed.append((row, current))
        else:
            tally.unchanged += 1
    tally.created, tally.updated = len(new), len(changed)
    if dry_run:
        tick(len(plan.clients))
        return
    await _create_clients(new, opted_out, staff)
    tick(len(new))
    for row, current in changed:
        await _update_client(row, current, opted_out, staff)
        tick(1)
    tick(tally.unchanged)


def _okay_after(row: ClientRow, okay_now: bool, opted_out: bool) -> bool:
    """The okay-to-text an import leaves: the row's, unless it is empty, or a `true` for an opted-out number."""
    if row.okay is None or (row.okay and opted_out):
        return okay_now
    return row.okay


def _client_changes(row: ClientRow, current: _ClientNow, opted_out: set[str]) -> bool:
    if (row.name, row.language) != (current.name, current.language):
        return True
    if row.mobile is None:
        return False
    phone = current.phone
    if phone is None or phone.number != row.mobile:
        return True
    return _okay_after(row, phone.okay_to_text, phone.opted_out or row.mobile in opted_out) != phone.okay_to_text


async def _create_clients(rows: list[ClientRow], opted_out: set[str], staff: Staff | None) -> None:
    """New clients, their mobiles and each mobile's first ledger entry, in bulk (as directory.create_client
    writes them one by one)."""
    if not rows:
        return
    now = clock.now()
    await bulk.insert_rows(
        "client",
        {"name": "text", "external_id": "text", "preferred_language": "text", "created_at": "timestamptz"},
        [(r.name, r.external_id, r.language, now) for r in rows],
    )
    ids = await _existing_ids("client", [r.external_id for r in rows])
    with_mobile = [r for r in rows if r.mobile]
    await bulk.insert_rows(
        "client_phone",
        {
            "client_id": "int",
            "number": "text",
            "kind": "text",
            "okay_to_text": "bool",
            "opted_out": "bool",
            "created_at": "timestamptz",
        },
        [
            (
                ids[r.external_id],
                r.mobile,
                PhoneKind.MOBILE.value,
                _okay_after(r, False, r.mobile in opted_out),
                r.mobile in opted_out,
                now,
            )
            for r in with_mobile
        ],
    )
    phone_rows = await _rows_where_in(
        "SELECT id, client_id, number, okay_to_text, opted_out FROM client_phone WHERE client_id IN ({marks})",
        [ids[r.external_id] for r in with_mobile],
    )
    by = f" by {staff.name}" if staff is not None else ""
    await bulk.insert_rows(
        "consent_event",
        {
            "number": "text",
            "client_phone_id": "int",
            "okay_to_text": "bool",
            "opted_out": "bool",
            "source": "text",
            "detail": "text",
            "staff_id": "int",
            "at": "timestamptz",
        },
        [
            (
                number,
                phone_id,
                bool(okay),
                bool(out),
                ConsentSource.IMPORT.value,
                IMPORTED + by + ("; the number had opted out before" if out else ""),
                staff.id if staff is not None else None,
                now,
            )
            for phone_id, _, number, okay, out in phone_rows
        ],
    )


async def _update_client(row: ClientRow, current: _ClientNow, opted_out: set[str], staff: Staff | None) -> None:
    if (row.name, row.language) != (current.name, current.language):
        await Client.filter(id=current.id).update(name=row.name, preferred_language=row.language)
    if row.mobile is None:
        return
    phone = current.phone
    if phone is None or phone.number != row.mobile:
        # A new number starts its own ledger: consent given for the old one does not carry over.
        okay = _okay_after(row, False, row.mobile in opted_out)
        if phone is None:
            phone = await ClientPhone.create(client_id=current.id, number=row.mobile, kind=PhoneKind.MOBILE)
        phone.number, phone.okay_to_text, phone.opted_out = row.mobile, okay, False
        await phone.save(update_fields=["number", "okay_to_text", "opted_out"])
        detail = (IMPORTED if current.phone is None else NEW_NUMBER) + (f" by {staff.name}" if staff else "")
        await consent.record_new_phone(phone, ConsentSource.IMPORT, detail, staff)  # marks an earlier STOP
        return
    okay = _okay_after(row, phone.okay_to_text, phone.opted_out or row.mobile in opted_out)
    if okay != phone.okay_to_text:
        change = consent.Change(source=ConsentSource.IMPORT, detail=OKAY_COLUMN, okay_to_text=okay, staff=staff)
        await consent.apply_change(phone.number, change, phone)


# ---------------------------------------------------------------- cases


async def _offices(names: set[str], dry_run: bool) -> dict[str, int]:
    found = {o.name: o.id for o in await Office.filter(name__in=sorted(names))} if names else {}
    for name in sorted(names - set(found)):
        if not dry_run:
            found[name] = (await Office.create(name=name)).id
    return found


async def _import_cases(plan: Plan, dry_run: bool, tick: Callable[[int], None]) -> None:
    tally = plan.tallies.setdefault(Kind.CASES, Tally())
    rows = await _rows_where_in(
        "SELECT c.external_id, c.id, c.number, c.title, cl.external_id, c.legal_problem, o.name, c.opened_on, "
        'c.closed_on FROM "case" c JOIN client cl ON cl.id = c.client_id LEFT JOIN office o ON o.id = c.office_id '
        "WHERE c.external_id IN ({marks})",
        [row.external_id for _, row in plan.cases],
    )
    now_by_id = {str(r[0]): (int(r[1]), tuple(r[2:7]), _as_date(r[7]), _as_date(r[8])) for r in rows}
    new: list[CaseRow] = []
    changed: list[tuple[CaseRow, int]] = []
    for _, row in plan.cases:
        current = now_by_id.get(row.external_id)
        if current is None:
            new.append(row)
            continue
        case_id, fields_now, opened_now, closed_now = current
        wanted = (row.number, row.title, row.client_external_id, row.legal_problem, row.office)
        if wanted != fields_now or (row.opened_on or opened_now) != opened_now or row.closed_on != closed_now:
            changed.append((row, case_id))
        else:
            tally.unchanged += 1
    tally.created, tally.updated = len(new), len(changed)
    if dry_run:
        tick(len(plan.cases))
        return
    offices = await _offices({r.office for r in new + [c for c, _ in changed] if r.office}, dry_run)
    client_ids = {
        **plan.client_ids,
        **await _existing_ids(
            "client",
            [
                r.client_external_id
                for r in new + [c for c, _ in changed]
                if r.client_external_id not in plan.client_ids
            ],
        ),
    }
    today = clock.now().date()
    await bulk.insert_rows(
        _name("case"),
        {
            "number": "text",
            "title": "text",
            "legal_problem": "text",
            "client_id": "int",
            "office_id": "int",
            "external_id": "text",
            "opened_on": "date",
            "closed_on": "date",
            "created_at": "timestamptz",
        },
        [
            (
                r.number,
                r.title,
                r.legal_problem,
                client_ids[r.client_external_id],
                offices.get(r.office) if r.office else None,
                r.external_id,
                r.opened_on or today,
                r.closed_on,
                clock.now(),
            )
            for r in new
        ],
    )
    tick(len(new))
    for row, case_id in changed:
        values: dict[str, Any] = {
            "number": row.number,
            "title": row.title,
            "client_id": client_ids[row.client_external_id],
            "legal_problem": row.legal_problem,
            "office_id": offices.get(row.office) if row.office else None,
            "closed_on": row.closed_on,
        }
        if row.opened_on is not None:
            values["opened_on"] = row.opened_on
        await Case.filter(id=case_id).update(**values)
        tick(1)
    tick(tally.unchanged)
    plan.case_ids.update(await _existing_ids("case", [r.external_id for r in new]))


# ---------------------------------------------------------------- assignments


async def _import_assignments(plan: Plan, dry_run: bool, tick: Callable[[int], None]) -> None:
    tally = plan.tallies.setdefault(Kind.ASSIGNMENTS, Tally())
    current: dict[tuple[int, int], tuple[int, bool, date | None, date | None]] = {}
    for row_id, case_id, staff_id, primary, start, end in await _rows_where_in(
        'SELECT id, case_id, staff_id, "primary", start, "end" FROM assignment WHERE case_id IN ({marks}) ORDER BY id',
        list(plan.case_ids.values()),
    ):
        current[(int(case_id), int(staff_id))] = (int(row_id), bool(primary), _as_date(start), _as_date(end))
    new: list[tuple[int, AssignmentRow]] = []
    changed: list[tuple[bool, date, date | None, int]] = []
    for _, row in plan.assignments:
        case_id = plan.case_ids.get(row.case_external_id)
        now = current.get((case_id, row.staff_id)) if case_id is not None else None
        if now is None:
            new.append((case_id or 0, row))
            continue
        row_id, primary, start, end = now
        start_after = row.start or start
        if (row.primary, start_after, row.end) != (primary, start, end):
            changed.append((row.primary, start_after or clock.now().date(), row.end, row_id))
        else:
            tally.unchanged += 1
    tally.created, tally.updated = len(new), len(changed)
    if dry_run:
        tick(len(plan.assignments))
        return
    now_moment, today = clock.now(), clock.now().date()
    await bulk.insert_rows(
        "assignment",
        {
            "staff_id": "int",
            "case_id": "int",
            _name("primary"): "bool",
            "start": "date",
            _name("end"): "date",
            "created_at": "timestamptz",
        },
        [(r.staff_id, case_id, r.primary, r.start or today, r.end, now_moment) for case_id, r in new],
    )
    await bulk.update_rows("assignment", {'"primary"': "bool", "start": "date", '"end"': "date"}, changed)
    tick(len(plan.assignments))


# ---------------------------------------------------------------- events


async def _import_events(plan: Plan, dry_run: bool, staff: Staff | None, tick: Callable[[int], None]) -> None:
    """New events in bulk with their reminders (event_import: what adding them by hand writes); changed ones one
    by one through case_events, so their reminders move as when edited by hand."""
    tally = plan.tallies.setdefault(Kind.EVENTS, Tally())
    # Compared as plain rows: loading every event with its reminders took ~4 ms each, for events mostly unchanged.
    existing: dict[str, _EventNow] = {}
    for external_id, *fields in await _rows_where_in(
        "SELECT external_id, id, kind, title, starts_at, place, case_id, cancelled_at FROM case_event "
        "WHERE external_id IN ({marks})",
        [r.external_id for _, r in plan.events],
    ):
        existing[str(external_id)] = _EventNow(*fields)
    changed = [
        (row, existing[row.external_id].id)
        for _, row in plan.events
        if row.external_id in existing and existing[row.external_id].changed_by(row, plan.case_ids)
    ]
    loaded: dict[int, CaseEvent] = {}
    if changed and not dry_run:
        for chunk in _chunks([event_id for _, event_id in changed]):
            for found in await CaseEvent.filter(id__in=chunk).prefetch_related(
                "case", "attendees__staff", "reminders__message"
            ):
                loaded[found.id] = found
    now = clock.now()
    new: list[event_import.NewEvent] = []
    for _, row in plan.events:
        current = existing.get(row.external_id)
        if current is None:
            tally.created += 1
            if not dry_run:  # (a dry run has not written the cases its events may name)
                case_id = plan.case_ids[row.case_external_id]
                new.append(
                    event_import.NewEvent(row.external_id, case_id, row.kind, row.title, row.starts_at, row.place)
                )
            tick(1)
            continue
        if current.changed_by(row, plan.case_ids):
            tally.updated += 1
            if not dry_run:
                assert staff is not None
                event = loaded[current.id]
                if event.case_id != plan.case_ids[row.case_external_id]:
                    await CaseEvent.filter(id=event.id).update(case_id=plan.case_ids[row.case_external_id])
                    event.case = await Case.get(id=plan.case_ids[row.case_external_id])
                changes = {"kind": row.kind.value, "title": row.title, "starts_at": row.starts_at, "place": row.place}
                await case_events.change_event(staff, event, case_events.with_changes(event, **changes), now)
        else:
            tally.unchanged += 1  # a cancelled event stays cancelled: the import does not bring it back
        tick(1)
    if not dry_run and new:
        assert staff is not None  # run_import refuses events without someone to schedule their reminders
        await event_import.create_events(new, staff, await organisation.current(), now)


@dataclass
class _EventNow:
    """An event as the database has it, for comparing with its row."""

    id: int
    kind: str
    title: str
    starts_at: datetime | str  # SQLite answers text
    place: str
    case_id: int
    cancelled_at: datetime | str | None

    def changed_by(self, row: EventRow, case_ids: dict[str, int]) -> bool:
        """A cancelled event stays cancelled: the import does not bring it back (nor changes it)."""
        if self.cancelled_at is not None:
            return False
        starts = datetime.fromisoformat(self.starts_at) if isinstance(self.starts_at, str) else self.starts_at
        return (self.kind, self.title, starts, self.place, self.case_id) != (
            row.kind.value,
            row.title,
            row.starts_at,
            row.place,
            case_ids.get(row.case_external_id),
        )


# ---------------------------------------------------------------- the import


class _Counter:
    """Progress over all the work: every row is checked once, then written or compared once."""

    def __init__(self, rows: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = 2 * rows or 1, 0, progress

    def __call__(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        if self.progress is not None:
            self.progress(self.done, self.total)


def read_files(files: list[CsvFile]) -> tuple[list[ParsedFile], list[Problem]]:
    parsed: list[ParsedFile] = []
    problems: list[Problem] = []
    for file in files:
        try:
            parsed.append(parse(file))
        except UnreadableFile as exc:
            problems.append(exc.problem)
    return parsed, problems


async def run_import(
    bus: Bus,
    files: list[CsvFile],
    *,
    dry_run: bool = False,
    staff: Staff | None = None,
    progress: Progress | None = None,
    written: Callable[[ImportReport], Awaitable[None]] | None = None,
) -> ImportReport:
    """Checks every row of `files`, then (unless a dry run) writes them in one unit of work. Raises
    ImportFailed, naming every problem, when any row is wrong: then nothing is written. `staff` is who imports
    (credited in the consent ledger; events' reminders are scheduled in their name). `written` gets the report
    of a real import inside its transaction (the upload page's job row commits with the rows it reports)."""
    parsed, problems = read_files(files)
    if problems:
        raise ImportFailed(problems)
    tick = _Counter(sum(len(f.rows) for f in parsed), progress)
    plan = await make_plan(parsed, tick)
    if plan.events and staff is None:
        plan.problem(plan.file_of[Kind.EVENTS][0], 1, None, "events need a staff member to schedule their reminders.")
    if plan.problems:
        raise ImportFailed(sorted(plan.problems, key=lambda p: (p.file, p.line or 0)))
    if dry_run:
        await _write(plan, True, staff, tick)
    else:
        async with unit_of_work(bus):
            await _write(plan, False, staff, tick)
            # One entry per import, in its transaction: who loaded which files and what they changed (the rows
            # themselves are the case management system's; the consent ledger names each okay-to-text it applied).
            await audit.record(audit.Action.IMPORTED, staff, None, files=[f.name for f in files], **_changes(plan))
            if written is not None:
                await written(_report(plan, dry_run))
    return _report(plan, dry_run)


def _report(plan: Plan, dry_run: bool) -> ImportReport:
    tallies = {kind: plan.tallies[kind] for kind in ORDER if kind in plan.file_of}
    return ImportReport(dry_run, tallies, plan.notices)


def _changes(plan: Plan) -> dict[str, int]:
    """The audit entry's counts: created and updated per kind loaded (unchanged rows changed nothing)."""
    counts: dict[str, int] = {}
    for kind in ORDER:
        if kind in plan.file_of:
            tally = plan.tallies.get(kind, Tally())
            counts[f"{kind.value}_created"] = tally.created
            counts[f"{kind.value}_updated"] = tally.updated
    return counts


async def _write(plan: Plan, dry_run: bool, staff: Staff | None, tick: Callable[[int], None]) -> None:
    if Kind.CLIENTS in plan.file_of:
        await _import_clients(plan, dry_run, staff, tick)
    if Kind.CASES in plan.file_of:
        await _import_cases(plan, dry_run, tick)
    if Kind.ASSIGNMENTS in plan.file_of:
        await _import_assignments(plan, dry_run, tick)
    if Kind.EVENTS in plan.file_of:
        await _import_events(plan, dry_run, staff, tick)


async def importing_staff(email: str | None) -> Staff | None:
    """Whom a command-line import is credited to: the staff member named, else the first active admin."""
    if email:
        staff = await Staff.get_or_none(email=email.strip().lower(), is_active=True)
        if staff is None:
            raise NotFound(f"No active staff account has the email {email}.")
        return staff
    return await Staff.filter(role=Role.ADMIN, is_active=True).order_by("id").first()
