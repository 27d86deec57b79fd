"""A client's text arriving: the one use case behind Twilio's inbound webhook.

The route verifies the signature (finding the channel on the way) and calls `receive_text` with the
form and that channel; everything else is decided here, in this order: the raw payload is stored;
a text that cannot be kept (a sender or SID longer than its column) is refused with a logged reason
and still answered, so Twilio does not retry it for ever; a repeat is recognised; then one unit of
work stores the text, files it on cases, registers its attachments, applies what it says to consent
and raises alerts (not for a keyword), and its events go out once that commits. Stored texts are
processed in batches the same way (`receive_stored_many`, `record_inbound_many`): one unit of work for
the batch, whose statements do not grow with its plain texts; a single text is a batch of one. Our answers (to
keywords, the automatic reply) go into the outbox and are handed over after the webhook is answered,
like the attachments' downloads (the route schedules them: Twilio gives the webhook 15 seconds and
must never wait for us to reach Twilio).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from tortoise.exceptions import IntegrityError

from inbox import clock
from inbox.events import Event, MessageReceived
from inbox.models import Channel, Conversation, Message, WebhookPayload
from inbox.phones import sender_address
from inbox.services import (
    alerts,
    bulk,
    channels,
    confirmations,
    consent,
    linking,
    media,
    messaging,
    surveys,
    system_texts,
)
from inbox.services.limits import max_length
from inbox.services.messaging import Outbox
from inbox.services.providers import ChannelNotReady
from inbox.services.unit_of_work import UnitOfWork, unit_of_work
from inbox.sms.base import InboundText, Provider, parse_inbound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """What the webhook's answer leaves to do: None fields mean nothing (a repeat, a refused text)."""

    message: Message | None = None
    # Our answers (to a keyword, the automatic reply), stored in the outbox: hand them over after the answer.
    replies: tuple[int, ...] = ()
    fetch_media: bool = False  # the text has attachments to download after the answer
    channel_id: int | None = None  # the channel the text came in on (whose credentials fetch its media)


async def receive_text(
    outbox: Outbox,
    channel: Channel,
    params: Mapping[str, str],
    *,
    idempotency_token: str | None = None,
    at: datetime | None = None,
) -> Received:
    """Twilio's inbound webhook, its signature already checked by `channel`'s account, stored and processed
    at once (the app's route stores through `inbox.services.ingest` and processes right after instead).
    `at`: the clock the automatic reply's office hours and once-a-day rule are judged by."""
    payload = await messaging.store_webhook("message", params, idempotency_token)
    (received,) = await process_texts(outbox, [(channel, payload)], at)
    return received


async def receive_stored(outbox: Outbox, payload: WebhookPayload, at: datetime | None = None) -> Received:
    (received,) = await receive_stored_many(outbox, [payload], at)
    return received


async def receive_stored_many(
    outbox: Outbox, payloads: Sequence[WebhookPayload], at: datetime | None = None
) -> list[Received]:
    """Stored inbound webhooks (in the order they came), processed together (`record_inbound_many`); each one's
    channel found again from its form (the account's channel for its `To` or Messaging Service, as the
    signature check found it). Raises when their unit of work fails: the caller then tries each alone."""
    found: list[tuple[int, tuple[Channel, WebhookPayload]]] = []
    received = [Received() for _ in payloads]
    for position, payload in enumerate(payloads):
        channel = await _channel_of(payload)
        if channel is None:  # the channel was removed since: keep the row, say why
            await messaging.finish_webhook(payload, error="No channel of this account is set up any more.")
        else:
            found.append((position, (channel, payload)))
    for (position, _), done in zip(found, await process_texts(outbox, [f for _, f in found], at), strict=True):
        received[position] = done
    return received


async def _channel_of(payload: WebhookPayload) -> Channel | None:
    params = payload.params
    account, to, service = params.get("AccountSid", ""), params.get("To", ""), params.get("MessagingServiceSid") or None
    candidates = await channels.channels_for_webhook(account, to, service, cached=True) or (
        await channels.channels_for_webhook(account, to, service)  # a channel this process has no copy of yet
    )
    return candidates[0] if candidates else None


async def process_texts(
    outbox: Outbox, stored: Sequence[tuple[Channel, WebhookPayload]], at: datetime | None = None
) -> list[Received]:
    """Stored webhooks on their channels: those that cannot be kept refused (their rows say why), the others
    recorded together, then each one's automatic reply prepared."""
    at = at or clock.now()
    arrivals: list[tuple[int, Arrival]] = []
    for position, (channel, payload) in enumerate(stored):
        text = parse_inbound(payload.params)
        refusal = refusal_of(text)
        if refusal is not None:
            log.warning("Inbound webhook %s not kept as a text: %s", payload.id, refusal)
            await messaging.finish_webhook(payload, error=refusal)
        else:
            arrivals.append((position, Arrival(channel, text, payload)))
    received = [Received() for _ in stored]
    recorded = await record_inbound_many(outbox, [arrival for _, arrival in arrivals], at)
    for (position, arrival), done in zip(arrivals, recorded, strict=True):
        if done is not None:
            received[position] = await _answered(arrival, done, at)
    return received


async def _answered(arrival: Arrival, recorded: Recorded, at: datetime) -> Received:
    """What is left once a text is recorded: our answers (with the automatic reply, now prepared)."""
    # A survey's answer is counted, not a question: the "we are closed" reply would only confuse.
    auto_reply = None
    if not recorded.answered_survey and system_texts.answers_automatically(arrival.channel):
        auto_reply = await _auto_reply(recorded.message, arrival.text, at)
    reply_ids = tuple(reply.id for reply in recorded.replies) + ((auto_reply,) if auto_reply is not None else ())
    return Received(recorded.message, reply_ids, bool(arrival.text.media), arrival.channel.id)


def refusal_of(text: InboundText) -> str | None:
    """Why a webhook's values cannot be kept as a text: none may be longer than the column it goes to."""
    if not text.provider_sid:
        return "No MessageSid in the webhook."
    checks = (
        ("MessageSid", text.provider_sid, max_length(Message, "provider_sid")),
        ("From", sender_address(text.from_number), max_length(Conversation, "phone")),
        ("To", text.to_number, max_length(Message, "to_number")),
    )
    for name, value, limit in checks:
        if len(value) > limit:
            return f"{name} is {len(value)} characters long; at most {limit} are kept."
    return None


@dataclass(frozen=True)
class Arrival:
    """A stored text that can be kept, on its channel."""

    channel: Channel
    text: InboundText
    payload: WebhookPayload

    @property
    def arriving(self) -> messaging.Arriving:
        return messaging.Arriving(self.channel, self.text, sender_address(self.text.from_number))


@dataclass(frozen=True)
class Recorded:
    """A text recorded: our stored answers to hand to the provider, whether it was counted as a survey's answer."""

    message: Message
    replies: list[Message]
    answered_survey: bool


async def record_inbound_many(outbox: Outbox, arrivals: Sequence[Arrival], at: datetime) -> list[Recorded | None]:
    """The texts (in the order they came) and all they cause, in ONE unit of work whose statements do not grow
    with the texts: None for a text Twilio repeated. `at`: the moment a "C" and a survey answer are judged by.

    Most texts are plain: not a keyword, nor a C, nor from a number sent a survey, nor with attachments — they
    are stored, filed and alerted on together. The others go through `_record_one`, text by text, in order
    between the runs of plain ones, so one sender's texts keep their order (their ids, their alerts).
    Several texts that fail (a repeat racing in from another process: IntegrityError) raise: the caller tries
    each alone, so one bad text never blocks the others; a single text that races is recorded as a repeat."""
    if not arrivals:
        return []
    sids = {a.text.provider_sid for a in arrivals}
    stored = {str(sid) for sid in await Message.filter(provider_sid__in=sids).values_list("provider_sid", flat=True)}
    kept: list[Arrival | None] = []
    for arrival in arrivals:
        repeat = arrival.text.provider_sid in stored
        stored.add(arrival.text.provider_sid)  # a second delivery within the batch is a repeat too
        kept.append(None if repeat else arrival)
    recorded: dict[int, Recorded] = {}
    try:
        async with unit_of_work(outbox.bus) as uow:
            # A write first: on SQLite the transaction takes the writer at once, waiting its turn (busy timeout)
            # — a transaction that read first and wrote after another process's commit would fail at once
            # (SQLITE_BUSY_SNAPSHOT), and a worker processes texts while the web process stores the next ones.
            await _finish_webhooks(arrivals, kept)
            texts = [arrival for arrival in kept if arrival is not None]
            surveyed = await surveys.senders_with_surveys({a.arriving.sender for a in texts}) if texts else set()
            for plain, run in groupby(texts, key=lambda a: _plain(a, surveyed)):
                group = list(run)
                if plain:
                    done = await _record_plain(uow, group)
                else:
                    done = [await _record_one(uow, arrival, at) for arrival in group]
                recorded.update((id(arrival), result) for arrival, result in zip(group, done, strict=True))
    except IntegrityError:
        if len(arrivals) > 1:
            raise
        # Two deliveries of the same MessageSid raced; the other one stored it.
        await messaging.finish_webhook(arrivals[0].payload, error="duplicate")
        return [None]
    return [recorded.get(id(arrival)) if arrival is not None else None for arrival in kept]


async def _finish_webhooks(arrivals: Sequence[Arrival], kept: Sequence[Arrival | None]) -> None:
    """Every payload row of the batch finished by one statement; a repeat's marked "duplicate"."""
    now = clock.now()
    rows = []
    for arrival, kept_one in zip(arrivals, kept, strict=True):
        arrival.payload.processed_at = now
        arrival.payload.error = None if kept_one is not None else "duplicate"
        rows.append((now, arrival.payload.error, arrival.payload.id))
    await bulk.update_rows("webhook_payload", {"processed_at": "timestamptz", "error": "text"}, rows)


def _plain(arrival: Arrival, surveyed: set[str]) -> bool:
    """A text that only needs storing, filing and its alerts (what `_record_one` would do for it, in bulk)."""
    text = arrival.text
    return not (
        text.media
        or consent.may_be_keyword(text.body, text.opt_out_type)
        or confirmations.is_confirmation_word(text.body)
        or arrival.arriving.sender in surveyed
    )


async def _record_plain(uow: UnitOfWork, arrivals: list[Arrival]) -> list[Recorded]:
    messages = await messaging.store_inbound_many([arrival.arriving for arrival in arrivals])
    linked = uow.mark()
    case_ids = await linking.link_inbound_many(messages)
    alerted = uow.mark()
    await alerts.raise_alerts_many(list(zip(messages, case_ids, strict=True)))
    # Each text's events together, in the order `_record_one` publishes them: its filing's, its arrival, its alerts'.
    raised = uow.withdraw_since(alerted)
    filed = uow.withdraw_since(linked)
    for message, ids in zip(messages, case_ids, strict=True):
        for event in _about(filed, message):
            uow.publish(event)
        uow.publish(_received_event(message, ids))
        for event in _about(raised, message):
            uow.publish(event)
    ours = {message.id for message in messages}
    for event in filed + raised:
        if getattr(event, "message_id", None) not in ours:
            uow.publish(event)
    return [Recorded(message, [], False) for message in messages]


def _about(events: list[Event], message: Message) -> list[Event]:
    return [event for event in events if getattr(event, "message_id", None) == message.id]


async def _record_one(uow: UnitOfWork, arrival: Arrival, at: datetime) -> Recorded:
    """A text that may be more than a text: a keyword, a C, a survey's answer, one with attachments."""
    text, channel = arrival.text, arrival.channel
    (message,) = await messaging.store_inbound_many([arrival.arriving])
    case_ids = await linking.link_inbound(message)
    uow.publish(_received_event(message, case_ids))
    # A C confirming an event is answered by the confirmation itself: nobody needs to reply to it. A
    # survey's answer raises an alert only when its campaign asks for that (inbox.services.surveys).
    answer = None
    confirmed = await confirmations.confirm_by_text(message, at) is not None
    if not confirmed:
        answer = await surveys.record_answer(message, at, text.opt_out_type)
    await media.register_inbound_media(message, text.media)
    answered_by_rules, replies = await _apply_consent(message, channel, text.opt_out_type)
    # STOP, START, HELP and a Y to an opt-in request are answered by the rules (and Twilio), not a person.
    if not confirmed and not answered_by_rules and (answer is None or answer.raises_alerts):
        await alerts.raise_alerts(message, case_ids)
    return Recorded(message, replies, answer is not None)


def _received_event(message: Message, case_ids: list[int]) -> MessageReceived:
    return MessageReceived(
        message_id=message.id,
        conversation_id=message.conversation_id,
        provider_sid=message.provider_sid,
        case_ids=case_ids,
    )


async def _apply_consent(message: Message, channel: Channel, opt_out_type: str | None) -> tuple[bool, list[Message]]:
    """Consent decides what the text means (STOP, START, HELP, a YES); messaging writes what follows. Whether the
    rules answered it all (no person need: consent.InboundConsent.needs_no_person), with our stored answers."""
    decided = await consent.handle_inbound(message, channel, opt_out_type)
    if decided.cancel_scheduled is not None:
        await messaging.cancel_waiting_to(message.from_number, decided.cancel_scheduled)
    if decided.reply is None:
        return decided.needs_no_person, []
    conversation = await Conversation.get(id=message.conversation_id)
    reply = await messaging.store_app_text(conversation, channel, decided.reply.body, decided.reply.purpose)
    return decided.needs_no_person, [reply]


async def _auto_reply(message: Message, text: InboundText, at: datetime) -> int | None:
    try:
        reply = await system_texts.prepare_auto_reply(message, text, at)
    except Exception:  # the client's text is stored; a failed auto-reply must not make Twilio resend it
        log.exception("Preparing the automatic reply to message %s failed", message.id)
        return None
    return reply.id if reply is not None else None


async def fetch_media(outbox: Outbox, channel: Channel, message_id: int) -> int:
    """Downloads a received text's attachments (after the answer), with its own channel's credentials."""
    return await media.fetch_pending_for_message(
        _provider_for_media(outbox, channel), outbox.media_dir, outbox.bus, message_id
    )


async def fetch_media_by_channel_id(outbox: Outbox, channel_id: int, message_id: int) -> int:
    return await fetch_media(outbox, await Channel.get(id=channel_id), message_id)


def _provider_for_media(outbox: Outbox, channel: Channel) -> Provider:
    try:
        return outbox.provider_for(channel)
    except ChannelNotReady:
        return outbox.provider  # the credentials of the account the media URL names
