"""The client phone of development mode: which numbers a staff member may play, and what reached them.

The phone shows a number's whole conversation, so it follows the inbox's rule: an advocate plays
only numbers of clients on their current cases; supervisors and admins play any number, unknown
ones included (to try the unmatched bucket). A number someone may not play is "not found", so the
page never tells whether it exists.
"""

from __future__ import annotations

import re

from tortoise.expressions import Q

from inbox.models import ClientPhone, Conversation, Direction, Message, MessageStatus, Staff
from inbox.phones import PHONE_WRITING, InvalidPhoneNumber, normalise
from inbox.services import visibility
from inbox.services.errors import NotFound
from inbox.services.limits import max_length

DELIVERED_TO_PHONE = [
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.PARTIALLY_DELIVERED,
]
TEXTS_SHOWN = 50

NOT_YOURS = "No client of yours has this number."
# A sender that is not a phone number, as the phone's address (/dev/phone/<it>) can carry it unescaped.
PLAYABLE_ADDRESS = re.compile(r"[\w+:.@-]+")
ADDRESS_LIMIT = max_length(Conversation, "phone")


def sender_to_play(staff: Staff, typed: str) -> str:
    """The sender someone typed or opened: a phone number, in E.164; for those who may play unknown senders,
    an address that is not a phone number (`whatsapp:+14155550100`, `CourtAlert`) exactly as typed, so the
    webhook carries it as Twilio would rather than the phone number inside it. InvalidPhoneNumber otherwise."""
    text = typed.strip()
    if not text or PHONE_WRITING.fullmatch(text):
        return normalise(text)
    if not staff.sees_everything:
        raise InvalidPhoneNumber(f"“{text}” is not a phone number.")
    if len(text) > ADDRESS_LIMIT or not PLAYABLE_ADDRESS.fullmatch(text):
        raise InvalidPhoneNumber(
            f"“{text}” cannot be played: a sender that is not a phone number has at most {ADDRESS_LIMIT} letters,"
            " digits and + : . @ _ -."
        )
    return text


async def playable_phones(staff: Staff) -> list[ClientPhone]:
    """Client numbers the staff member may play, by client name (client fetched)."""
    query = ClientPhone.all()
    if not staff.sees_everything:
        query = query.filter(client_id__in=await visibility.assigned_client_ids(staff))
    return await query.order_by("client__name", "id").prefetch_related("client")


async def check_may_play(staff: Staff, number: str) -> None:
    """Raises NotFound unless the staff member may text in as `number` and read its screen."""
    if staff.sees_everything:
        return
    if number not in await visibility.assigned_phone_numbers(staff):
        raise NotFound(NOT_YOURS)


async def texts_on_phone(number: str) -> list[Message]:
    """What reached the phone, oldest first: the client's own texts, and ours once Twilio sent them."""
    reached = Q(direction=Direction.INBOUND) | Q(status__in=DELIVERED_TO_PHONE)
    newest = (
        await Message.filter(reached, conversation__phone=number)
        .order_by("-id")
        .limit(TEXTS_SHOWN)
        .prefetch_related("media")
    )
    return list(reversed(newest))
