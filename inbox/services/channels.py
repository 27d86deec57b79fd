"""Sending numbers ("channels", PC JIMS's per-office accounts): set up, found for a webhook, answered calls.

A channel is one Twilio account's sending number or Messaging Service. Its auth token is stored
encrypted (inbox.crypto); a channel with no stored token uses TWILIO_AUTH_TOKEN when its account is
TWILIO_ACCOUNT_SID's (the channel the environment bootstraps on first start).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise.transactions import in_transaction

from inbox import clock
from inbox.crypto import SecretBox
from inbox.events import Bus
from inbox.models import AutoReplyMode, Case, Channel, Conversation, Office, Role, Staff, WebhookPayload
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services import audit, organisation, settings_cache, settings_news
from inbox.services.errors import Forbidden, require
from inbox.services.limits import check_fits
from inbox.sms.base import ProviderInfo

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
HOUR_MINUTE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAYS: tuple[tuple[str, str], ...] = (
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
)
CALL_RESPONSE_LIMIT = 1000  # spoken with <Say>; Twilio's own ceiling is 4,096 characters
MAX_THROUGHPUT = 1000  # segments per second: long code 1, toll-free 3, short code 100+


# ---------------------------------------------------------------- finding channels


async def ensure_channel(info: ProviderInfo) -> Channel:
    """The channel for the provider the environment names (TWILIO_* or the simulator), created on first start."""
    channel = await Channel.filter(account_sid=info.account_sid).order_by("id").first()
    if channel is None:
        channel = await Channel.create(
            label=info.label,
            account_sid=info.account_sid,
            from_number=info.from_number,
            messaging_service_sid=info.messaging_service_sid,
            is_simulator=info.is_simulator,
        )
        settings_cache.forget(settings_cache.CHANNELS)
    return channel


async def default_channel() -> Channel:
    channel = await Channel.all().order_by("id").first()
    if channel is None:
        raise RuntimeError("No channel is set up: the app creates one on start.")
    return channel


async def channel_for_new_text(number: str, case: Case | None = None) -> Channel:
    """Where a text that names no conversation goes out from: the number the client last talked to
    (one thread per person, not one per office), else the case's office's number, else the first."""
    talked = Conversation.filter(phone=number)
    latest = (
        await talked.filter(last_message_at__not_isnull=True).order_by("-last_message_at", "-id").first()
        or await talked.order_by("-id").first()
        if number
        else None
    )
    if latest is not None:
        return await Channel.get(id=latest.channel_id)
    if case is not None and case.office_id is not None:
        office_channel = await Channel.filter(office_id=case.office_id).order_by("id").first()
        if office_channel is not None:
            return office_channel
    return await default_channel()


def later_thread(last: datetime | None, cid: int, seen_last: datetime | None, seen_id: int) -> bool:
    """Whether thread `cid` (its latest text at `last`) comes before the one seen so far, in channel_for_new_text's
    order: the most recent text first, then the newest thread (for the bulk writers that choose for many numbers
    from rows already read)."""
    if (last is None) != (seen_last is None):
        return last is not None
    if last is not None and seen_last is not None and last != seen_last:
        return last > seen_last
    return cid > seen_id


async def channels_of_account(account_sid: str) -> list[Channel]:
    if not account_sid:
        return []
    return await Channel.filter(account_sid=account_sid).order_by("id")


async def channels_for_webhook(
    account_sid: str, to_number: str = "", messaging_service_sid: str | None = None, *, cached: bool = False
) -> list[Channel]:
    """The account's channels, the one the webhook is for first: by Messaging Service, then by number.

    A Messaging Service sends and receives on any number of its pool, so `To` need not be any
    channel's from-number: the account's other channels follow (services first), and a webhook is
    genuine when any of them validates it. Empty: the account is not ours.
    `cached`: from this process's copy (inbox.services.settings_cache).
    """
    if cached:
        candidates = await settings_cache.channels_of_account(account_sid) if account_sid else []
    else:
        candidates = await channels_of_account(account_sid)

    def rank(channel: Channel) -> tuple[int, int]:
        if messaging_service_sid and channel.messaging_service_sid == messaging_service_sid:
            return (0, channel.id)
        if to_number and channel.from_number == to_number:
            return (1, channel.id)
        return (2 if channel.messaging_service_sid else 3, channel.id)

    return sorted(candidates, key=rank)


async def channel_for_sender(from_number: str | None, messaging_service_sid: str | None) -> Channel | None:
    if messaging_service_sid:
        return await Channel.filter(messaging_service_sid=messaging_service_sid).order_by("id").first()
    if from_number:
        return await Channel.filter(from_number=from_number).order_by("id").first()
    return None


# ---------------------------------------------------------------- voice


def say_twiml(words: str) -> str:
    """TwiML speaking `words` (hanging up at once when there is nothing to say)."""
    if not words.strip():
        return '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{escape(words.strip())}</Say></Response>'


async def answer_call(channel: Channel, payload: WebhookPayload) -> str:
    """Prime's "Call Response": the channel's words, spoken to whoever calls its number."""
    payload.processed_at = clock.now()
    await payload.save(update_fields=["processed_at"])
    return say_twiml(channel.call_response)


# ---------------------------------------------------------------- office hours


def parse_office_hours(raw: Mapping[str, object] | None) -> dict[str, tuple[time, time]]:
    """{"mon": ["09:00", "17:00"], …} as times; days missing or malformed are closed."""
    hours: dict[str, tuple[time, time]] = {}
    for day, _ in DAYS:
        span = (raw or {}).get(day)
        if (
            isinstance(span, list | tuple)
            and len(span) == 2
            and all(isinstance(x, str) and HOUR_MINUTE.match(x) for x in span)
        ):
            opens, closes = time.fromisoformat(span[0]), time.fromisoformat(span[1])
            if opens < closes:
                hours[day] = (opens, closes)
    return hours


def within_office_hours(channel: Channel, at: datetime) -> bool:
    """Whether the office is open at `at` (an aware time), in the channel's own time zone."""
    local = at.astimezone(ZoneInfo(channel.time_zone))
    span = parse_office_hours(channel.office_hours).get(DAYS[local.weekday()][0])
    return span is not None and span[0] <= local.time().replace(tzinfo=None) < span[1]


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        return False
    return bool(name)


# ---------------------------------------------------------------- the admin form


@dataclass(frozen=True)
class ChannelForm:
    """What an administrator typed, kept as typed so a refused form comes back as it was."""

    label: str = ""
    office_id: str = ""
    account_sid: str = ""
    auth_token: str = ""  # blank: keep the stored one (or use the environment's, for its account)
    from_number: str = ""
    messaging_service_sid: str = ""
    throughput: str = "1"
    help_text: str = "Case Inbox: reply STOP to stop texts, START to receive them again."
    twilio_handles_opt_out: bool = True
    auto_reply_mode: str = AutoReplyMode.OFF.value
    auto_reply_text: str = ""
    office_hours: dict[str, tuple[str, str]] = field(default_factory=dict)  # day → (opens, closes), "" when closed
    time_zone: str = "America/New_York"
    call_response: str = "Thank you for calling. This number does not accept calls."

    @classmethod
    def of(cls, channel: Channel) -> ChannelForm:
        hours = {
            day: (span[0].strftime("%H:%M"), span[1].strftime("%H:%M"))
            for day, span in parse_office_hours(channel.office_hours).items()
        }
        return cls(
            label=channel.label,
            office_id=str(channel.office_id or ""),
            account_sid=channel.account_sid,
            from_number=channel.from_number or "",
            messaging_service_sid=channel.messaging_service_sid or "",
            throughput=str(channel.throughput),
            help_text=channel.help_text,
            twilio_handles_opt_out=channel.twilio_handles_opt_out,
            auto_reply_mode=channel.auto_reply_mode.value,
            auto_reply_text=channel.auto_reply_text,
            office_hours=hours,
            time_zone=channel.time_zone,
            call_response=channel.call_response,
        )


@dataclass(frozen=True)
class _Checked:
    office: Office | None
    from_number: str | None
    messaging_service_sid: str | None
    throughput: int
    office_hours: dict[str, list[str]]


def _require_admin(staff: Staff) -> None:
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may set up sending numbers.")


async def _check(
    form: ChannelForm, channel: Channel | None, credentials_locked: bool, env_account_sid: str | None
) -> _Checked:
    errors: dict[str, str] = {}
    limit = await organisation.text_limit()
    if not form.label.strip():
        errors["label"] = "Give the number a label staff will recognise, e.g. “Housing unit”."
    check_fits(errors, "label", form.label.strip(), Channel)
    office = None
    if form.office_id.strip():
        office_id = form.office_id.strip()
        office = await Office.get_or_none(id=int(office_id)) if office_id.isdigit() and len(office_id) < 10 else None
        if office is None:
            errors["office_id"] = "Choose one of the offices."

    from_number = channel.from_number if channel is not None and credentials_locked else None
    service_sid = channel.messaging_service_sid if channel is not None and credentials_locked else None
    if not credentials_locked:
        account_sid = form.account_sid.strip()
        if not ACCOUNT_SID.match(account_sid):
            errors["account_sid"] = (
                "An account SID is “AC” followed by 32 hexadecimal characters (Twilio console, Account info)."
            )
        token = form.auth_token.strip()
        new_account = channel is None or channel.account_sid != account_sid
        if token and (len(token) < 16 or len(token) > 128 or any(c.isspace() for c in token)):
            errors["auth_token"] = "That does not look like an auth token: 32 characters, no spaces."
        elif not token and new_account and account_sid != env_account_sid:
            errors["auth_token"] = "Enter the account's auth token (Twilio console, Account info)."
        if form.from_number.strip():
            try:
                from_number = normalise(form.from_number)
            except InvalidPhoneNumber as exc:
                errors["from_number"] = str(exc)
        if form.messaging_service_sid.strip():
            service_sid = form.messaging_service_sid.strip()
            if not MESSAGING_SERVICE_SID.match(service_sid):
                errors["messaging_service_sid"] = (
                    "A Messaging Service SID is “MG” followed by 32 hexadecimal characters."
                )
        if not form.from_number.strip() and not form.messaging_service_sid.strip():
            errors["from_number"] = "Enter the sending number, or a Messaging Service SID below."
        others = Channel.exclude(id=channel.id) if channel is not None else Channel.all()
        if from_number and "from_number" not in errors and await others.filter(from_number=from_number).exists():
            errors["from_number"] = "Another sending number already uses this number."
        if (
            service_sid
            and "messaging_service_sid" not in errors
            and await others.filter(messaging_service_sid=service_sid).exists()
        ):
            errors["messaging_service_sid"] = "Another sending number already uses this Messaging Service."

    throughput = int(form.throughput) if form.throughput.strip().isdigit() else 0
    if not 1 <= throughput <= MAX_THROUGHPUT:
        errors["throughput"] = f"Segments per second, from 1 to {MAX_THROUGHPUT} (a long code sends 1, toll-free 3)."
    if not form.help_text.strip():
        errors["help_text"] = "Write the answer to HELP: who you are and how to stop texts."
    organisation.check_text_length(errors, "help_text", form.help_text, limit)
    if form.auto_reply_mode not in {mode.value for mode in AutoReplyMode}:
        errors["auto_reply_mode"] = "Choose when to answer texts automatically."
    elif form.auto_reply_mode != AutoReplyMode.OFF and not form.auto_reply_text.strip():
        errors["auto_reply_text"] = "Write the automatic reply, or turn automatic replies off."
    organisation.check_text_length(errors, "auto_reply_text", form.auto_reply_text, limit)
    hours: dict[str, list[str]] = {}
    for day, name in DAYS:
        opens, closes = (part.strip() for part in form.office_hours.get(day, ("", "")))
        if not opens and not closes:
            continue
        if not (HOUR_MINUTE.match(opens) and HOUR_MINUTE.match(closes)):
            errors[f"hours_{day}"] = f"{name}: give both times as HH:MM, or leave both empty when closed."
        elif opens >= closes:
            errors[f"hours_{day}"] = f"{name}: closing time must be after opening time."
        else:
            hours[day] = [opens, closes]
    if (
        form.auto_reply_mode == AutoReplyMode.OUTSIDE_HOURS
        and not hours
        and not any(k.startswith("hours_") for k in errors)
    ):
        errors["office_hours"] = "Set the office hours, or choose to answer every text."
    check_fits(errors, "time_zone", form.time_zone.strip(), Channel)
    if not valid_time_zone(form.time_zone.strip()):
        errors.setdefault("time_zone", "Choose a time zone from the list, e.g. America/New_York.")
    if len(form.call_response) > CALL_RESPONSE_LIMIT:
        errors["call_response"] = f"Keep the spoken answer under {CALL_RESPONSE_LIMIT} characters."
    require(errors)
    return _Checked(office, from_number, service_sid, throughput, hours)


async def save_channel(
    staff: Staff,
    box: SecretBox,
    form: ChannelForm,
    channel: Channel | None = None,
    *,
    credentials_locked: bool = False,
    env_account_sid: str | None = None,
    bus: Bus | None = None,
) -> Channel:
    """Create (channel None) or update a channel. The token is encrypted; blank keeps the stored one."""
    _require_admin(staff)
    if channel is not None and channel.is_simulator:
        credentials_locked = True
    checked = await _check(form, channel, credentials_locked, env_account_sid)
    before = [getattr(channel, name) for name in AUDITED_FIELDS] if channel is not None else None
    channel = channel or Channel(account_sid="")
    if not credentials_locked:
        account_sid = form.account_sid.strip()
        token = form.auth_token.strip()
        if token:
            channel.auth_token_encrypted = box.encrypt(token)
        elif channel.account_sid != account_sid:
            channel.auth_token_encrypted = None  # the environment's account (checked above)
        channel.account_sid = account_sid
        channel.from_number = checked.from_number
        channel.messaging_service_sid = checked.messaging_service_sid
    channel.label = form.label.strip()
    channel.office = checked.office
    channel.throughput = checked.throughput
    channel.help_text = form.help_text.strip()
    channel.twilio_handles_opt_out = form.twilio_handles_opt_out
    channel.auto_reply_mode = AutoReplyMode(form.auto_reply_mode)
    channel.auto_reply_text = form.auto_reply_text.strip()
    channel.office_hours = checked.office_hours
    channel.time_zone = form.time_zone.strip()
    channel.call_response = form.call_response.strip()
    async with in_transaction():
        await channel.save()
        await audit.record(audit.Action.SETTING_CHANGED, staff, channel, changed=_changed(before, channel))
    await settings_news.changed(bus, settings_news.CHANNELS)
    return channel


# A channel's settings, by name: the audit trail says which a save changed (never the token, only that it did).
AUDITED_FIELDS = (
    "account_sid",
    "auth_token_encrypted",
    "from_number",
    "messaging_service_sid",
    "label",
    "office_id",
    "throughput",
    "help_text",
    "twilio_handles_opt_out",
    "auto_reply_mode",
    "auto_reply_text",
    "office_hours",
    "time_zone",
    "call_response",
)


def _changed(before: list[object] | None, channel: Channel) -> list[str]:
    if before is None:
        return ["created"]
    return [name for name, old in zip(AUDITED_FIELDS, before, strict=True) if getattr(channel, name) != old]


async def list_channels(staff: Staff) -> list[Channel]:
    _require_admin(staff)
    return await Channel.all().order_by("id").prefetch_related("office")


async def get_channel(staff: Staff, channel_id: int) -> Channel | None:
    _require_admin(staff)
    return await Channel.get_or_none(id=channel_id).prefetch_related("office")
