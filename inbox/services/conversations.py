"""Reading the inbox: conversation rows with per-reader unread counts, and thread pages."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from tortoise.expressions import Q
from tortoise.functions import Max

from inbox.models import (
    Client,
    ClientPhone,
    Conversation,
    ConversationRead,
    Direction,
    Message,
    MessageStatus,
    Staff,
    flat_values,
)
from inbox.phones import for_people
from inbox.services import visibility

FILTERS = ("all", "mine", "unread", "unmatched")
# What a bubble shows: prefetch these wherever messages are rendered.
MESSAGE_VIEW_RELATIONS = ("sent_by", "case", "links__case", "media")
PHONE_LIKE = re.compile(r"[\d\s()+.\-]*\d{3}[\d\s()+.\-]*")
PAGE_SIZE = 30
STAFF_TITLE = "Staff: "  # a staff member's own mobile, named as theirs
STAFF_MOBILE_LENGTH = 20  # Staff.mobile's width: a longer sender cannot be one (and may not be filtered on)


@dataclass(frozen=True)
class LastText:
    """What a conversation row says of its latest text that has gone or come (a scheduled one has not)."""

    sender_id: int | None  # the staff member who wrote it
    sender: str  # their first name; "" for the client's text or one the app sent by itself
    automatic: bool  # the app sent it (an automatic reply, a reminder, a confirmation)
    failed: bool  # it could not be sent or delivered
    preview: str
    at: datetime  # when it went or came (Message.shown_at), not when a scheduled one was written


@dataclass(frozen=True)
class ConversationRow:
    conversation: Conversation
    title: str
    unread: int
    matched: bool
    mine: bool
    last: LastText | None = None
    yours: bool = False  # the reader wrote the latest text: "You:" (one of the two views of a row)

    @property
    def filters(self) -> list[str]:
        """The inbox filters this row belongs in, for this reader."""
        names = ["all"]
        if self.mine:
            names.append("mine")
        if self.unread:
            names.append("unread")
        if not self.matched:
            names.append("unmatched")
        return names


async def names_by_phone(phones: list[str], client_ids: list[int] | None = None) -> dict[str, list[str]]:
    """Client names for each number (one query); several clients may share a phone.

    `client_ids` limits the names to the clients a reader may see (None: everyone).
    """
    query = ClientPhone.filter(number__in=phones)
    if client_ids is not None:
        query = query.filter(client_id__in=client_ids)
    rows = await query.values("number", "client__name") if phones else []
    names: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["client__name"] not in names[row["number"]]:
            names[row["number"]].append(row["client__name"])
    # A number on no client record may be a staff member's own mobile (their reminders): say whose.
    unknown = [p for p in phones if p not in names and len(p) <= STAFF_MOBILE_LENGTH]
    for number, name in await Staff.filter(mobile__in=unknown).values_list("mobile", "name") if unknown else []:
        names[number].append(f"{STAFF_TITLE}{name}")
    return names


async def unread_counts(staff_ids: list[int], conversation_id: int) -> dict[int, int]:
    """Unread inbound messages in one conversation for many readers: two queries in all."""
    reads = dict(
        await ConversationRead.filter(conversation_id=conversation_id, staff_id__in=staff_ids).values_list(
            "staff_id", "last_read_message_id"
        )
    )
    inbound_ids = await flat_values(
        Message.filter(conversation_id=conversation_id, direction=Direction.INBOUND).values_list("id", flat=True)
    )
    return {staff_id: sum(1 for mid in inbound_ids if mid > reads.get(staff_id, 0)) for staff_id in staff_ids}


async def unread_for(staff: Staff, conversation_ids: list[int]) -> dict[int, int]:
    if not conversation_ids:
        return {}
    reads = dict(
        await ConversationRead.filter(staff_id=staff.id, conversation_id__in=conversation_ids).values_list(
            "conversation_id", "last_read_message_id"
        )
    )
    inbound = await Message.filter(conversation_id__in=conversation_ids, direction=Direction.INBOUND).values_list(
        "conversation_id", "id"
    )
    counts: dict[int, int] = defaultdict(int)
    for conversation_id, message_id in inbound:
        if message_id > reads.get(conversation_id, 0):
            counts[conversation_id] += 1
    return counts


def title_for(phone: str, names: list[str]) -> str:
    return " · ".join(names) if names else for_people(phone)


async def inbox_rows(
    staff: Staff, filter_name: str = "all", search: str = "", limit: int = 100
) -> list[ConversationRow]:
    query = Conversation.filter(last_message_at__not_isnull=True)
    visible = await visibility.visible_phone_numbers(staff)
    if visible is not None:
        query = query.filter(phone__in=visible)
    mine = set(await visibility.assigned_phone_numbers(staff))
    known = set(await flat_values(ClientPhone.all().distinct().values_list("number", flat=True)))
    if filter_name == "mine":
        query = query.filter(phone__in=list(mine))
    elif filter_name == "unmatched":
        query = query.exclude(phone__in=list(known))
    if search.strip():
        matches = Q(phone__icontains=search.strip()) | Q(last_message_preview__icontains=search.strip())
        if PHONE_LIKE.fullmatch(search.strip()):  # a number as people write it: (404) 538-7319
            matches |= Q(phone__contains=re.sub(r"\D", "", search))
        query = query.filter(matches)
    conversations = await query.order_by("-last_message_at", "-id").limit(limit)
    readable = None if staff.sees_everything else await visibility.assigned_client_ids(staff)
    names = await names_by_phone([c.phone for c in conversations], readable)
    unread = await unread_for(staff, [c.id for c in conversations])
    # A staff mobile is not a stranger to link to a client: it is not listed as unmatched.
    known |= {phone for phone, found in names.items() if any(n.startswith(STAFF_TITLE) for n in found)}
    rows = [
        ConversationRow(
            conversation=c,
            title=title_for(c.phone, names.get(c.phone, [])),
            unread=unread.get(c.id, 0),
            matched=c.phone in known,
            mine=c.phone in mine,
        )
        for c in conversations
    ]
    if search.strip():
        rows += await _rows_matching_client_name(staff, search, rows, mine, known, readable)
        rows.sort(key=lambda r: (r.conversation.last_message_at, r.conversation.id), reverse=True)
    # Name matches are found apart from the filtered query: the filter applies to them too.
    return await with_last_texts(staff, [r for r in rows if filter_name in r.filters])


async def _rows_matching_client_name(
    staff: Staff,
    search: str,
    found: list[ConversationRow],
    mine: set[str],
    known: set[str],
    readable: list[int] | None,
) -> list[ConversationRow]:
    """Conversations whose number belongs to a client, visible to the reader, with a matching name."""
    clients = ClientPhone.filter(client__name__icontains=search.strip())
    if readable is not None:
        clients = clients.filter(client_id__in=readable)
    phones = await flat_values(clients.values_list("number", flat=True))
    seen = {r.conversation.id for r in found}
    extra = await Conversation.filter(phone__in=list(phones), last_message_at__not_isnull=True).exclude(
        id__in=list(seen)
    )
    names = await names_by_phone([c.phone for c in extra], readable)
    unread = await unread_for(staff, [c.id for c in extra])
    return [
        ConversationRow(c, title_for(c.phone, names.get(c.phone, [])), unread.get(c.id, 0), True, c.phone in mine)
        for c in extra
    ]


async def thread_page(
    conversation: Conversation, before_id: int | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Message], bool]:
    """One page of a thread's history, oldest first, and whether older messages remain. Texts waiting for
    their time are not history (scheduled_texts); once gone, one sits where it went (Message.shown_at)."""
    query = Message.filter(conversation_id=conversation.id).exclude(status=MessageStatus.SCHEDULED)
    if before_id:
        query = query.filter(id__lt=before_id)
    newest_first = await query.order_by("-id").limit(limit + 1).prefetch_related(*MESSAGE_VIEW_RELATIONS)
    has_older = len(newest_first) > limit
    return sorted(newest_first[:limit], key=lambda m: (m.shown_at, m.id)), has_older


async def scheduled_texts(conversation: Conversation) -> list[Message]:
    """The texts waiting for their time, by when they will go: a thread shows them apart, at its end."""
    query = Message.filter(conversation_id=conversation.id, status=MessageStatus.SCHEDULED)
    return await query.order_by("send_at", "id").prefetch_related(*MESSAGE_VIEW_RELATIONS)


async def staff_with_mobile(phone: str) -> Staff | None:
    """The staff member whose own mobile this is (their reminders' conversation), if any."""
    if len(phone) > STAFF_MOBILE_LENGTH:
        return None
    return await Staff.filter(mobile=phone).order_by("-is_active", "id").first()


async def clients_of_phone(staff: Staff, phone: str) -> list[Client]:
    """The clients with this number whom the reader may see: several clients can share a phone."""
    query = Client.filter(phones__number=phone).distinct()
    if not staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_client_ids(staff))
    return await query.prefetch_related("phones", "cases")


# ---------------------------------------------------------------- whose latest text it is

FAILED_STATUSES = (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
ATTACHMENT_ONLY = "📎 Attachment"  # as inbox.services.messaging previews a text that is only a photo or a file


async def last_texts(conversation_ids: list[int]) -> dict[int, LastText]:
    """Each conversation's latest text that has gone or come, scheduled ones left out (two queries)."""
    if not conversation_ids:
        return {}
    latest = (
        await Message.filter(conversation_id__in=conversation_ids)
        .exclude(status=MessageStatus.SCHEDULED)
        .annotate(last_id=Max("id"))
        .group_by("conversation_id")
        .values_list("last_id", flat=True)
    )
    found = await Message.filter(id__in=[i for i in latest if i is not None]).select_related("sent_by")
    return {message.conversation_id: last_text(message) for message in found}


def last_text(message: Message) -> LastText:
    outbound = message.direction == Direction.OUTBOUND
    writer = message.sent_by if outbound else None
    flat = " ".join((message.body or "").split())
    return LastText(
        sender_id=writer.id if writer else None,
        sender=writer.name.split()[0] if writer and writer.name.strip() else "",
        automatic=outbound and writer is None,
        failed=message.status in FAILED_STATUSES,
        preview=(flat if len(flat) <= 120 else flat[:119] + "…") or ATTACHMENT_ONLY,
        at=message.shown_at,
    )


async def with_last_texts(staff: Staff, rows: list[ConversationRow]) -> list[ConversationRow]:
    """The rows with their latest texts, said from the reader's side ("You:" for their own)."""
    last = await last_texts([r.conversation.id for r in rows])
    return [
        replace(r, last=last.get(r.conversation.id), yours=_wrote(staff.id, last.get(r.conversation.id))) for r in rows
    ]


def _wrote(staff_id: int, last: LastText | None) -> bool:
    return last is not None and last.sender_id == staff_id
