"""Texts: every Message row is written here — sent, scheduled, received, the app's own — with its
timeline, and every change to one (status, cancellation, new wording) announced after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from tortoise.expressions import Q

from inbox import clock
from inbox.events import Bus, Event, MessageSent, MessageStatusChanged
from inbox.events import ConversationRead as ConversationReadEvent
from inbox.models import (
    Case,
    CaseNote,
    Channel,
    Client,
    ClientPhone,
    Conversation,
    ConversationRead,
    Direction,
    LinkReason,
    Message,
    MessagePurpose,
    MessageStatus,
    MessageStatusEvent,
    OutboxState,
    Staff,
    WebhookPayload,
)
from inbox.phones import InvalidPhoneNumber, is_phone_number, normalise
from inbox.segments import count_segments
from inbox.services import alerts, bulk, consent, linking, media, organisation, quiet_hours, visibility
from inbox.services.channels import channel_for_new_text
from inbox.services.delivery_rules import OutboxRules
from inbox.services.errors import Forbidden, NotFound, Refused, require
from inbox.services.limits import clip, fits, max_length
from inbox.services.pacing import DatabasePacer, Pacer
from inbox.services.unit_of_work import current_unit, unit_of_work
from inbox.sms.base import InboundText, Provider, StatusUpdate, parse_status
from inbox.sms.errors import explain

log = logging.getLogger(__name__)

OPTED_OUT_CODE = 21610

# Callbacks arrive out of order: a message only ever moves up this ladder.
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.SCHEDULED: 0,
    MessageStatus.ACCEPTED: 1,
    MessageStatus.QUEUED: 1,
    MessageStatus.SENDING: 2,
    MessageStatus.SENT: 3,
    MessageStatus.PARTIALLY_DELIVERED: 4,
    MessageStatus.DELIVERED: 5,
    MessageStatus.UNDELIVERED: 5,
    MessageStatus.FAILED: 5,
    MessageStatus.CANCELED: 5,
    MessageStatus.READ: 6,
    MessageStatus.RECEIVING: 1,
    MessageStatus.RECEIVED: 2,
}


@dataclass(frozen=True)
class Outbox:
    """What sending needs from the outside world; the app wires it once."""

    provider: Provider
    bus: Bus
    public_url: str
    media_dir: Path = Path("media")  # INBOX_MEDIA_DIR: outbound attachments are stored here
    media_key: str = ""  # INBOX_SECRET_KEY: signs the URLs Twilio fetches outbound attachments from
    # Each channel's own provider (ProviderRegistry.for_channel); None: `provider` sends for every channel.
    provider_of: Callable[[Channel], Provider] | None = None
    rules: OutboxRules = field(default_factory=OutboxRules)  # leases, retries, pacing
    pacer: Pacer = field(default_factory=DatabasePacer)  # each channel's pace, shared by every worker
    worker_id: str = "web"  # whose leases this process's claims are (inbox.services.outbox.worker_name)

    @property
    def status_callback(self) -> str:
        return f"{self.public_url}/webhooks/twilio/status"

    def provider_for(self, channel: Channel) -> Provider:
        return self.provider_of(channel) if self.provider_of is not None else self.provider


@dataclass(frozen=True)
class SendRequest:
    body: str
    case_id: int | None = None
    client_id: int | None = None
    to: str | None = None
    conversation_id: int | None = None
    send_at: datetime | None = None
    attachments: tuple[media.Attachment, ...] = ()  # images or PDFs (MMS); the body may then be empty


@dataclass(frozen=True)
class Recipient:
    number: str
    case: Case | None
    conversation: Conversation | None


ATTACHMENT_PREVIEW = "📎 Attachment"  # what the inbox shows for a text that is only a photo or a file


def preview_of(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= 120 else flat[:119] + "…"


def _counted(body: str) -> dict[str, Any]:
    """The segments and encoding a row of this body records."""
    count = count_segments(body)
    return {"segments": count.segments, "encoding": count.encoding}


# ---------------------------------------------------------------- sending


async def send_text(outbox: Outbox, staff: Staff, request: SendRequest) -> Message:
    """Check and store: the text is then in the outbox, due at once or at its time. Our refusals happen
    here, before anything is stored; the caller hands a text due now to `outbox.send_now` once it has
    answered (the provider is never called while a person waits)."""
    await _check_body(request.body, has_attachments=bool(request.attachments))
    attachments = media.check_attachments(request.attachments)
    recipient = await _resolve_recipient(staff, request)
    await check_consent(recipient.number)
    hashes = await media.store_outbound(outbox.media_dir, attachments)
    async with unit_of_work(outbox.bus) as uow:
        message = await _store_outbound(staff, request, recipient, attachments, hashes)
        await alerts.dismiss_on_reply(message.conversation_id, staff)
        if message.status == MessageStatus.SCHEDULED:
            await quiet_hours.note_hold(message, clock.now())  # due in the client's quiet hours: say until when
        uow.publish(sent_event(message))
    return message


async def schedule_reminder(staff: Staff, case: Case, number: str, body: str, send_at: datetime) -> Message:
    """A case event's client reminder, scheduled in the outbox and filed on the case, inside the caller's
    unit of work. Consent is not checked here: like every scheduled text, the outbox decides it as the
    text leaves (a client who agrees to texts after the event is made still gets the reminder)."""
    request = SendRequest(body=body, case_id=case.id, send_at=send_at)
    message = await _store_outbound(
        staff, request, Recipient(number, case, None), purpose=MessagePurpose.EVENT_REMINDER
    )
    await quiet_hours.note_hold(message, clock.now())
    current_unit().publish(sent_event(message))
    return message


async def schedule_staff_reminder(number: str, body: str, send_at: datetime) -> Message:
    """A task or calendar reminder to a staff member's own mobile, scheduled in the outbox inside the caller's
    unit of work. In the mobile's own conversation, filed on no case (it is not a text to the client, and a
    reply to it must not be linked to a case or raise an alert there); nobody "sent" it. The outbox decides
    at send time whether it may leave (consent.refusal_at_send: reminders on in the profile, not opted out)."""
    channel = await channel_for_new_text(number)
    conversation = await conversation_with(channel, number)
    message = await _new_outbound(
        conversation, channel, body, MessageStatus.SCHEDULED, send_at=send_at, purpose=MessagePurpose.STAFF_REMINDER
    )
    # The inbox row is not touched: a new task must not lift a staff mobile above the clients' conversations
    # (the queue, the case and My tasks show the reminders; a text from the mobile brings the row up).
    await quiet_hours.note_hold(message, clock.now())
    current_unit().publish(sent_event(message))
    return message


def due_now(message: Message) -> bool:
    """A text to hand over at once: not one scheduled for later (but one whose time has come — a stuck
    scheduled text a person retried)."""
    if message.outbox_state not in (OutboxState.WAITING, OutboxState.SENDING, OutboxState.RETRYING):
        return False  # (the field is typed as never None)
    time_has_come = message.next_attempt_at is not None and message.next_attempt_at <= clock.now()
    return message.status == MessageStatus.QUEUED or time_has_come


async def _check_body(body: str, has_attachments: bool = False) -> None:
    errors: dict[str, str] = {}
    if not (body or "").strip() and not has_attachments:
        errors["body"] = "Write a message before sending."
    organisation.check_text_length(errors, "body", body, await organisation.text_limit())
    require(errors)


async def _resolve_recipient(staff: Staff, request: SendRequest) -> Recipient:
    """Where the text goes: the thread's number, the given number, or the client's mobile."""
    case = await _case_for(staff, request.case_id) if request.case_id is not None else None
    if case is not None and request.client_id is not None and case.client_id != request.client_id:
        require({"client_id": f"This client is not the client of case {case.number}."})
    conversation = None
    if request.conversation_id is not None:
        conversation = await Conversation.get_or_none(id=request.conversation_id)
        if conversation is None or not await visibility.can_see_conversation(staff, conversation):
            raise NotFound("No conversation has this id.")
        if not is_phone_number(conversation.phone):
            # Our numbers send SMS and MMS only: Twilio would refuse it after the text was stored.
            raise Refused(
                f"{conversation.phone} is not a phone number, so it cannot be texted from Case Inbox:"
                " answer it where it came from, or text the client's own number."
            )
        return Recipient(conversation.phone, case, conversation)
    if request.to:
        try:
            number = normalise(request.to)
        except InvalidPhoneNumber as exc:
            require({"to": str(exc)})
        # Advocates text only the numbers they may see (else the text would leave, then 404).
        if not staff.sees_everything and number not in await visibility.assigned_phone_numbers(staff):
            raise Forbidden("You may text only clients on cases you are currently assigned to.")
        return Recipient(number, case, None)
    client_id = request.client_id if request.client_id is not None else (case.client_id if case else None)
    if client_id is None:
        require({"to": "Say whom to text: a case, a client or a number."})
    client = await Client.get_or_none(id=client_id).prefetch_related("phones")
    if client is None or not await visibility.can_see_client(staff, client.id):
        raise NotFound("No client has this id.")
    phone = _default_phone(list(client.phones))
    if phone is None:
        raise Refused(f"{client.name} has no phone number on file.", {"to": "No phone number on file."})
    return Recipient(phone.number, case, None)


async def _case_for(staff: Staff, case_id: int) -> Case:
    case = await Case.get_or_none(id=case_id)
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


def _default_phone(phones: list[ClientPhone]) -> ClientPhone | None:
    mobiles = [p for p in phones if p.kind == "mobile"]
    return next(iter(mobiles or phones), None)


async def check_consent(number: str) -> None:
    """Refuse before the provider: opted out anywhere (the ledger remembers unknown numbers too), no
    record saying okay to text, or an unknown number that never texted us. The reason names the
    ledger's latest cause."""
    await consent.check_may_text(number)


async def _store_outbound(
    staff: Staff,
    request: SendRequest,
    recipient: Recipient,
    attachments: list[media.CheckedAttachment] | None = None,
    hashes: list[str] | None = None,
    purpose: MessagePurpose | None = None,
) -> Message:
    """The text a person sent or scheduled, filed on its case; inside the caller's unit of work."""
    channel = await _channel_of(recipient.conversation, recipient.number, recipient.case)
    scheduled = request.send_at is not None and request.send_at > clock.now()
    conversation = recipient.conversation or await conversation_with(channel, recipient.number)
    message = await _new_outbound(
        conversation,
        channel,
        request.body,
        MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED,
        sent_by=staff,
        case=recipient.case,
        send_at=request.send_at if scheduled else None,
        purpose=purpose,
    )
    if attachments:
        await media.attach_outbound(message, attachments, hashes or [])
    if recipient.case is not None:
        author = linking.note_author(message, [], staff)
        await linking.file_on_case(message, recipient.case.id, LinkReason.SENT_FROM, author, by=staff)
    await touch_conversation(conversation, message, has_media=bool(attachments))
    await _mark_read_to(staff.id, conversation.id, message.id)
    return message


async def _new_outbound(
    conversation: Conversation, channel: Channel, body: str, status: MessageStatus, **fields: Any
) -> Message:
    """An outbound row with its first timeline step: every text we send starts here, in the outbox."""
    message = await Message.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        from_number=channel.from_number or channel.messaging_service_sid or "",
        to_number=conversation.phone,
        body=body,
        status=status,
        outbox_state=OutboxState.WAITING,
        next_attempt_at=fields.get("send_at") or clock.now(),
        **_counted(body),
        **fields,
    )
    await MessageStatusEvent.create(message=message, status=status, at=clock.now())
    return message


async def _channel_of(conversation: Conversation | None, number: str = "", case: Case | None = None) -> Channel:
    if conversation is not None:
        return await Channel.get(id=conversation.channel_id)
    return await channel_for_new_text(number, case)


async def conversation_with(channel: Channel, phone: str) -> Conversation:
    """The one conversation of a number on a channel, opened on first use."""
    conversation, _ = await Conversation.get_or_create(channel=channel, phone=phone)
    return conversation


async def touch_conversation(conversation: Conversation, message: Message, has_media: bool = False) -> None:
    """The inbox row follows its newest text."""
    conversation.last_message_at = message.created_at
    conversation.last_message_preview = preview_of(message.body) or (ATTACHMENT_PREVIEW if has_media else "")
    conversation.last_direction = message.direction
    await conversation.save(update_fields=["last_message_at", "last_message_preview", "last_direction"])


async def mark_failed(message: Message, code: int | None, detail: str) -> None:
    """A refusal or failure before Twilio took the text, inside the caller's unit of work. 21610 (the
    number unsubscribed) goes in the consent ledger."""
    explanation = explain(code) if code else None
    message.status = MessageStatus.FAILED
    message.error_code = code
    message.error_message = clip(explanation.summary if explanation else detail, Message, "error_message")
    await message.save(update_fields=["status", "error_code", "error_message", "updated_at"])
    await MessageStatusEvent.create(message=message, status=MessageStatus.FAILED, error_code=code, at=clock.now())
    if code == OPTED_OUT_CODE:
        await consent.record_provider_opt_out(message)


def sent_event(message: Message) -> Event:
    # The case a text was sent from is its only link until someone files it elsewhere by hand.
    return MessageSent(
        message_id=message.id,
        conversation_id=message.conversation_id,
        provider_sid=message.provider_sid,
        case_ids=[message.case_id] if message.case_id else [],
    )


async def apply_early_callbacks(outbox: Outbox, message: Message) -> None:
    """Status callbacks that beat the provider's answer to our database are applied now."""
    pending = await WebhookPayload.filter(kind="status", provider_sid=message.provider_sid, processed_at=None).order_by(
        "id"
    )
    for payload in pending:
        await record_status(outbox.bus, parse_status(payload.params), payload)


# ---------------------------------------------------------------- texts the app sends by itself


async def store_app_text(
    conversation: Conversation,
    channel: Channel,
    body: str,
    purpose: MessagePurpose,
    sent_by: Staff | None = None,
    *,
    shown_in_inbox: bool = False,
) -> Message:
    """A text the app itself sends (help, a confirmation, an automatic reply, an opt-in request, a test),
    put in the outbox, which decides consent as it leaves (consent.refusal_at_send names the exceptions
    to the rule). `shown_in_inbox`: the inbox row shows it (else the client's own text stays there)."""
    message = await _new_outbound(conversation, channel, body, MessageStatus.QUEUED, sent_by=sent_by, purpose=purpose)
    if shown_in_inbox:
        await touch_conversation(conversation, message)
    return message


# ---------------------------------------------------------------- rows written in bulk

# The columns every bulk-inserted text starts and ends with (each kind's own between): rows are tuples in this order.
MESSAGE_HEAD_COLUMNS = {
    "id": "int",  # drawn beforehand (bulk.reserve_ids): in arrival order (a thread's order); no read-back
    "conversation_id": "int",
    "direction": "text",
    "from_number": "text",
    "to_number": "text",
    "body": "text",
    "status": "text",
}
MESSAGE_TAIL_COLUMNS = {
    "attempt_count": "int",
    "outcome_unknown": "bool",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
CONVERSATION_COLUMNS = {
    "id": "int",
    "channel_id": "int",
    "phone": "text",
    "last_message_preview": "text",
    "created_at": "timestamptz",
}


# ---------------------------------------------------------------- bulk texts (campaigns)

# The columns a bulk text is inserted with (every NOT NULL column the model fills in Python).
CAMPAIGN_TEXT_COLUMNS = {
    **MESSAGE_HEAD_COLUMNS,
    "outbox_state": "text",
    "next_attempt_at": "timestamptz",
    "send_at": "timestamptz",
    "segments": "int",
    "encoding": "text",
    "sent_by_id": "int",
    "case_id": "int",
    "purpose": "text",
    "campaign_id": "int",
    **MESSAGE_TAIL_COLUMNS,
}


async def store_campaign_texts(
    campaign_id: int,
    texts: list[tuple[Any, ...]],
    staff_id: int,
    now: datetime,
    recipients: list[tuple[int, int]],
    opened: set[int],
) -> None:
    """What sending a text writes besides the text, for every text at once: its link on the recipient's case
    (the sent-from rule), the recipient's pointer to it (`recipients`: (message id, recipient id) pairs, the ids
    drawn beforehand), and each thread's newest-text row. Not a row per text for its first timeline step (its
    creation time is that step: `timeline_of`) nor its case note (written as it leaves: campaigns.note_sent_text)."""
    await bulk.insert_rows("message", CAMPAIGN_TEXT_COLUMNS, texts)
    statements: list[tuple[str, list[Any]]] = [
        (
            "INSERT INTO message_link (message_id, case_id, reason, linked_by_id, created_at) "
            "SELECT id, case_id, ?, ?, created_at FROM message WHERE campaign_id = ? AND case_id IS NOT NULL",
            [LinkReason.SENT_FROM.value, staff_id, campaign_id],
        ),
    ]
    for statement, values in statements:
        await bulk.execute(statement, values)
    # Then the recipients' pointers and the older threads' rows, by primary key in one executemany each: joined
    # UPDATEs (a correlated subquery, or UPDATE … FROM) took SQLite 35 s for 10,000 recipients.
    await bulk.update_rows("campaign_recipient", {"message_id": "int"}, recipients)
    thread, body = list(CAMPAIGN_TEXT_COLUMNS).index("conversation_id"), list(CAMPAIGN_TEXT_COLUMNS).index("body")
    # Each older thread's text (duplicate numbers are left out, so a thread has one).
    newest = {text[thread]: text[body] for text in texts if text[thread] not in opened}
    await bulk.update_rows(
        "conversation",
        {"last_direction": "text", "last_message_at": "timestamptz", "last_message_preview": "text"},
        [(Direction.OUTBOUND.value, now, preview_of(text), cid) for cid, text in newest.items()],
    )


def timeline_of(message: Message) -> list[MessageStatusEvent]:
    """A text's status timeline, oldest first (`message.timeline` fetched). A campaign text's first step, queued
    when it was made, is not stored per text: its `created_at` says it (the start writes 10,000 texts at once,
    and a row each was 7–8 % of PostgreSQL's start). Texts made before that have it stored."""
    steps = sorted(message.timeline, key=lambda step: (step.at, step.id))
    if message.purpose == MessagePurpose.CAMPAIGN and not _queued_when_made(message, steps):
        steps.insert(
            0, MessageStatusEvent(id=0, message_id=message.id, status=MessageStatus.QUEUED, at=message.created_at)
        )
    return steps


def _queued_when_made(message: Message, steps: list[MessageStatusEvent]) -> bool:
    return any(step.status == MessageStatus.QUEUED and step.at <= message.created_at for step in steps)


async def hold_campaign_texts(campaign_id: int) -> int:
    """A paused campaign's texts still waiting are held, inside the caller's unit of work: a conditional UPDATE,
    like the outbox's claim (a text a worker claimed first still goes; a held one is never claimed)."""
    return await Message.filter(
        campaign_id=campaign_id, outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING]
    ).update(outbox_state=OutboxState.HELD)


async def release_campaign_texts(campaign_id: int) -> int:
    """A resumed campaign's held texts wait again, in their order (those whose slot passed are due at once)."""
    return await Message.filter(campaign_id=campaign_id, outbox_state=OutboxState.HELD).update(
        outbox_state=OutboxState.WAITING
    )


async def cancel_campaign_texts(campaign_id: int, reason: str, at: datetime) -> int:
    """A cancelled campaign's texts not yet handed over → canceled with `reason`, and their timeline step; inside
    the caller's unit of work (the campaign's own event tells open pages; the threads show it on reload)."""
    stopped = await Message.filter(
        campaign_id=campaign_id,
        outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING, OutboxState.HELD],
        provider_sid=None,
    ).update(
        status=MessageStatus.CANCELED, outbox_state=None, next_attempt_at=None, error_message=reason, updated_at=at
    )
    if stopped:
        await bulk.execute(
            "INSERT INTO message_status_event (message_id, status, at) SELECT id, ?, updated_at FROM message "
            "WHERE campaign_id = ? AND status = ? AND error_message = ? AND updated_at = ?",
            [MessageStatus.CANCELED.value, campaign_id, MessageStatus.CANCELED.value, reason, at],
        )
    return stopped


# ---------------------------------------------------------------- scheduled texts


async def cancel_if_waiting(message: Message, reason: str | None, at: datetime) -> bool:
    """Out of the outbox before it is handed over (scheduled, waiting or between retries) → canceled,
    inside the caller's unit of work; False when a worker has claimed it (or it has left).

    A conditional UPDATE, like the worker's claim: a text is either sent or canceled, never both.
    """
    won = await Message.filter(
        id=message.id, outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING], provider_sid=None
    ).update(
        status=MessageStatus.CANCELED,
        outbox_state=None,
        next_attempt_at=None,
        error_message=clip(reason, Message, "error_message") if reason else None,
        updated_at=at,
    )
    if not won:
        return False
    await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.CANCELED, at=at)
    current_unit().publish(
        MessageStatusChanged(
            message_id=message.id,
            conversation_id=message.conversation_id,
            status=MessageStatus.CANCELED.value,
            provider_sid=message.provider_sid,
            error_code=None,
            case_ids=[message.case_id] if message.case_id else [],
            campaign_id=message.campaign_id,
            from_schedule=message.status == MessageStatus.SCHEDULED,
        )
    )
    return True


async def cancel_waiting_to(number: str, why: str) -> None:
    """Every text to the number still in our outbox is canceled (a STOP: Twilio does not cancel them for
    us) — except the texts the consent rule lets through a STOP (its confirmation, answers to HELP), and a
    staff member's own reminders: those stay scheduled and are refused as they leave while the mobile is
    opted out, so a START resumes them."""
    at = clock.now()
    kept = [*consent.SENT_WITHOUT_CONSENT, MessagePurpose.STAFF_REMINDER]
    waiting = Message.filter(
        to_number=number,
        direction=Direction.OUTBOUND,
        outbox_state__in=[OutboxState.WAITING, OutboxState.RETRYING],
    ).filter(Q(purpose=None) | ~Q(purpose__in=kept))
    for message in await waiting:
        await cancel_if_waiting(message, why, at)


async def reschedule(message: Message, body: str, send_at: datetime) -> bool:
    """New words or time for a text still waiting in our outbox (the worker's claim guards it too);
    its case notes and, when it is the newest, the inbox row follow. Inside the caller's unit of work."""
    changed = await Message.filter(
        id=message.id, status=MessageStatus.SCHEDULED, outbox_state=OutboxState.WAITING
    ).update(body=body, send_at=send_at, next_attempt_at=send_at, **_counted(body))
    if not changed:
        return False
    await CaseNote.filter(message_id=message.id).update(body=body)
    latest = await Message.filter(conversation_id=message.conversation_id).order_by("-id").first()
    if latest is not None and latest.id == message.id:
        await Conversation.filter(id=message.conversation_id).update(
            last_message_preview=preview_of(body) or ATTACHMENT_PREVIEW
        )
    return True


async def send_scheduled_now(message: Message, at: datetime) -> bool:
    """A scheduled text a person sends now (a case event's reminder): queued and due at once, no longer
    scheduled (so quiet hours do not hold it), inside the caller's unit of work; False when it has left our
    outbox or a worker claimed it. Conditional, like the claim: it is never sent twice."""
    won = await Message.filter(id=message.id, status=MessageStatus.SCHEDULED, outbox_state=OutboxState.WAITING).update(
        status=MessageStatus.QUEUED, send_at=None, next_attempt_at=at, error_message=None, updated_at=at
    )
    if not won:
        return False
    await MessageStatusEvent.create(message_id=message.id, status=MessageStatus.QUEUED, at=at)
    await message.refresh_from_db()
    publish_status(message)
    return True


# ---------------------------------------------------------------- receiving


async def store_webhook(kind: str, params: Mapping[str, str], idempotency_token: str | None = None) -> WebhookPayload:
    """The raw payload, stored before anything else, so nothing Twilio sent is ever lost — even a SID
    or token longer than its column, which stays in `params` and is left out of the indexed column."""
    sid = params.get("MessageSid") or params.get("SmsSid") or params.get("CallSid")
    return await WebhookPayload.create(
        kind=kind,
        provider_sid=storable_sid(sid),
        params=dict(params),
        idempotency_token=storable_token(idempotency_token),
    )


def storable_sid(sid: str | None) -> str | None:
    """The SID for the indexed column, or None when it is longer than the column (it stays in the params)."""
    return sid if fits(sid, WebhookPayload, "provider_sid") else None


def storable_token(token: str | None) -> str | None:
    return token if fits(token, WebhookPayload, "idempotency_token") else None


async def finish_webhook(payload: WebhookPayload, error: str | None = None) -> None:
    payload.processed_at = clock.now()
    payload.error = error
    await payload.save(update_fields=["processed_at", "error"])


@dataclass(frozen=True)
class Arriving:
    """A client's text to store: the channel it came in on, Twilio's values, the sender as we keep it."""

    channel: Channel
    text: InboundText
    sender: str


INBOUND_TEXT_COLUMNS = {
    **MESSAGE_HEAD_COLUMNS,
    "provider_sid": "text",
    "segments": "int",
    "encoding": "text",
    **MESSAGE_TAIL_COLUMNS,
}


async def store_inbound_many(texts: Sequence[Arriving]) -> list[Message]:
    """Clients' texts (in arrival order), their timelines and their inbox rows, inside the caller's unit of work
    (after its first write: bulk.reserve_ids), in statements whose number does not grow with the texts."""
    if not texts:
        return []
    now = clock.now()
    threads = await _threads_of(list(dict.fromkeys((t.channel.id, t.sender) for t in texts)), now)
    messages = []
    for arriving, message_id in zip(texts, await bulk.reserve_ids("message", len(texts)), strict=True):
        text = arriving.text
        counted = _counted(text.body)
        message = Message(
            id=message_id,
            conversation_id=threads[(arriving.channel.id, arriving.sender)],
            direction=Direction.INBOUND,
            from_number=arriving.sender,
            to_number=text.to_number,
            body=text.body,
            status=MessageStatus.RECEIVED,
            provider_sid=text.provider_sid,
            segments=text.num_segments or counted["segments"] or 1,
            encoding=counted["encoding"],
            attempt_count=0,
            outcome_unknown=False,
            created_at=now,
            updated_at=now,
        )
        message._saved_in_db = True  # stored just below: links and alerts may point at it
        messages.append(message)
    await bulk.insert_rows(
        "message",
        INBOUND_TEXT_COLUMNS,
        [tuple(_column_value(getattr(m, name)) for name in INBOUND_TEXT_COLUMNS) for m in messages],
    )
    await bulk.insert_rows(
        "message_status_event",
        {"message_id": "int", "status": "text", "at": "timestamptz"},
        [(m.id, MessageStatus.RECEIVED.value, now) for m in messages],
    )
    # The inbox row follows its newest text (touch_conversation, for many).
    newest = {m.conversation_id: (m, bool(t.text.media)) for m, t in zip(messages, texts, strict=True)}
    await bulk.update_rows(
        "conversation",
        {"last_message_at": "timestamptz", "last_message_preview": "text", "last_direction": "text"},
        [
            (m.created_at, preview_of(m.body) or (ATTACHMENT_PREVIEW if media else ""), m.direction.value, cid)
            for cid, (m, media) in newest.items()
        ],
    )
    return messages


def _column_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


async def _threads_of(pairs: list[tuple[int, str]], now: datetime) -> dict[tuple[int, str], int]:
    """The conversation of each (channel id, number), those never texted before opened in the order of `pairs`
    (conversation_with, for many: as text after text would open them). Opened with ON CONFLICT DO NOTHING and
    read again: another process may open one at the same time."""
    query = Conversation.filter(channel_id__in={c for c, _ in pairs}, phone__in={p for _, p in pairs})
    found = {(int(c), str(p)): int(i) for i, c, p in await query.values_list("id", "channel_id", "phone")}
    missing = [pair for pair in pairs if pair not in found]
    if not missing:
        return found
    ids = await bulk.reserve_ids("conversation", len(missing))
    rows = [(cid, channel_id, phone, "", now) for (channel_id, phone), cid in zip(missing, ids, strict=True)]
    if await bulk.insert_rows("conversation", CONVERSATION_COLUMNS, rows, on_conflict_nothing=True):
        return found | {pair: cid for pair, cid in zip(missing, ids, strict=True)}
    return {(int(c), str(p)): int(i) for i, c, p in await query.values_list("id", "channel_id", "phone")}


def status_word(word: str) -> MessageStatus | None:
    try:
        return MessageStatus(word)
    except ValueError:
        return None


async def receive_status(bus: Bus, params: Mapping[str, str], idempotency_token: str | None = None) -> Message | None:
    """Twilio's status callback, verified: stored as it came, then applied."""
    payload = await store_webhook("status", params, idempotency_token)
    return await record_status(bus, parse_status(params), payload)


async def record_status(bus: Bus, update: StatusUpdate, payload: WebhookPayload) -> Message | None:
    """A status callback: add to the timeline; move the message only forwards."""
    if not fits(update.provider_sid, Message, "provider_sid"):  # no text of ours has such a SID
        limit = max_length(Message, "provider_sid")
        await finish_webhook(
            payload, error=f"MessageSid is {len(update.provider_sid)} characters long; at most {limit} are kept."
        )
        return None
    status = status_word(update.status)
    message = await Message.get_or_none(provider_sid=update.provider_sid) if update.provider_sid else None
    if message is None or status is None:
        # Unknown yet: the provider's answer (or the outbox's look-up) may still be on its way; it applies it.
        if status is None:
            await finish_webhook(payload, error=f"Unknown status {update.status!r}.")
        return None
    async with unit_of_work(bus) as uow:
        message = await Message.select_for_update().get(id=message.id)
        # A campaign text's "queued" is its creation (timeline_of), as a hand-sent text's is its stored first step.
        made_queued = status == MessageStatus.QUEUED and message.purpose == MessagePurpose.CAMPAIGN
        if not made_queued and not await MessageStatusEvent.exists(
            message=message, status=status, error_code=update.error_code
        ):
            # When Twilio told us, not when we applied it: a callback that beat the provider's answer
            # is applied late, after ones that came behind it.
            at = payload.received_at or clock.now()
            await MessageStatusEvent.create(message=message, status=status, error_code=update.error_code, at=at)
        if STATUS_RANK[status] > STATUS_RANK.get(message.status, 0):
            message.status = status
            if update.error_code:
                message.error_code = update.error_code
                explanation = explain(update.error_code)
                message.error_message = explanation.summary if explanation else None
            await message.save(update_fields=["status", "error_code", "error_message", "updated_at"])
            if update.error_code == OPTED_OUT_CODE:
                await consent.record_provider_opt_out(message)
            uow.publish(status_changed(message))
        payload.processed_at = clock.now()
        await payload.save(update_fields=["processed_at"])
    return message


def status_changed(message: Message, from_schedule: bool = False) -> MessageStatusChanged:
    return MessageStatusChanged(
        message_id=message.id,
        conversation_id=message.conversation_id,
        status=message.status.value,
        provider_sid=message.provider_sid,
        error_code=message.error_code,
        case_ids=[message.case_id] if message.case_id else [],
        campaign_id=message.campaign_id,
        from_schedule=from_schedule,
    )


# ---------------------------------------------------------------- reading


async def _mark_read_to(staff_id: int, conversation_id: int, message_id: int) -> bool:
    read, _ = await ConversationRead.get_or_create(staff_id=staff_id, conversation_id=conversation_id)
    if read.last_read_message_id >= message_id:
        return False
    read.last_read_message_id = message_id
    await read.save(update_fields=["last_read_message_id"])
    return True


async def mark_read(bus: Bus, staff: Staff, conversation: Conversation) -> None:
    latest = await Message.filter(conversation_id=conversation.id).order_by("-id").first()
    if latest is None:
        return
    async with unit_of_work(bus) as uow:
        if await _mark_read_to(staff.id, conversation.id, latest.id):
            uow.publish(ConversationReadEvent(conversation_id=conversation.id, staff_id=staff.id))


async def get_message_for(staff: Staff, message_id: int) -> Message:
    message = await Message.get_or_none(id=message_id).prefetch_related("conversation", "timeline", "links")
    if message is None or not await visibility.can_see_conversation(staff, message.conversation):
        raise NotFound("No message has this id.")
    return message


async def conversation_for(staff: Staff, conversation_id: int) -> Conversation:
    conversation = await Conversation.get_or_none(id=conversation_id)
    if conversation is None or not await visibility.can_see_conversation(staff, conversation):
        raise NotFound("No conversation has this id.")
    return conversation


def publish_status(message: Message) -> None:
    """Open tabs re-show the text (new words, a new time), after the caller's unit of work commits."""
    current_unit().publish(status_changed(message))
