"""Texts the app sends by itself: the channel's automatic reply (Prime's "Text Response"), an
administrator's test text and the opt-in request ("reply Y or YES to confirm"). Each is stored as an
outbound message in the conversation, with its purpose, and goes through the channel's own provider
like any other text."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from inbox.models import (
    AutoReplyMode,
    Channel,
    ClientPhone,
    ConsentEvent,
    Conversation,
    Message,
    MessagePurpose,
    Role,
    Staff,
)
from inbox.phones import InvalidPhoneNumber, is_phone_number, normalise
from inbox.services import consent, messaging, organisation
from inbox.services.channels import channel_for_new_text, within_office_hours
from inbox.services.errors import Forbidden, require
from inbox.sms.base import InboundText

log = logging.getLogger(__name__)


def start_of_local_day(at: datetime, time_zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(time_zone))
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo).astimezone(UTC)


# ---------------------------------------------------------------- the automatic reply


def answers_automatically(channel: Channel) -> bool:
    """Whether the channel has an automatic reply at all (its mode and words; not yet whether it is due)."""
    return channel.auto_reply_mode != AutoReplyMode.OFF and bool(channel.auto_reply_text.strip())


async def prepare_auto_reply(inbound: Message, text: InboundText, at: datetime) -> Message | None:
    """The channel's automatic reply to `inbound`, stored and ready to hand to the provider, or None.

    Never to a keyword (STOP, HELP, … or Twilio's OptOutType) nor to a text that changed consent (a Y
    answering an opt-in request): those have their own answers. Never to an opted-out number, and at
    most once per conversation per calendar day in the channel's time zone. The day is claimed by a
    conditional UPDATE, so two texts arriving together get one reply.
    """
    conversation = await Conversation.get(id=inbound.conversation_id).prefetch_related("channel")
    channel: Channel = conversation.channel
    if not answers_automatically(channel):
        return None
    if await consent.keyword_of(inbound, text.opt_out_type) is not None or await ConsentEvent.exists(
        message_id=inbound.id
    ):
        return None
    if channel.auto_reply_mode == AutoReplyMode.OUTSIDE_HOURS and within_office_hours(channel, at):
        return None
    if not is_phone_number(conversation.phone):
        return None  # a short code, a WhatsApp address or a named sender cannot be answered from our number
    if await consent.refusal_at_send_to(conversation.phone) is not None:
        return None  # no consent now (the outbox asks again as it leaves): nothing stored
    first_today = Q(last_auto_reply_at=None) | Q(last_auto_reply_at__lt=start_of_local_day(at, channel.time_zone))
    async with in_transaction():
        if not await Conversation.filter(first_today, id=conversation.id).update(last_auto_reply_at=at):
            return None
        # The inbox keeps showing the client's own text: an automatic reply does not answer it.
        body = channel.auto_reply_text.strip()
        return await messaging.store_app_text(conversation, channel, body, MessagePurpose.AUTO_REPLY)


# ---------------------------------------------------------------- the test text


async def send_test_text(staff: Staff, channel: Channel, to: str, body: str) -> Message:
    """An administrator's test of a sending number, to a number typed on the channel's page; stored in
    the outbox for the caller to hand to `outbox.send_now`.

    The number need not be on a client record (it is usually the administrator's own phone), but a
    client's number keeps every consent rule, and a number that opted out is never texted.
    """
    if staff.role != Role.ADMIN:
        raise Forbidden("Only administrators may send test texts.")
    errors: dict[str, str] = {}
    number = ""
    try:
        number = normalise(to)
    except InvalidPhoneNumber as exc:
        errors["to"] = str(exc)
    if not body.strip():
        errors["body"] = "Write the test text."
    organisation.check_text_length(errors, "body", body, await organisation.text_limit())
    require(errors)
    if await ClientPhone.exists(number=number) or await consent.is_opted_out(number):
        await messaging.check_consent(number)  # a client's number, or one that opted out: the usual rules
    async with in_transaction():
        conversation = await messaging.conversation_with(channel, number)
        message = await messaging.store_app_text(
            conversation, channel, body.strip(), MessagePurpose.TEST, staff, shown_in_inbox=True
        )
    return message


# ---------------------------------------------------------------- the opt-in request


async def send_opt_in_request(staff: Staff, client_id: int, phone_id: int) -> Message:
    """Staff ask for consent by text (the organisation's opt-in text), in the number's latest
    conversation. The one send allowed before okay-to-text — never to a number that opted out. Stored
    in the outbox for the caller to hand to `outbox.send_now`."""
    request = await consent.check_opt_in_request(staff, client_id, phone_id)
    number = request.phone.number
    channel = await channel_for_new_text(number)
    async with in_transaction():
        conversation = await messaging.conversation_with(channel, number)
        message = await messaging.store_app_text(
            conversation, channel, request.body, MessagePurpose.OPT_IN_REQUEST, staff, shown_in_inbox=True
        )
    return message
