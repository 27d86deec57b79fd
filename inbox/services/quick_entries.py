"""Quick entries (Prime's "Quick Entry"): canned texts with {placeholders}, filled in for one client and case.

Entries sharing a name are variants of one text, one per language (None: the default). The
composer offers each name once; filling it picks the variant in the client's preferred language.
A placeholder with no value is left in the text, visibly, with a warning: the person sending
must fill it in before sending, as Prime's staff fill in the office phone by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tortoise.transactions import in_transaction

from inbox import clock
from inbox.models import Case, Client, Office, Organisation, QuickEntry, Role, Staff
from inbox.phones import for_people
from inbox.services import audit, messaging, organisation, quiet_hours, visibility
from inbox.services.errors import Forbidden, NotFound, require
from inbox.services.limits import check_fits

PLACEHOLDERS: dict[str, str] = {
    "client_first_name": "the client's first name",
    "client_name": "the client's full name",
    "case_number": "the case number",
    "case_title": "the case's title",
    "office_name": "the office of the case (else yours)",
    "office_phone": "that office's phone number",
    "staff_name": "your name",
    "staff_first_name": "your first name",
    "organisation_name": "the organisation's name",
    "today": "today's date, e.g. November 21, 2026",
    # Filled in for a case event's reminders only (the client's time zone); empty in the composer.
    "event_title": "the event's title (event reminders)",
    "event_date": "the event's date, e.g. December 3, 2026 (event reminders)",
    "event_time": "the event's time, e.g. 9:30 a.m. (event reminders)",
    "event_place": "where the event is (event reminders)",
}
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def placeholders_in(body: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(body)))


# ---------------------------------------------------------------- administration


@dataclass(frozen=True)
class QuickEntryInput:
    name: str
    language: str
    body: str
    position: str = "0"


@dataclass(frozen=True)
class CheckedEntry:
    name: str
    language: str | None
    body: str
    position: int


def _require_admin(staff: Staff) -> None:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may change quick entries.")


async def check_entry(data: QuickEntryInput, entry_id: int | None = None) -> CheckedEntry:
    errors: dict[str, str] = {}
    name = data.name.strip()
    language = data.language.strip().lower().replace("_", "-") or None
    if not name:
        errors["name"] = "Give the entry a name staff will recognise in the list."
    check_fits(errors, "name", name, QuickEntry)
    if language is not None and not LANGUAGE.fullmatch(language):
        errors["language"] = "Use a language code such as es, en or pt-br, or leave it empty for the default."
    check_fits(errors, "language", language, QuickEntry)
    if not data.body.strip():
        errors["body"] = "Write the text."
    organisation.check_text_length(errors, "body", data.body, await organisation.text_limit())
    if "body" not in errors:
        unknown = [p for p in placeholders_in(data.body) if p not in PLACEHOLDERS]
        if unknown:
            names = ", ".join("{" + p + "}" for p in unknown)
            errors["body"] = f"Unknown placeholder {names}: use one of the placeholders listed below."
    position = data.position.strip() or "0"
    if not re.fullmatch(r"-?\d{1,6}", position):
        errors["position"] = "Give a whole number (smaller numbers come first)."
    if name and "name" not in errors and "language" not in errors:
        clash = QuickEntry.filter(name=name, language=language)
        if entry_id is not None:
            clash = clash.exclude(id=entry_id)
        if await clash.exists():
            which = f"a {language} version" if language else "a default version"
            errors["language"] = f"“{name}” already has {which}; edit that one, or choose another language."
    require(errors)
    return CheckedEntry(name, language, data.body, int(position))


async def create_entry(staff: Staff, data: QuickEntryInput) -> QuickEntry:
    _require_admin(staff)
    checked = await check_entry(data)
    async with in_transaction():
        entry = await QuickEntry.create(
            name=checked.name, language=checked.language, body=checked.body, position=checked.position
        )
        await _audit(staff, entry, "created", None)
    return entry


async def get_entry(entry_id: int) -> QuickEntry:
    entry = await QuickEntry.get_or_none(id=entry_id)
    if entry is None:
        raise NotFound("No quick entry has this id.")
    return entry


async def update_entry(staff: Staff, entry_id: int, data: QuickEntryInput) -> QuickEntry:
    _require_admin(staff)
    entry = await get_entry(entry_id)
    checked = await check_entry(data, entry_id=entry.id)
    before = _audited(entry)
    entry.name, entry.language, entry.body, entry.position = (
        checked.name,
        checked.language,
        checked.body,
        checked.position,
    )
    async with in_transaction():
        await entry.save(update_fields=["name", "language", "body", "position"])
        await _audit(staff, entry, "updated", before)
    return entry


async def delete_entry(staff: Staff, entry_id: int) -> None:
    _require_admin(staff)
    entry = await get_entry(entry_id)
    async with in_transaction():
        await _audit(staff, entry, "deleted", _audited(entry))
        await entry.delete()


def _audited(entry: QuickEntry) -> dict[str, audit.Scalar]:
    return {"name": entry.name, "language": entry.language, "body": entry.body, "position": entry.position}


async def _audit(staff: Staff, entry: QuickEntry, change: str, before: dict[str, audit.Scalar] | None) -> None:
    """Who changed which entry, and how: its name, language and position before and after; of its text, only
    that it changed (the text is long, and may be in the client's language)."""
    if change == "deleted":
        detail: dict[str, audit.Detail] = {"before": {k: v for k, v in (before or {}).items() if k != "body"}}
    else:
        detail = audit.setting_changes(before, _audited(entry), words_kept_out={"body"})
    await audit.record(audit.Action.SETTING_CHANGED, staff, entry, setting="quick_entry", change=change, **detail)


async def all_entries() -> list[QuickEntry]:
    """Every variant, grouped by name in the composer's order (default variant first)."""
    entries = await QuickEntry.all()
    order = _name_order(entries)
    return sorted(entries, key=lambda e: (order[e.name], e.language is not None, e.language or ""))


def _name_order(entries: list[QuickEntry]) -> dict[str, int]:
    """Names in the order of their smallest position, then alphabetically."""
    first: dict[str, int] = {}
    for entry in entries:
        first[entry.name] = min(first.get(entry.name, entry.position), entry.position)
    names = sorted(first, key=lambda name: (first[name], name.casefold()))
    return {name: index for index, name in enumerate(names)}


# ---------------------------------------------------------------- choosing a variant


def pick_variant(variants: list[QuickEntry], language: str | None) -> QuickEntry:
    """The client's language exactly, else its base language (es for es-MX), else the default, else any."""
    wanted = (language or "").strip().lower().replace("_", "-")
    by_language = {(v.language or "").lower(): v for v in variants}
    if wanted and wanted in by_language:
        return by_language[wanted]
    base = wanted.split("-")[0]
    if base and base in by_language:
        return by_language[base]
    if "" in by_language:
        return by_language[""]
    return min(variants, key=lambda v: (v.language or "", v.id))


async def choices() -> list[QuickEntry]:
    """One entry per name, for the composer's list (the variant is picked when it is filled in)."""
    seen: dict[str, QuickEntry] = {}
    for entry in await all_entries():
        seen.setdefault(entry.name, entry)
    return list(seen.values())


# ---------------------------------------------------------------- filling in


@dataclass(frozen=True)
class Filled:
    entry: QuickEntry
    text: str
    empty: list[str] = field(default_factory=list)  # known placeholders with no value here
    unknown: list[str] = field(default_factory=list)  # placeholders Case Inbox does not know
    char_limit: int = 160

    @property
    def warnings(self) -> list[str]:
        notes = [f"{{{name}}} is empty — fill it in before sending." for name in self.empty]
        notes += [
            f"{{{name}}} is not a placeholder Case Inbox knows — replace it before sending." for name in self.unknown
        ]
        if len(self.text) > self.char_limit:
            notes.append(
                f"Filled in, the text has {len(self.text)} characters; texts are limited to {self.char_limit}."
            )
        return notes


def fill(body: str, values: Mapping[str, str | None]) -> tuple[str, list[str], list[str]]:
    """The text with every known, non-empty placeholder replaced; the others stay as they are."""
    empty: list[str] = []
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            unknown.append(name)
            return match.group(0)
        value = (values.get(name) or "").strip()
        if not value:
            empty.append(name)
            return match.group(0)
        return value

    text = PLACEHOLDER.sub(replace, body)
    return text, list(dict.fromkeys(empty)), list(dict.fromkeys(unknown))


def _first_word(name: str | None) -> str | None:
    words = (name or "").split()
    return words[0] if words else None


def long_date(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


async def values_for(staff: Staff, client: Client | None, case: Case | None, now: datetime) -> dict[str, str | None]:
    org = await organisation.current()
    office_id = case.office_id if case is not None and case.office_id else staff.office_id
    office = await Office.get_or_none(id=office_id) if office_id else None
    return values_from(staff, client, case, org, office, now)


def values_from(
    staff: Staff, client: Client | None, case: Case | None, org: Organisation, office: Office | None, now: datetime
) -> dict[str, str | None]:
    """The placeholders' values from records already read (`office`: the case's, else the staff member's)."""
    zone = quiet_hours.zone_named(org.time_zone)
    return {
        "client_first_name": _first_word(client.name) if client else None,
        "client_name": client.name if client else None,
        "case_number": case.number if case else None,
        "case_title": case.title if case else None,
        "office_name": office.name if office else None,
        "office_phone": for_people(office.phone) if office and office.phone else None,
        "staff_name": staff.name,
        "staff_first_name": _first_word(staff.name),
        "organisation_name": org.name,
        "today": long_date(now.astimezone(zone) if zone else now),
    }


async def fill_in(
    staff: Staff, entry_id: int, client: Client | None, case: Case | None, now: datetime | None = None
) -> Filled:
    chosen = await get_entry(entry_id)
    variant = pick_variant(await QuickEntry.filter(name=chosen.name), client.preferred_language if client else None)
    text, empty, unknown = fill(variant.body, await values_for(staff, client, case, now or clock.now()))
    return Filled(variant, text, empty, unknown, await organisation.text_limit())


async def visible_case(staff: Staff, case_id: int) -> Case:
    case = await Case.get_or_none(id=case_id)
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


async def fill_for_case(staff: Staff, entry_id: int, case_id: int, now: datetime | None = None) -> Filled:
    case = await visible_case(staff, case_id)
    return await fill_in(staff, entry_id, await Client.get(id=case.client_id), case, now)


async def fill_for_conversation(
    staff: Staff, entry_id: int, conversation_id: int, case_id: int | None = None, now: datetime | None = None
) -> Filled:
    """For a thread: the case chosen in its composer (and its client), else the number's first client."""
    conversation = await messaging.conversation_for(staff, conversation_id)
    case = await visible_case(staff, case_id) if case_id is not None else None
    client: Client | None
    if case is not None:
        client = await Client.get(id=case.client_id)
    else:
        query = Client.filter(phones__number=conversation.phone).distinct().order_by("id")
        if not staff.sees_everything:
            query = query.filter(id__in=await visibility.assigned_client_ids(staff))
        client = await query.first()
    return await fill_in(staff, entry_id, client, case, now)
