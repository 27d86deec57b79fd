"""A client's text arriving: the one use case behind Twilio's inbound webhook.

The route verifies the signature (finding the channel on the way) and calls `receive_text` with the
form and that channel; everything else is decided here, in this order: the raw payload is stored;
a text that cannot be kept (a sender or SID longer than its column) is refused with a logged reason
and still answered, so Twilio does not retry it for ever; a repeat is recognised; then one unit of
work stores the text, files it on cases, registers its attachments, applies what it says to consent
and raises alerts (not for a keyword), and its events go out once that commits. Our answers (to
keywords, the automatic reply) go into the outbox and are handed over after the webhook is answered,
like the attachments' downloads (the route schedules them: Twilio gives the webhook 15 seconds and
must never wait for us to reach Twilio).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError

from inbox import clock
from inbox.events import MessageReceived
from inbox.models import Channel, Conversation, Message, WebhookPayload
from inbox.phones import sender_address
from inbox.services import (
    alerts,
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
from inbox.services.unit_of_work import unit_of_work
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
    return await process_text(outbox, channel, payload, at)


async def receive_stored(outbox: Outbox, payload: WebhookPayload, at: datetime | None = None) -> Received:
    """A stored inbound webhook, processed: its channel found again from the form (the account's channel
    for its `To` or Messaging Service, as the signature check found it)."""
    params = payload.params
    account, to, service = params.get("AccountSid", ""), params.get("To", ""), params.get("MessagingServiceSid") or None
    candidates = await channels.channels_for_webhook(account, to, service, cached=True) or (
        await channels.channels_for_webhook(account, to, service)  # a channel this process has no copy of yet
    )
    if not candidates:  # the channel was removed since: keep the row, say why
        await messaging.finish_webhook(payload, error="No channel of this account is set up any more.")
        return Received()
    return await process_text(outbox, candidates[0], payload, at)


async def process_text(
    outbox: Outbox, channel: Channel, payload: WebhookPayload, at: datetime | None = None
) -> Received:
    text = parse_inbound(payload.params)
    refusal = refusal_of(text)
    if refusal is not None:
        log.warning("Inbound webhook %s not kept as a text: %s", payload.id, refusal)
        await messaging.finish_webhook(payload, error=refusal)
        return Received()
    at = at or clock.now()
    recorded = await record_inbound(outbox, channel, text, payload, at)
    if recorded is None:
        return Received()
    message, replies, answered_survey = recorded
    # A survey's answer is counted, not a question: the "we are closed" reply would only confuse.
    auto_reply = None if answered_survey else await _auto_reply(message, text, at)
    reply_ids = tuple(reply.id for reply in replies) + ((auto_reply,) if auto_reply is not None else ())
    return Received(message, reply_ids, bool(text.media), channel.id)


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


async def record_inbound(
    outbox: Outbox, channel: Channel, text: InboundText, payload: WebhookPayload, at: datetime | None = None
) -> tuple[Message, list[Message], bool] | None:
    """The text and all it causes, in one unit of work; with our stored answers to hand to the provider, and
    whether it was counted as a survey's answer. None when Twilio repeats itself. `at`: the moment a "C" and
    a survey answer are judged by (is the reminder's, or the survey's, window open)."""
    if await Message.exists(provider_sid=text.provider_sid):
        await messaging.finish_webhook(payload, error="duplicate")
        return None
    sender = sender_address(text.from_number)
    try:
        async with unit_of_work(outbox.bus) as uow:
            # A write first: on SQLite the transaction takes the writer at once, waiting its turn (busy timeout)
            # — a transaction that read first and wrote after another process's commit would fail at once
            # (SQLITE_BUSY_SNAPSHOT), and a worker processes texts while the web process stores the next ones.
            await messaging.finish_webhook(payload)
            message = await messaging.store_inbound(channel, text, sender)
            case_ids = await linking.link_inbound(message)
            uow.publish(
                MessageReceived(
                    message_id=message.id,
                    conversation_id=message.conversation_id,
                    provider_sid=message.provider_sid,
                    case_ids=case_ids,
                )
            )
            # A C confirming an event is answered by the confirmation itself: nobody needs to reply to it. A
            # survey's answer raises an alert only when its campaign asks for that (inbox.services.surveys).
            moment = at or clock.now()
            answer = None
            confirmed = await confirmations.confirm_by_text(message, moment) is not None
            if not confirmed:
                answer = await surveys.record_answer(message, moment, text.opt_out_type)
            await media.register_inbound_media(message, text.media)
            answered_by_rules, replies = await _apply_consent(message, channel, text.opt_out_type)
            # STOP, START, HELP and a Y to an opt-in request are answered by the rules (and Twilio), not a person.
            if not confirmed and not answered_by_rules and (answer is None or answer.raises_alerts):
                await alerts.raise_alerts(message, case_ids)
    except IntegrityError:
        # Two deliveries of the same MessageSid raced; the other one stored it.
        await messaging.finish_webhook(payload, error="duplicate")
        return None
    return message, replies, answer is not None


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
