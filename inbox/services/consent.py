"""Consent to text: the ledger behind okay-to-text and opted-out, the rule that refuses a send, the
client's keywords (STOP, START, HELP, …), and the opt-in request ("reply Y or YES to confirm").

Every change of consent goes through `apply_change` (inside the caller's unit of work, which
publishes its ConsentChanged once it commits) or `change_consent` (a unit of work of its own). A
change writes one ConsentEvent per client record with the number — or one for the bare number when
it is on no record, so an unknown number that texted STOP is remembered — and publishes one
ConsentChanged.

This module decides; it writes no texts. What a keyword asks for (our answer, cancelling scheduled
texts) is handed back to inbox.services.inbound, and inbox.services.messaging writes every Message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inbox import clock
from inbox.events import Bus, ConsentChanged
from inbox.models import (
    Channel,
    ClientPhone,
    ConsentEvent,
    ConsentSource,
    Conversation,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    Staff,
    flat_values,
)
from inbox.phones import is_phone_number
from inbox.services import audit, organisation, visibility
from inbox.services.errors import NotFound, Refused
from inbox.services.keywords import HELP_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS, Keyword, classify, confirms_opt_in
from inbox.services.limits import clip, max_length
from inbox.services.unit_of_work import current_unit, unit_of_work

# The client (or Twilio on the client's behalf) spoke for the number: every record with it changes,
# and everyone who may see the conversation may see the change. Staff, the API and imports speak for
# one client's record only.
NUMBER_WIDE = frozenset({ConsentSource.KEYWORD, ConsentSource.REPLY, ConsentSource.PROVIDER})
SOURCE_WORDS: dict[str, str] = {
    ConsentSource.STAFF: "staff",
    ConsentSource.API: "case management system (API)",
    ConsentSource.IMPORT: "import",
    ConsentSource.KEYWORD: "client's keyword",
    ConsentSource.REPLY: "client's reply",
    ConsentSource.PROVIDER: "Twilio",
}
WORDS_OF: dict[Keyword, frozenset[str]] = {
    Keyword.OPT_OUT: OPT_OUT_WORDS,
    Keyword.OPT_IN: OPT_IN_WORDS,
    Keyword.HELP: HELP_WORDS,
}
# A Y or YES confirms the latest opt-in request sent to the number within this long.
OPT_IN_REQUEST_LIFETIME = timedelta(days=30)
STOP_CONFIRMATION = "{org}: you will get no more texts from this number. Reply START to get them again."
START_CONFIRMATION = (
    "{org}: you will get texts from this number again. Msg & data rates may apply. Reply HELP for help, STOP to stop."
)
REPLY_CONFIRMATION = (
    "{org}: thank you, you will get texts about your case. Msg & data rates may apply."
    " Reply HELP for help, STOP to stop."
)


# ---------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class Change:
    """A change of consent: what to set (None leaves it as it is), who or what made it, and why."""

    source: ConsentSource
    detail: str  # the cause, as a phrase: "the client texted STOP", "ticked by Alice"
    okay_to_text: bool | None = None
    opted_out: bool | None = None
    message_id: int | None = None
    staff: Staff | None = None


@dataclass(frozen=True)
class NumberState:
    okay_to_text: bool  # some record with the number says okay to text
    opted_out: bool  # some record with the number (or the bare number) opted out


async def apply_change(number: str, change: Change, phone: ClientPhone | None = None) -> ConsentChanged | None:
    """Records `change` for one client phone, or for every record with `number` (the bare number when
    it is on none). Records only what changes, inside the caller's unit of work, which announces it."""
    at = clock.now()
    rows: list[ConsentEvent] = []
    phones = [phone] if phone is not None else await ClientPhone.filter(number=number).order_by("id")
    if phones:
        for record in phones:
            before = (record.okay_to_text, record.opted_out)
            after = _after(change, *before)
            if after == before:
                continue
            record.okay_to_text, record.opted_out = after
            await record.save(update_fields=["okay_to_text", "opted_out"])
            rows.append(await _write(record.number, record, after, change, at))
    else:
        latest = await latest_change(number)
        before = (latest.okay_to_text, latest.opted_out) if latest else (False, False)
        after = _after(change, *before)
        if after != before:
            rows.append(await _write(number, None, after, change, at))
    if not rows:
        return None
    state = await number_state(number)
    conversation_ids = await flat_values(Conversation.filter(phone=number).order_by("id").values_list("id", flat=True))
    changed = ConsentChanged(
        phone=number,
        okay_to_text=state.okay_to_text,
        opted_out=state.opted_out,
        conversation_ids=list(conversation_ids),
        message_id=change.message_id,
        consent_event_ids=[row.id for row in rows],
    )
    current_unit().publish(changed)
    return changed


async def change_consent(
    bus: Bus, number: str, change: Change, phone: ClientPhone | None = None
) -> ConsentChanged | None:
    """`apply_change` in a unit of work of its own."""
    async with unit_of_work(bus):
        return await apply_change(number, change, phone)


def _after(change: Change, okay_to_text: bool, opted_out: bool) -> tuple[bool, bool]:
    return (
        okay_to_text if change.okay_to_text is None else change.okay_to_text,
        opted_out if change.opted_out is None else change.opted_out,
    )


async def _write(
    number: str, phone: ClientPhone | None, state: tuple[bool, bool], change: Change, at: datetime
) -> ConsentEvent:
    return await ConsentEvent.create(
        number=number,
        client_phone=phone,
        okay_to_text=state[0],
        opted_out=state[1],
        source=change.source,
        detail=clip(change.detail, ConsentEvent, "detail"),
        message_id=change.message_id,
        staff=change.staff,
        at=at,  # one moment for every record a change touches: they are one change
    )


async def record_new_phone(
    phone: ClientPhone, source: ConsentSource, detail: str, staff: Staff | None = None
) -> ConsentEvent:
    """The first ledger entry of a number just put on a client record, inside the caller's transaction.

    A number that opted out (on another record, or as an unknown sender) stays opted out.
    """
    if not phone.opted_out and await _opted_out_elsewhere(phone):
        phone.opted_out = True
        await phone.save(update_fields=["opted_out"])
        detail += "; the number had opted out before"
    change = Change(source=source, detail=detail, staff=staff)
    return await _write(phone.number, phone, (phone.okay_to_text, phone.opted_out), change, clock.now())


async def _opted_out_elsewhere(phone: ClientPhone) -> bool:
    others = await flat_values(
        ClientPhone.filter(number=phone.number).exclude(id=phone.id).values_list("opted_out", flat=True)
    )
    if others:
        return any(others)
    latest = await latest_change(phone.number)  # the bare number's, as the new record has none yet
    return bool(latest and latest.opted_out)


async def latest_change(number: str) -> ConsentEvent | None:
    return await ConsentEvent.filter(number=number).order_by("-at", "-id").first()


async def number_state(number: str) -> NumberState:
    phones = await ClientPhone.filter(number=number).values_list("okay_to_text", "opted_out")
    if phones:
        return NumberState(any(okay for okay, _ in phones), any(out for _, out in phones))
    latest = await latest_change(number)
    return NumberState(bool(latest and latest.okay_to_text), bool(latest and latest.opted_out))


async def is_opted_out(number: str) -> bool:
    """Opted out on any client record, or — for a number on none — by its latest consent change."""
    return (await number_state(number)).opted_out


# ---------------------------------------------------------------- the rule


async def check_may_text(number: str) -> None:
    """Refuse before the provider, naming the ledger's latest cause: opted out anywhere, no record
    saying okay to text, or a number on no record that never texted us."""
    phones = await ClientPhone.filter(number=number)
    # The number's state from the records just read (number_state would read them again).
    if any(p.opted_out for p in phones) if phones else await is_opted_out(number):
        raise Refused(await opted_out_reason(number))
    if phones and not any(p.okay_to_text for p in phones):
        raise Refused(await not_okay_reason(number))
    if not phones and not await Message.exists(direction=Direction.INBOUND, conversation__phone=number):
        raise Refused("This number is not on any client record with consent to text.")


# ---------------------------------------------------------------- the rule at the moment a text leaves

# Every text — a person's, scheduled, automatic, bulk, a retry — is checked again by the outbox in the
# transaction that hands it over (inbox.services.outbox). These are the only exceptions to the rule
# above, and why:
SENT_WITHOUT_CONSENT: dict[MessagePurpose, str] = {
    # CTIA: the one confirmation of an opt-out ("you will get no more texts"), sent only when Twilio does
    # not send its own.
    MessagePurpose.STOP_CONFIRMATION: "the one confirmation of a STOP",
    # Carriers require HELP/INFO to be answered, even from a number that opted out.
    MessagePurpose.HELP: "the answer to HELP, which carriers require",
}
# Texts that ask nothing but "not opted out": the opt-in request asks for consent before there is any;
# a test text to a number on no client record is usually the administrator's own phone.
NEEDS_ONLY_NOT_OPTED_OUT = (MessagePurpose.OPT_IN_REQUEST, MessagePurpose.TEST)


async def refusal_at_send_to(number: str) -> str | None:
    """Why a person's (or an automatic) text to the number may not leave now; None: it may."""
    try:
        await check_may_text(number)
    except Refused as refusal:
        return refusal.message
    return None


async def refusal_at_send(message: Message) -> str | None:
    """Why this text may not leave now (None: it may), judged on the ledger as committed at this moment."""
    purpose = message.purpose
    if purpose in SENT_WITHOUT_CONSENT:
        return None
    number = message.to_number
    if purpose == MessagePurpose.STAFF_REMINDER:
        return await staff_reminder_refusal(number)
    if purpose in NEEDS_ONLY_NOT_OPTED_OUT and (
        purpose == MessagePurpose.OPT_IN_REQUEST or not await ClientPhone.exists(number=number)
    ):
        return await opted_out_reason(number) if await is_opted_out(number) else None
    return await refusal_at_send_to(number)


STAFF_REMINDERS_OFF = "Reminders to this mobile are turned off: no active staff profile with this mobile has them on."
STAFF_MOBILE_STOPPED = "This mobile texted STOP, so reminders to it are stopped; texting START turns them back on."


async def staff_reminder_refusal(number: str) -> str | None:
    """A staff member's own task or calendar reminder: not a client's consent but the profile's setting (an
    active staff member with this mobile has reminders on), and the number must not have opted out — a STOP
    from the staff mobile goes in the same ledger as a client's, and START undoes it."""
    if len(number) > max_length(Staff, "mobile") or not await Staff.exists(
        mobile=number, is_active=True, staff_reminders=True
    ):
        return STAFF_REMINDERS_OFF
    if await is_opted_out(number):
        return STAFF_MOBILE_STOPPED
    return None


async def opted_out_reason(number: str) -> str:
    cause = (
        await ConsentEvent.filter(
            number=number, opted_out=True, source__in=[ConsentSource.KEYWORD, ConsentSource.PROVIDER]
        )
        .order_by("-at", "-id")
        .first()
    )
    if cause is None:
        return "This number has opted out of texts. The client must text START before they can be texted again."
    return (
        f"This number opted out on {await day_of(cause.at)}: {cause.detail}. "
        "The client must text START before they can be texted again."
    )


async def not_okay_reason(number: str) -> str:
    reason = "This client has not agreed to receive texts: “okay to text” is not ticked"
    cause = (
        await ConsentEvent.filter(number=number, client_phone_id__not_isnull=True, okay_to_text=False)
        .order_by("-at", "-id")
        .first()
    )
    if cause is not None:
        reason += f" (since {await day_of(cause.at)}: {cause.detail})"
    if (await organisation.current()).opt_in_requests:
        return reason + ". Tick it once they agree, or ask for consent by text from the client's page."
    return reason + ". Tick it once they agree."


async def day_of(at: datetime) -> str:
    """The day, like "21 Nov", in the organisation's time zone."""
    try:
        zone = ZoneInfo((await organisation.current()).time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    return f"{local.day} {local:%b}"


# ---------------------------------------------------------------- staff and the API


async def visible_phone(staff: Staff, client_id: int, phone_id: int) -> ClientPhone:
    phone = await ClientPhone.get_or_none(id=phone_id, client_id=client_id)
    if phone is None or not await visibility.can_see_client(staff, phone.client_id):
        raise NotFound("This client has no phone with this id.")
    return phone


async def set_okay_to_text(
    bus: Bus,
    staff: Staff,
    client_id: int,
    phone_id: int,
    okay_to_text: bool,
    source: ConsentSource = ConsentSource.STAFF,
) -> ClientPhone:
    """A person ticks or unticks okay-to-text (STAFF), or the case management system says so (API).

    Only the client can undo an opt-out (START, or YES to an opt-in request): ticking the box leaves
    an opted-out number opted out.
    """
    phone = await visible_phone(staff, client_id, phone_id)
    if source == ConsentSource.STAFF:
        detail = f"{'ticked' if okay_to_text else 'unticked'} by {staff.name}"
    else:
        detail = f"set through the API by {staff.name}"
    async with unit_of_work(bus):
        await change_consent(bus, phone.number, Change(source, detail, okay_to_text=okay_to_text, staff=staff), phone)
        await audit.record(audit.Action.CONSENT_CHANGED, staff, phone, okay_to_text=okay_to_text, source=source.value)
    return phone


# ---------------------------------------------------------------- the client's texts


@dataclass(frozen=True)
class AppText:
    """A text the app sends by itself: its words and why."""

    body: str
    purpose: MessagePurpose


@dataclass(frozen=True)
class InboundConsent:
    """What a client's text does to consent, once decided (its ledger rows are already written).

    `keyword` is set when the text was a keyword (STOP, START, HELP, … or what Twilio's OptOutType
    named) or a Y/YES answering an opt-in request: such texts have their own answers and get no
    automatic reply. `reply` is our answer (help text, a confirmation) when one is due and the
    sender can be texted; `cancel_scheduled` the reason every text scheduled to the number must be
    cancelled. inbox.services.inbound has messaging write both.
    """

    keyword: Keyword | None = None
    reply: AppText | None = None
    cancel_scheduled: str | None = None
    answered_request: bool = False  # a Y/YES answering our opt-in request (not a word in a conversation)
    said_yes: bool = False  # the whole text was Y or YES

    @property
    def needs_no_person(self) -> bool:
        """Whether the rules have answered it all, so it raises no "waiting for an answer" alert: STOP, START,
        HELP, a YES to our opt-in request. A bare "Yes" otherwise is Twilio's opt-in keyword too, but it is
        also how a client answers an advocate's question ("Can you come on Tuesday?"), so someone must see it."""
        if self.keyword is None:
            return False
        return not (self.keyword == Keyword.OPT_IN and self.said_yes and not self.answered_request)


def may_be_keyword(body: str, opt_out_type: str | None = None) -> bool:
    """Whether a text may be a keyword (`keyword_of`) without a look-up: a text that is not has nothing to do
    with consent (`handle_inbound` changes nothing and answers nothing), so a batch need not ask."""
    return classify(body, opt_out_type) is not None or confirms_opt_in(body)


async def keyword_of(message: Message, opt_out_type: str | None = None) -> Keyword | None:
    """Whether an inbound text was a keyword: STOP, START, HELP, … (or what Twilio's OptOutType named),
    or a Y/YES answering a pending opt-in request (OPT_IN). The same answer while the text is being
    received and after it. Keyword texts get their own answers, never an automatic reply."""
    keyword = classify(message.body, opt_out_type)
    if keyword is None and await _answers_opt_in_request(message):
        return Keyword.OPT_IN
    return keyword


async def _answers_opt_in_request(message: Message) -> bool:
    return confirms_opt_in(message.body) and await pending_opt_in_request(message.from_number, message) is not None


async def handle_inbound(message: Message, channel: Channel, opt_out_type: str | None = None) -> InboundConsent:
    """The keyword rules for a stored inbound text, inside the inbound unit of work: the ledger changes
    are written (and announced on commit); what else the text asks for is answered."""
    keyword = classify(message.body, opt_out_type)
    number, said = message.from_number, " ".join((message.body or "").split()).upper()
    # Twilio answers STOP/START/HELP itself on this channel; an OptOutType shows it has done so.
    twilio_answers = channel.twilio_handles_opt_out or opt_out_type is not None
    reply: AppText | None = None
    cancel: str | None = None
    org = (await organisation.current()).name
    said_reply = keyword in (None, Keyword.OPT_IN) and await _answers_opt_in_request(message)
    if said_reply:
        keyword = Keyword.OPT_IN
        change = Change(
            ConsentSource.REPLY,
            f"the client replied {said} to the opt-in request",
            okay_to_text=True,
            opted_out=False,
            message_id=message.id,
        )
        await apply_change(number, change)
        if not (twilio_answers and said in OPT_IN_WORDS):  # Twilio confirms YES, never Y
            reply = AppText(REPLY_CONFIRMATION.format(org=org), MessagePurpose.KEYWORD_CONFIRMATION)
    elif keyword == Keyword.OPT_OUT:
        change = _keyword_change(keyword, said, opt_out_type, message, opted_out=True)
        await apply_change(number, change)
        cancel = f"Canceled: {change.detail}."  # Twilio does not cancel our scheduled texts for us
        if not twilio_answers:
            reply = AppText(STOP_CONFIRMATION.format(org=org), MessagePurpose.STOP_CONFIRMATION)
    elif keyword == Keyword.OPT_IN:
        change = _keyword_change(keyword, said, opt_out_type, message, okay_to_text=True, opted_out=False)
        await apply_change(number, change)
        if not twilio_answers:
            reply = AppText(START_CONFIRMATION.format(org=org), MessagePurpose.KEYWORD_CONFIRMATION)
    elif keyword == Keyword.HELP and not twilio_answers:
        reply = AppText(channel.help_text, MessagePurpose.HELP)
    if reply is not None and reply.body.strip() and is_phone_number(number):
        reply = AppText(reply.body.strip(), reply.purpose)
    else:
        reply = None  # nothing to say, or a short code or named sender that cannot be texted back
    return InboundConsent(
        keyword=keyword,
        reply=reply,
        cancel_scheduled=cancel,
        answered_request=said_reply,
        said_yes=confirms_opt_in(message.body),
    )


def _keyword_change(
    keyword: Keyword,
    said: str,
    opt_out_type: str | None,
    message: Message,
    *,
    okay_to_text: bool | None = None,
    opted_out: bool | None = None,
) -> Change:
    if said in WORDS_OF[keyword]:
        return Change(
            ConsentSource.KEYWORD,
            f"the client texted {said}",
            message_id=message.id,
            okay_to_text=okay_to_text,
            opted_out=opted_out,
        )
    # Twilio recognised a keyword we do not (its Advanced Opt-Out lists, other languages): trust it.
    shown = " ".join((message.body or "").split())
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    detail = f"Twilio reported OptOutType {(opt_out_type or '').strip().upper()} for the text “{shown}”"
    return Change(ConsentSource.PROVIDER, detail, message_id=message.id, okay_to_text=okay_to_text, opted_out=opted_out)


async def record_provider_opt_out(message: Message) -> None:
    """Twilio refused a text with 21610: the number unsubscribed (inside the caller's unit of work)."""
    change = Change(
        ConsentSource.PROVIDER,
        "Twilio refused a text with error 21610 (the number has unsubscribed)",
        opted_out=True,
        message_id=message.id,
    )
    await apply_change(message.to_number, change)


# ---------------------------------------------------------------- asking for consent by text


async def pending_opt_in_request(number: str, reply: Message | None = None) -> Message | None:
    """The latest opt-in request to the number that the client had not answered (nor overtaken with a
    keyword, nor Twilio) when `reply` arrived — or by now — sent within OPT_IN_REQUEST_LIFETIME."""
    moment = reply.created_at if reply is not None else clock.now()
    query = Message.filter(
        direction=Direction.OUTBOUND,
        purpose=MessagePurpose.OPT_IN_REQUEST,
        to_number=number,
        created_at__gte=moment - OPT_IN_REQUEST_LIFETIME,
    ).exclude(status__in=[MessageStatus.FAILED, MessageStatus.CANCELED, MessageStatus.UNDELIVERED])
    if reply is not None:
        query = query.filter(id__lt=reply.id)
    request = await query.order_by("-id").first()
    if request is None:
        return None
    answered = ConsentEvent.filter(number=number, source__in=list(NUMBER_WIDE), at__gt=request.created_at)
    if reply is not None:
        answered = answered.filter(at__lt=moment)
    return None if await answered.exists() else request


@dataclass(frozen=True)
class OptInRequest:
    """An opt-in request that may be sent: to this phone, in these words."""

    phone: ClientPhone
    body: str


async def check_opt_in_request(staff: Staff, client_id: int, phone_id: int) -> OptInRequest:
    """Whether staff may ask for consent by text (the organisation's opt-in text): the one send allowed
    before okay-to-text — never to a number that opted out. inbox.services.system_texts sends it."""
    phone = await visible_phone(staff, client_id, phone_id)
    org = await organisation.current()
    if not org.opt_in_requests:
        raise Refused("Opt-in requests are turned off in the organisation's settings.")
    if await is_opted_out(phone.number):
        raise Refused(await opted_out_reason(phone.number))
    if not is_phone_number(phone.number):
        raise Refused("This number cannot receive texts.")
    return OptInRequest(phone, org.opt_in_text.strip())


# ---------------------------------------------------------------- what pages show


@dataclass(frozen=True)
class Notice:
    """One change of consent as a thread shows it: one per change, however many records it touched."""

    id: int  # its first ledger row
    at: datetime
    text: str
    message_id: int | None
    client_ids: frozenset[int]
    number_wide: bool

    def visible_to(self, readable_clients: frozenset[int] | None) -> bool:
        """None: a reader who sees every client. A change to one client's record is that client's business."""
        return readable_clients is None or self.number_wide or bool(self.client_ids & readable_clients)


def headline(row: ConsentEvent) -> str:
    if row.source in NUMBER_WIDE:
        if row.opted_out:
            return "Opted out"
        return "Consent given" if row.source == ConsentSource.REPLY else "Opted back in"
    return "Okay to text" if row.okay_to_text else "Not okay to text"


def describe(row: ConsentEvent) -> str:
    """The words a notice and the ledger show: "Opted out: the client texted STOP"."""
    return f"{headline(row)}: {row.detail}" if row.detail else headline(row)


def notices_of(rows: list[ConsentEvent]) -> list[Notice]:
    """Ledger rows (client_phone fetched) as notices, oldest first."""
    groups: dict[tuple[object, ...], list[ConsentEvent]] = {}
    for row in sorted(rows, key=lambda r: (r.at, r.id)):
        key = (row.at, row.source, row.detail, row.message_id, row.staff_id, row.okay_to_text, row.opted_out)
        groups.setdefault(key, []).append(row)
    return [
        Notice(
            id=group[0].id,
            at=group[0].at,
            text=describe(group[0]),
            message_id=group[0].message_id,
            client_ids=frozenset(r.client_phone.client_id for r in group if r.client_phone is not None),
            number_wide=group[0].source in NUMBER_WIDE or all(r.client_phone_id is None for r in group),
        )
        for group in groups.values()
    ]


async def readable_clients(staff: Staff) -> frozenset[int] | None:
    return None if staff.sees_everything else frozenset(await visibility.assigned_client_ids(staff))


@dataclass(frozen=True)
class ThreadItem:
    """A bubble or a consent notice, in the order a thread shows them."""

    message: Message | None = None
    notice: Notice | None = None


async def thread_items(
    staff: Staff, conversation: Conversation, messages: list[Message], has_older: bool, before_id: int | None = None
) -> list[ThreadItem]:
    """One page of a thread (oldest first) with the consent notices of its stretch of time."""
    query = ConsentEvent.filter(number=conversation.phone)
    if has_older and messages:
        query = query.filter(at__gte=messages[0].created_at)
    if before_id is not None:
        upper = await Message.get_or_none(id=before_id)
        if upper is not None:
            query = query.filter(at__lt=upper.created_at)
    rows = await query.select_related("client_phone")
    readable = await readable_clients(staff)
    notices = [n for n in notices_of(rows) if n.visible_to(readable)]
    items: list[ThreadItem] = []
    for message in messages:
        while notices and notices[0].at < message.created_at:
            items.append(ThreadItem(notice=notices.pop(0)))
        items.append(ThreadItem(message=message))
    items.extend(ThreadItem(notice=notice) for notice in notices)
    return items


@dataclass(frozen=True)
class LedgerLine:
    """One row of a phone's consent ledger as a page shows it."""

    id: int
    at: datetime
    what: str  # "Opted out: the client texted STOP"
    who: str  # the person, or what made the change
    message_id: int | None


def ledger_line(row: ConsentEvent) -> LedgerLine:
    """`row` with its staff fetched."""
    who = SOURCE_WORDS.get(row.source, str(row.source))
    if row.staff is not None:
        who = row.staff.name if row.source == ConsentSource.STAFF else f"{row.staff.name} ({who})"
    return LedgerLine(row.id, row.at, describe(row), who, row.message_id)


@dataclass(frozen=True)
class PhoneConsent:
    """A client phone's consent as its page and the thread's client pane show it."""

    phone: ClientPhone
    log: list[LedgerLine]  # newest first
    opt_in_requested_at: datetime | None  # an opt-in request waiting for Y or YES
    opt_in_requests: bool  # the organisation allows them

    @property
    def may_ask(self) -> bool:
        return self.opt_in_requests and not self.phone.opted_out and not self.phone.okay_to_text


async def phone_consents(phones: list[ClientPhone]) -> dict[int, PhoneConsent]:
    if not phones:
        return {}
    rows = (
        await ConsentEvent.filter(client_phone_id__in=[p.id for p in phones])
        .order_by("-at", "-id")
        .select_related("staff")
    )
    logs: dict[int, list[LedgerLine]] = {p.id: [] for p in phones}
    for row in rows:
        logs[row.client_phone_id].append(ledger_line(row))  # type: ignore[index]
    allowed = (await organisation.current()).opt_in_requests
    pending = {}
    for number in {p.number for p in phones}:
        request = await pending_opt_in_request(number)
        pending[number] = request.created_at if request else None
    return {p.id: PhoneConsent(p, logs[p.id], pending[p.number], allowed) for p in phones}
