"""Quiet hours (TCPA): scheduled and bulk texts wait for the organisation's window in the client's time zone.

A person's hand-sent text is never held: only what the outbox worker sends on its own (scheduled
texts, and bulk sends later) asks this module. Every function takes the clock as `now`, so tests
drive time instead of sleeping.

The client's time zone is, in order: `Client.time_zone` (the case's client, else any client with
the number, lowest id first); else the zone of the number's region (phonenumbers' geocoding data);
else the organisation's `time_zone`. A number whose region spans several zones (most of the US
+1 8xx toll-free range, some area codes) takes the organisation's zone when it is one of them, else
the first of phonenumbers' list (alphabetical): deterministic, and said in the hold note.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones
from tortoise.transactions import in_transaction

from inbox.models import Case, ClientPhone, Message, Organisation, Role, Staff
from inbox.services import audit, organisation
from inbox.services.errors import Forbidden, require
from inbox.services.limits import check_fits

UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place


@lru_cache(maxsize=512)
def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone, or None for a blank or unknown name (a typo in an imported record)."""
    if not name or not name.strip() or name == UNKNOWN_ZONE:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        return None


def hour_words(hour: int) -> str:
    """8 a.m., noon, 9 p.m., midnight."""
    if hour % 24 == 0:
        return "midnight"
    if hour == 12:
        return "noon"
    return f"{hour % 12} {'a.m.' if hour < 12 else 'p.m.'}"


@dataclass(frozen=True)
class Window:
    """When texts the worker sends on its own may go: from `start` to `end` o'clock, client time."""

    start: int = 8  # hour the window opens, 0-23
    end: int = 21  # hour it closes, 1-24
    organisation_zone: str = "America/New_York"

    @classmethod
    def of(cls, org: Organisation) -> Window:
        return cls(org.quiet_hours_start, org.quiet_hours_end, org.time_zone)

    def describe(self) -> str:
        return f"{hour_words(self.start)} to {hour_words(self.end)}"

    def is_open(self, moment: datetime, zone: ZoneInfo) -> bool:
        if self.start >= self.end:  # not a usable window (the settings page refuses it): hold nothing
            return True
        local = moment.astimezone(zone)
        minutes = local.hour * 60 + local.minute
        return self.start * 60 <= minutes < self.end * 60

    def opens_at(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first moment at or after `moment` inside the window (UTC)."""
        if self.is_open(moment, zone):
            return moment
        local = moment.astimezone(zone)
        day = local.date() if local.hour < self.start else local.date() + timedelta(days=1)
        return datetime.combine(day, time(self.start), tzinfo=zone).astimezone(UTC)


async def current_window() -> Window:
    return Window.of(await organisation.current())


# ---------------------------------------------------------------- the client's time zone


def zone_for_number(number: str, organisation_zone: str) -> str:
    """The time zone of a number's region; the organisation's when it cannot be told."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return organisation_zone
    zones = [z for z in number_zones.time_zones_for_number(parsed) if zone_named(z) is not None]
    if not zones:
        return organisation_zone
    if len(zones) > 1 and organisation_zone in zones:
        return organisation_zone
    return zones[0]


def choose_zone(explicit: Iterable[str | None], number: str, organisation_zone: str) -> str:
    """The first usable explicit zone (a client's record), else the number's region, else the organisation's."""
    for name in explicit:
        if zone_named(name) is not None:
            return str(name).strip()
    return zone_for_number(number, organisation_zone)


@dataclass(frozen=True)
class Recipient:
    """What the zone of one outbound text depends on."""

    message_id: int
    number: str
    case_id: int | None


async def zones_for(recipients: list[Recipient], organisation_zone: str) -> dict[int, str]:
    """Each text's client time zone (message id → zone name), in two queries however many texts."""
    case_ids = {r.case_id for r in recipients if r.case_id is not None}
    numbers = {r.number for r in recipients}
    case_zones: dict[int, str | None] = (
        dict(await Case.filter(id__in=list(case_ids)).values_list("id", "client__time_zone")) if case_ids else {}
    )
    number_zones_: dict[str, list[str | None]] = {}
    if numbers:
        rows = (
            await ClientPhone.filter(number__in=list(numbers))
            .order_by("client_id")
            .values_list("number", "client__time_zone")
        )
        for number, zone in rows:
            number_zones_.setdefault(number, []).append(zone)
    chosen: dict[int, str] = {}
    for r in recipients:
        explicit = [case_zones.get(r.case_id) if r.case_id is not None else None, *number_zones_.get(r.number, [])]
        chosen[r.message_id] = choose_zone(explicit, r.number, organisation_zone)
    return chosen


async def zone_for_message(message: Message, organisation_zone: str) -> str:
    recipient = Recipient(message.id, message.to_number, message.case_id)
    return (await zones_for([recipient], organisation_zone))[message.id]


# ---------------------------------------------------------------- holds


def clock_words(moment: datetime) -> str:
    """8:00 a.m., 12:30 p.m.: how the hold is said to staff."""
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'a.m.' if moment.hour < 12 else 'p.m.'}"


@dataclass(frozen=True)
class Hold:
    """A text that may not go before `until` (UTC): the quiet hours of its client's `zone`."""

    until: datetime
    zone: str

    @property
    def local(self) -> datetime:
        return self.until.astimezone(zone_named(self.zone) or UTC)

    def describe(self) -> str:
        local = self.local
        day = f"{local:%a} {local.day} {local:%b}"
        return f"held for quiet hours until {clock_words(local)} client time ({day}, {self.zone})"

    @property
    def note(self) -> str:
        """The sentence stored with the text and shown beside its status."""
        words = self.describe()
        return words[0].upper() + words[1:] + "."


def hold_for(send_at: datetime | None, zone: str, window: Window, now: datetime) -> Hold | None:
    """Whether a text due at `send_at` (None: now) must wait, and until when."""
    due = max(send_at or now, now)
    opens = window.opens_at(due, zone_named(zone) or zone_named(window.organisation_zone) or ZoneInfo("UTC"))
    return Hold(opens, zone) if opens > due else None


def is_hold_note(text: str | None) -> bool:
    return bool(text) and str(text).startswith("Held for quiet hours")


async def save_note(message: Message, hold: Hold | None) -> bool:
    """Store (or clear) the hold note shown beside a scheduled text's status; True if it changed.

    Never overwrites another reason (a provider's error): only a hold note replaces a hold note."""
    note = hold.note if hold else None
    current = message.error_message
    if note == current or (current and not is_hold_note(current)):
        return False
    await Message.filter(id=message.id).update(error_message=note)
    message.error_message = note
    return True


async def note_hold(message: Message, now: datetime, window: Window | None = None) -> Hold | None:
    """Work out whether a scheduled text will be held, and say so on the text."""
    window = window or await current_window()
    zone = await zone_for_message(message, window.organisation_zone)
    hold = hold_for(message.send_at, zone, window, now)
    await save_note(message, hold)
    return hold


# ---------------------------------------------------------------- the setting


@dataclass(frozen=True)
class QuietHoursInput:
    start: str
    end: str
    time_zone: str


async def update_window(staff: Staff, data: QuietHoursInput) -> Organisation:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may change the quiet hours.")
    errors: dict[str, str] = {}
    start = int(data.start) if data.start.strip().isdigit() else -1
    end = int(data.end) if data.end.strip().isdigit() else -1
    if not 0 <= start <= 23:
        errors["start"] = "Choose the hour texts may start going out (0–23)."
    if not 1 <= end <= 24:
        errors["end"] = "Choose the hour texts must stop (1–24)."
    elif 0 <= start <= 23 and end <= start:
        errors["end"] = "The window must end after it starts (the same day)."
    check_fits(errors, "time_zone", data.time_zone.strip(), Organisation)
    if zone_named(data.time_zone) is None:
        errors.setdefault("time_zone", "Give a time zone such as America/New_York (the IANA name).")
    require(errors)
    org = await organisation.current()
    before = _window_values(org)
    org.quiet_hours_start, org.quiet_hours_end, org.time_zone = start, end, data.time_zone.strip()
    async with in_transaction():
        await org.save(update_fields=["quiet_hours_start", "quiet_hours_end", "time_zone"])
        changes = audit.setting_changes(before, _window_values(org))
        await audit.record(audit.Action.SETTING_CHANGED, staff, org, setting="quiet_hours", **changes)
    return org


def _window_values(org: Organisation) -> dict[str, audit.Scalar]:
    start, end = org.quiet_hours_start, org.quiet_hours_end
    return {"quiet_hours_start": start, "quiet_hours_end": end, "time_zone": org.time_zone}
