"""Reading the inbox: conversation rows with per-reader unread counts, and thread pages."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tortoise import Tortoise
from tortoise.expressions import RawSQL, Subquery
from tortoise.functions import Max
from tortoise.query_utils import Prefetch
from tortoise.queryset import QuerySet

from inbox.models import (
    Client,
    ClientPhone,
    Conversation,
    ConversationRead,
    Direction,
    Message,
    MessageLink,
    MessageStatus,
    Staff,
    shown_at,
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
    hit: SearchHit | None = None  # a searched list: the text that matched
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


async def names_by_phone(
    phones: list[str], client_ids: list[int] | None = None
) -> tuple[dict[str, list[str]], set[str]]:
    """Client names for each number, and which numbers are on any client record (one query for both);
    several clients may share a phone.

    `client_ids` limits the names to the clients a reader may see (None: everyone); the numbers on record
    count every client's.
    """
    rows = (
        await ClientPhone.filter(number__in=phones).values_list("number", "client_id", "client__name") if phones else []
    )
    readable = set(client_ids) if client_ids is not None else None
    names: dict[str, list[str]] = defaultdict(list)
    for number, client_id, name in rows:
        if (readable is None or client_id in readable) and name not in names[number]:
            names[number].append(name)
    on_record = {number for number, _, _ in rows}
    # A number on no client record the reader sees may be a staff member's own mobile (their reminders): say whose.
    unknown = [p for p in phones if p not in names and len(p) <= STAFF_MOBILE_LENGTH]
    for number, name in await Staff.filter(mobile__in=unknown).values_list("mobile", "name") if unknown else []:
        names[number].append(f"{STAFF_TITLE}{name}")
    return names, on_record


async def unread_counts(staff_ids: list[int], conversation_id: int) -> dict[int, int]:
    """Unread inbound messages in one conversation for many readers (every live update of a row asks): their
    marks, then one count per distinct mark in a single query over the texts past the lowest mark (message's
    (conversation_id, id) index) — not every inbound id of the conversation carried back and counted in Python
    for each reader, which grew with the conversation."""
    reads = dict(
        await ConversationRead.filter(conversation_id=conversation_id, staff_id__in=staff_ids).values_list(
            "staff_id", "last_read_message_id"
        )
    )
    marks = sorted({reads.get(staff_id, 0) for staff_id in staff_ids})
    if not marks:
        return {}
    connection = Tortoise.get_connection("default")
    params = search_._Params(connection.capabilities.dialect)
    counts = ", ".join(
        f"SUM(CASE WHEN id > {params.add(mark)} THEN 1 ELSE 0 END) AS past_{n}" for n, mark in enumerate(marks)
    )
    sql = (
        f"SELECT {counts} FROM message WHERE conversation_id = {params.add(conversation_id)}"
        f" AND direction = {params.add(Direction.INBOUND.value)} AND id > {params.add(marks[0])}"
    )
    row = (await connection.execute_query_dict(sql, params.values))[0]
    by_mark = {mark: int(row[f"past_{n}"] or 0) for n, mark in enumerate(marks)}
    return {staff_id: by_mark[reads.get(staff_id, 0)] for staff_id in staff_ids}


async def unread_for(staff: Staff, conversation_ids: list[int]) -> dict[int, int]:
    """Unread inbound texts in each listed conversation for one reader: one COUNT … GROUP BY over those
    conversations' texts past the reader's mark (message's (conversation_id, id) index), never all texts."""
    if not conversation_ids:
        return {}
    connection = Tortoise.get_connection("default")
    params = search_._Params(connection.capabilities.dialect)
    sql = (
        "SELECT m.conversation_id AS conversation_id, COUNT(*) AS unread FROM message m"
        " LEFT JOIN conversation_read r"
        f" ON r.conversation_id = m.conversation_id AND r.staff_id = {params.add(staff.id)}"
        f" WHERE m.conversation_id IN ({params.many(list(conversation_ids))})"
        f" AND m.direction = {params.add(Direction.INBOUND.value)}"
        " AND m.id > COALESCE(r.last_read_message_id, 0)"
        " GROUP BY m.conversation_id"
    )
    rows = await connection.execute_query_dict(sql, params.values)
    return {int(row["conversation_id"]): int(row["unread"]) for row in rows}


def _has_unread(staff: Staff) -> RawSQL:
    """True for a conversation with an inbound text past the reader's mark: the Unread filter, in the query
    (so the list is cut after filtering). The staff id is an int from the database, written in."""
    return RawSQL(
        'EXISTS (SELECT 1 FROM message m WHERE m.conversation_id = "conversation"."id"'
        f" AND m.direction = '{Direction.INBOUND.value}' AND m.id > COALESCE((SELECT r.last_read_message_id"
        f' FROM conversation_read r WHERE r.conversation_id = "conversation"."id" AND r.staff_id = {int(staff.id)}),'
        " 0))"
    )


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
    readable = None if staff.sees_everything else await visibility.assigned_client_ids(staff)
    terms = search_.terms_of(search)
    if terms is not None:
        phones = sorted(mine) if filter_name == "mine" else visible
        conversations, hits = await _searched(terms, filter_name, phones, readable, limit)
    else:
        conversations, hits = await _listed(staff, filter_name, visible, mine, limit), {}
    listed = [c.phone for c in conversations]
    # Only the listed numbers are looked up (never every client's).
    names, known = await names_by_phone(listed, readable)
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
    return await with_last_texts(staff, [r for r in rows if filter_name in r.filters])


async def unmatched_waiting(staff: Staff, limit: int = 50) -> list[ConversationRow]:
    """Numbers on no client record whose last text came in: no case, so no alert — the dashboard lists them."""
    rows = await inbox_rows(staff, "unmatched", limit=limit)
    return [r for r in rows if r.conversation.last_direction == Direction.INBOUND]


async def _listed(
    staff: Staff, filter_name: str, visible: list[str] | None, mine: set[str], limit: int
) -> list[Conversation]:
    """The newest conversations in the filter, filtered in the query and then cut to `limit`."""
    query = Conversation.filter(last_message_at__not_isnull=True)
    if visible is not None:
        query = query.filter(phone__in=visible)
    if filter_name == "mine":
        query = query.filter(phone__in=list(mine))
    elif filter_name == "unmatched":
        on_record = ClientPhone.all().values("number")
        staff_mobiles = Staff.filter(mobile__not_isnull=True).values("mobile")
        query = query.exclude(phone__in=Subquery(on_record)).exclude(phone__in=Subquery(staff_mobiles))
    elif filter_name == "unread":
        query = query.annotate(has_unread=_has_unread(staff)).filter(has_unread=True)
    ordered = query.order_by("-last_message_at", "-id").limit(limit)
    return list(await ordered.only(*LISTED_FIELDS))


# What a listed row shows of its conversation: 100 rows a page, each datetime parsed costs (rows are only shown).
LISTED_FIELDS = ("id", "channel_id", "phone", "last_message_at", "last_message_preview", "last_direction")


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
    """One page of a thread's history, oldest first, and whether older messages remain. Texts waiting for
    their time are not history (scheduled_texts); once gone, one sits where it went (Message.shown_at)."""
    query = Message.filter(conversation_id=conversation.id).exclude(status=MessageStatus.SCHEDULED)
    if before_id:
        query = query.filter(id__lt=before_id)
    newest_first = await with_view_relations(query.order_by("-id").limit(limit + 1))
    has_older = len(newest_first) > limit
    return sorted(newest_first[:limit], key=lambda m: (m.shown_at, m.id)), has_older


async def scheduled_texts(conversation: Conversation) -> list[Message]:
    """The texts waiting for their time, by when they will go: a thread shows them apart, at its end."""
    query = Message.filter(conversation_id=conversation.id, status=MessageStatus.SCHEDULED)
    return await with_view_relations(query.order_by("send_at", "id"))


def with_view_relations(query: QuerySet[Message]) -> QuerySet[Message]:
    """MESSAGE_VIEW_RELATIONS in two queries besides the texts': the writer and the case joined (one of each
    per text), the links with their cases and the media fetched after (five queries before)."""
    links = Prefetch("links", queryset=MessageLink.all().select_related("case"))
    return query.select_related("sent_by", "case").prefetch_related(links, "media")


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
    """Each conversation's latest text that has gone or come, scheduled ones left out: one query (the latest
    ids as a subquery, the writer's name joined), read as values — a row says little, and 100 model
    instances cost more to build than to read."""
    if not conversation_ids:
        return {}
    latest = (
        Message.filter(conversation_id__in=conversation_ids)
        .exclude(status=MessageStatus.SCHEDULED)
        .annotate(last_id=Max("id"))
        .group_by("conversation_id")
        .values("last_id")
    )
    rows = await Message.filter(id__in=Subquery(latest)).values(*LAST_TEXT_FIELDS, writer="sent_by__name")
    return {row["conversation_id"]: last_text_of(row) for row in rows}


LAST_TEXT_FIELDS = (
    "id",
    "conversation_id",
    "direction",
    "status",
    "body",
    "sent_by_id",
    "send_at",
    "first_attempt_at",
    "updated_at",
    "created_at",
)


def last_text_of(row: dict[str, Any]) -> LastText:
    """A row of LAST_TEXT_FIELDS and `writer` (the name of the staff member who wrote it, if any)."""
    outbound = row["direction"] == Direction.OUTBOUND
    writer = row["writer"] if outbound and row["sent_by_id"] is not None else None
    flat = " ".join((row["body"] or "").split())
    return LastText(
        sender_id=row["sent_by_id"] if writer is not None else None,
        sender=writer.split()[0] if writer and writer.strip() else "",
        automatic=outbound and writer is None,
        failed=row["status"] in FAILED_STATUSES,
        preview=(flat if len(flat) <= 120 else flat[:119] + "…") or ATTACHMENT_ONLY,
        at=shown_at(row["status"], row["send_at"], row["first_attempt_at"], row["updated_at"], row["created_at"]),
    )


async def with_last_texts(staff: Staff, rows: list[ConversationRow]) -> list[ConversationRow]:
    """The rows with their latest texts, said from the reader's side ("You:" for their own)."""
    last = await last_texts([r.conversation.id for r in rows])
    return [
        replace(r, last=last.get(r.conversation.id), yours=_wrote(staff.id, last.get(r.conversation.id))) for r in rows
    ]


def _wrote(staff_id: int, last: LastText | None) -> bool:
    return last is not None and last.sender_id == staff_id
