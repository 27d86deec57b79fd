"""The client phone of development mode: which numbers a staff member may play, and what reached them.

The phone shows a number's whole conversation, so it follows the inbox's rule: an advocate plays
only numbers of clients on their current cases; supervisors and admins play any number, unknown
ones included (to try the unmatched bucket). A number someone may not play is "not found", so the
page never tells whether it exists.
"""

from __future__ import annotations

from tortoise.expressions import Q

from inbox.models import ClientPhone, Direction, Message, MessageStatus, Staff
from inbox.services import visibility
from inbox.services.errors import NotFound

DELIVERED_TO_PHONE = [
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.PARTIALLY_DELIVERED,
]
TEXTS_SHOWN = 50

NOT_YOURS = "No client of yours has this number."


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
