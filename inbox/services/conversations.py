"""Reading the inbox: conversation rows with per-reader unread counts, and thread pages."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from inbox.models import (
    Client,
    ClientPhone,
    Conversation,
    ConversationRead,
    Direction,
    Message,
    Staff,
    flat_values,
)
from inbox.phones import for_people
from inbox.services import search as search_
from inbox.services import visibility

FILTERS = ("all", "mine", "unread", "unmatched")
# What a bubble shows: prefetch these wherever messages are rendered.
MESSAGE_VIEW_RELATIONS = ("sent_by", "case", "links__case", "media")
PAGE_SIZE = 30
STAFF_TITLE = "Staff: "  # a staff member's own mobile, named as theirs
STAFF_MOBILE_LENGTH = 20  # Staff.mobile's width: a longer sender cannot be one (and may not be filtered on)


@dataclass(frozen=True)
class SearchHit:
    """The message a search matched in a conversation, and the text around the match."""

    message_id: int
    snippet: search_.Snippet


@dataclass(frozen=True)
class ConversationRow:
    conversation: Conversation
    title: str
    unread: int
    matched: bool
    mine: bool
    hit: SearchHit | None = None  # a searched list: the text that matched

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
    """The reader's conversation list, newest first; a search keeps to conversations matching it (see
    services/search.py), each row with the text that matched."""
    visible = await visibility.visible_phone_numbers(staff)
    # An advocate sees exactly the numbers of their clients: their "mine" needs no second look-up.
    mine = set(visible) if visible is not None else set(await visibility.assigned_phone_numbers(staff))
    known = set(await flat_values(ClientPhone.all().distinct().values_list("number", flat=True)))
    readable = None if staff.sees_everything else await visibility.assigned_client_ids(staff)
    terms = search_.terms_of(search)
    if terms is not None:
        phones = sorted(mine) if filter_name == "mine" else visible
        conversations, hits = await _searched(terms, filter_name, phones, readable, limit)
    else:
        conversations, hits = await _listed(filter_name, visible, mine, known, limit), {}
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
            hit=hits.get(c.id),
        )
        for c in conversations
    ]
    return [r for r in rows if filter_name in r.filters]


async def unmatched_waiting(staff: Staff, limit: int = 50) -> list[ConversationRow]:
    """Numbers on no client record whose last text came in: no case, so no alert — the dashboard lists them."""
    rows = await inbox_rows(staff, "unmatched", limit=limit)
    return [r for r in rows if r.conversation.last_direction == Direction.INBOUND]


async def _listed(
    filter_name: str, visible: list[str] | None, mine: set[str], known: set[str], limit: int
) -> list[Conversation]:
    query = Conversation.filter(last_message_at__not_isnull=True)
    if visible is not None:
        query = query.filter(phone__in=visible)
    if filter_name == "mine":
        query = query.filter(phone__in=list(mine))
    elif filter_name == "unmatched":
        query = query.exclude(phone__in=list(known))
    return list(await query.order_by("-last_message_at", "-id").limit(limit))


async def _searched(
    terms: search_.Terms, filter_name: str, phones: list[str] | None, readable: list[int] | None, limit: int
) -> tuple[list[Conversation], dict[int, SearchHit]]:
    """The conversations a search finds (three queries, however many match) and the text each matched.

    `phones`: the numbers to search (None: all); `readable`: the clients whose names and case numbers count.
    """
    found = await search_.find(
        terms, phones=phones, client_ids=readable, unmatched_only=filter_name == "unmatched", limit=limit
    )
    by_id = {c.id: c for c in await Conversation.filter(id__in=[h.conversation_id for h in found])}
    message_ids = [h.message_id for h in found if h.message_id is not None]
    bodies = dict(await Message.filter(id__in=message_ids).values_list("id", "body")) if message_ids else {}
    hits = {
        h.conversation_id: SearchHit(h.message_id, search_.snippet(str(bodies[h.message_id]), terms))
        for h in found
        if h.message_id is not None and h.message_id in bodies
    }
    return [by_id[h.conversation_id] for h in found if h.conversation_id in by_id], hits


async def thread_page(
    conversation: Conversation, before_id: int | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Message], bool]:
    """One page of a thread, oldest first, and whether older messages remain."""
    query = Message.filter(conversation_id=conversation.id)
    if before_id:
        query = query.filter(id__lt=before_id)
    newest_first = await query.order_by("-id").limit(limit + 1).prefetch_related(*MESSAGE_VIEW_RELATIONS)
    has_older = len(newest_first) > limit
    return list(reversed(newest_first[:limit])), has_older


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
