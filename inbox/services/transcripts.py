"""Transcripts for the case file: every text of a case or a conversation with its status timeline and
attachments, the consent changes of the numbers involved, and the links made and taken off — merged oldest
first, with times in the organisation's time zone, and only what the reader may see (the pages' rules).

The page, the CSV and the API all read one `Transcript`; this module decides what is in it, never how it
looks. Its query count does not grow with the number of texts (tests/test_transcripts.py counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from tortoise.queryset import QuerySet

from inbox import clock
from inbox.models import (
    Case,
    ClientPhone,
    ConsentEvent,
    Conversation,
    Direction,
    Message,
    MessageLink,
    MessagePurpose,
    RemovedLink,
    Staff,
)
from inbox.phones import for_people
from inbox.services import consent, messaging, organisation, visibility
from inbox.services.errors import NotFound
from inbox.services.linking import REASON_WORDS
from inbox.sms.errors import explain

# What a message row needs for the page, the CSV and the API's message shape (links with who filed them).
MESSAGE_RELATIONS = ("timeline", "links__linked_by", "media", "attempts", "sent_by")

PURPOSE_WORDS: dict[str, str] = {
    MessagePurpose.AUTO_REPLY: "auto-reply",
    MessagePurpose.HELP: "help reply",
    MessagePurpose.OPT_IN_REQUEST: "opt-in request",
    MessagePurpose.KEYWORD_CONFIRMATION: "opt-in confirmation",
    MessagePurpose.STOP_CONFIRMATION: "opt-out confirmation",
    MessagePurpose.TEST: "test text",
    MessagePurpose.EVENT_REMINDER: "event reminder",
    MessagePurpose.CAMPAIGN: "bulk text",
    MessagePurpose.STAFF_REMINDER: "staff reminder",
}
AUTOMATIC = "automatic"


class EntryKind(StrEnum):
    MESSAGE = "message"
    CONSENT = "consent"
    LINK = "link"


class LinkChangeKind(StrEnum):
    FILED = "filed"  # the text was filed on the case (by a rule or by hand)
    REMOVED = "removed"  # someone took it off the case


@dataclass(frozen=True)
class Step:
    """One status of a text's timeline."""

    status: str
    at: datetime  # in the organisation's time zone
    error_code: int | None


@dataclass(frozen=True)
class ConsentChange:
    """One change of a number's okay-to-text state (one per change, however many client records it touched)."""

    id: int
    number: str
    okay_to_text: bool
    opted_out: bool
    source: str
    what: str  # "Opted out: the client texted STOP"
    by: str  # the person, or what made the change
    at: datetime  # in the organisation's time zone
    message_id: int | None


@dataclass(frozen=True)
class LinkChange:
    """A text filed on a case, or taken off it."""

    change: LinkChangeKind
    message_id: int
    case_id: int
    case_number: str
    reason: str  # the rule that filed it (a LinkReason value)
    by: str  # the person, or "automatic" for a rule
    at: datetime  # in the organisation's time zone


@dataclass(frozen=True)
class Entry:
    """One line of the transcript: a text, a consent change or a link change."""

    at: datetime  # in the organisation's time zone
    kind: EntryKind
    direction: str = ""
    sender: str = ""
    status: str = ""
    body: str = ""
    attachments: tuple[str, ...] = ()
    detail: str = ""
    message_id: int | None = None
    timeline: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Transcript:
    case: Case | None  # a case's transcript (client fetched) …
    conversation: Conversation | None  # … or a conversation's
    client_names: tuple[str, ...]  # the clients it is about, as the reader may see them
    time_zone: str
    printed_at: datetime  # in the organisation's time zone
    messages: list[Message]  # oldest first, with MESSAGE_RELATIONS fetched
    visible_cases: set[int] | None  # None: every case
    consent_changes: list[ConsentChange]
    link_changes: list[LinkChange]
    entries: list[Entry]  # everything above, merged oldest first

    @property
    def heading(self) -> str:
        if self.case is not None:
            return f"Case {self.case.number} · {self.case.client.name}"
        assert self.conversation is not None
        names = " / ".join(self.client_names)
        return f"Texts with {for_people(self.conversation.phone)}" + (f" · {names}" if names else "")


# ---------------------------------------------------------------- building one


async def case_transcript(staff: Staff, case_id: int) -> Transcript:
    """Every text filed on the case, with the consent changes of its client's numbers and of every number it
    texted with, and the case's link changes. 404 for a case the reader may not see."""
    case = await Case.get_or_none(id=case_id).prefetch_related("client")
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    messages = await _with_relations(Message.filter(links__case_id=case.id).distinct())
    on_record = await ClientPhone.filter(client_id=case.client_id).values_list("number", flat=True)
    numbers = {_client_number(m) for m in messages} | {str(n) for n in on_record}
    removed = await RemovedLink.filter(case_id=case.id).order_by("id").prefetch_related("linked_by", "removed_by")
    links = [link for m in messages for link in m.links if link.case_id == case.id]
    return await _assemble(staff, case, None, messages, numbers, links, list(removed))


async def conversation_transcript(staff: Staff, conversation_id: int) -> Transcript:
    """Every text with one number on one channel, the number's consent changes, and the link changes of its
    texts on cases the reader may see. 404 for a conversation the reader may not see."""
    conversation = await messaging.conversation_for(staff, conversation_id)
    messages = await _with_relations(Message.filter(conversation_id=conversation.id))
    removed = (
        await RemovedLink.filter(message__conversation_id=conversation.id)
        .order_by("id")
        .prefetch_related("linked_by", "removed_by")
    )
    links = [link for m in messages for link in m.links]
    return await _assemble(staff, None, conversation, messages, {conversation.phone}, links, list(removed))


async def _with_relations(query: QuerySet[Message]) -> list[Message]:
    """The texts in the order a thread shows them (a scheduled text where it went), relations fetched."""
    rows: list[Message] = await query.order_by("id").prefetch_related(*MESSAGE_RELATIONS)
    return sorted(rows, key=lambda m: (m.shown_at, m.id))


def _client_number(message: Message) -> str:
    return message.from_number if message.direction == Direction.INBOUND else message.to_number


async def _assemble(
    staff: Staff,
    case: Case | None,
    conversation: Conversation | None,
    messages: list[Message],
    numbers: set[str],
    links: list[MessageLink],
    removed: list[RemovedLink],
) -> Transcript:
    zone = ZoneInfo((await organisation.current()).time_zone)
    visible = await visibility.visible_case_ids(staff)
    readable = await consent.readable_clients(staff)
    names = await _client_names(numbers, readable)
    links = [link for link in links if visible is None or link.case_id in visible]
    removed = [row for row in removed if visible is None or row.case_id in visible]
    case_numbers = await _case_numbers({link.case_id for link in links} | {row.case_id for row in removed})
    consent_rows = await ConsentEvent.filter(number__in=sorted(numbers)).prefetch_related("client_phone", "staff")
    changes = _consent_changes(list(consent_rows), readable, zone)
    link_changes = _link_changes(links, removed, case_numbers, zone)
    entries = [_message_entry(m, names, zone) for m in messages]
    entries += [_consent_entry(change) for change in changes]
    entries += [_link_entry(change) for change in link_changes]
    order = {EntryKind.LINK: 0, EntryKind.MESSAGE: 1, EntryKind.CONSENT: 2}
    entries.sort(key=lambda e: (e.at, order[e.kind]))  # stable: each kind keeps its own order
    client_names = (
        (case.client.name,) if case is not None else tuple(dict.fromkeys(n for ns in names.values() for n in ns))
    )
    return Transcript(
        case=case,
        conversation=conversation,
        client_names=client_names,
        time_zone=zone.key,
        printed_at=clock.now().astimezone(zone),
        messages=messages,
        visible_cases=visible,
        consent_changes=changes,
        link_changes=link_changes,
        entries=entries,
    )


async def _client_names(numbers: set[str], readable: frozenset[int] | None) -> dict[str, list[str]]:
    """Number → the names of the clients on record with it that the reader may see (one query)."""
    rows = await ClientPhone.filter(number__in=sorted(numbers)).values_list("number", "client_id", "client__name")
    names: dict[str, list[str]] = {}
    for number, client_id, name in sorted(rows, key=lambda row: row[1]):
        if readable is None or client_id in readable:
            names.setdefault(number, []).append(name)
    return names


async def _case_numbers(case_ids: set[int]) -> dict[int, str]:
    if not case_ids:
        return {}
    return dict(await Case.filter(id__in=sorted(case_ids)).values_list("id", "number"))


# ---------------------------------------------------------------- the entries


def _sender(message: Message, names: dict[str, list[str]]) -> str:
    """Who wrote it: the staff member, the client (by name when on record), or the app by itself."""
    if message.direction == Direction.INBOUND:
        who = " / ".join(names.get(message.from_number, []))
        return f"{who} (client)" if who else "client"
    if message.sent_by is not None:
        return message.sent_by.name
    purpose = PURPOSE_WORDS.get(message.purpose, "") if message.purpose else ""
    return f"{AUTOMATIC} ({purpose})" if purpose else AUTOMATIC


def _timeline(message: Message, zone: ZoneInfo) -> tuple[Step, ...]:
    return tuple(Step(str(s.status), s.at.astimezone(zone), s.error_code) for s in messaging.timeline_of(message))


def _message_detail(message: Message, timeline: tuple[Step, ...]) -> str:
    """The timeline and any error, in words: "queued 09:41:02 → sent 09:41:03 → delivered 09:41:05"."""
    parts = []
    if timeline:
        parts.append(" → ".join(f"{s.status} {s.at:%Y-%m-%d %H:%M:%S}" for s in timeline))
    if message.error_code:
        parts.append(f"error {message.error_code}: {explain(message.error_code)}")
    elif message.error_message:
        parts.append(message.error_message)
    if message.direction == Direction.OUTBOUND:
        parts.append(f"to {for_people(message.to_number)}")
    else:
        parts.append(f"from {for_people(message.from_number)}")
    return "; ".join(parts)


def _message_entry(message: Message, names: dict[str, list[str]], zone: ZoneInfo) -> Entry:
    timeline = _timeline(message, zone)
    media = sorted(message.media, key=lambda m: (m.position, m.id))
    return Entry(
        at=message.shown_at.astimezone(zone),
        kind=EntryKind.MESSAGE,
        direction=str(message.direction),
        sender=_sender(message, names),
        status=str(message.status),
        body=message.body,
        attachments=tuple(item.filename for item in media),
        detail=_message_detail(message, timeline),
        message_id=message.id,
        timeline=timeline,
    )


def _consent_visible(row: ConsentEvent, readable: frozenset[int] | None) -> bool:
    """A number-wide change (a keyword, a reply, Twilio) is the number's; one on a client's record is that
    client's business (consent.Notice.visible_to says the same for the thread)."""
    if readable is None or row.source in consent.NUMBER_WIDE or row.client_phone is None:
        return True
    return row.client_phone.client_id in readable


def _consent_changes(rows: list[ConsentEvent], readable: frozenset[int] | None, zone: ZoneInfo) -> list[ConsentChange]:
    """One per change: a STOP writes a ledger row on every record with the number, the case file needs one (told
    by a record the reader may see, when there is one)."""
    groups: dict[tuple[object, ...], list[ConsentEvent]] = {}
    for row in sorted(rows, key=lambda r: (r.at, r.id)):
        if not _consent_visible(row, readable):
            continue
        # A number-wide change is one change whatever each record's okay-to-text was; a record's own is its own.
        own = None if row.source in consent.NUMBER_WIDE else (row.client_phone_id, row.okay_to_text)
        key = (row.number, row.at, row.source, row.detail, row.message_id, row.staff_id, row.opted_out, own)
        groups.setdefault(key, []).append(row)
    changes = []
    for group in groups.values():
        row = next((r for r in group if _readable_record(r, readable)), group[0])
        line = consent.ledger_line(row)
        changes.append(
            ConsentChange(
                id=row.id,
                number=row.number,
                okay_to_text=row.okay_to_text,
                opted_out=row.opted_out,
                source=str(row.source),
                what=line.what,
                by=line.who,
                at=row.at.astimezone(zone),
                message_id=row.message_id,
            )
        )
    return changes


def _readable_record(row: ConsentEvent, readable: frozenset[int] | None) -> bool:
    return readable is None or (row.client_phone is not None and row.client_phone.client_id in readable)


def _link_changes(
    links: list[MessageLink], removed: list[RemovedLink], case_numbers: dict[int, str], zone: ZoneInfo
) -> list[LinkChange]:
    def who(person: Staff | None) -> str:
        return person.name if person is not None else AUTOMATIC

    changes = [
        LinkChange(
            LinkChangeKind.FILED,
            link.message_id,
            link.case_id,
            case_numbers.get(link.case_id, ""),
            link.reason,
            who(link.linked_by),
            link.created_at.astimezone(zone),
        )
        for link in links
    ]
    for row in removed:
        number = case_numbers.get(row.case_id, "")
        filed_at, removed_at = row.linked_at.astimezone(zone), row.removed_at.astimezone(zone)
        filed = (row.message_id, row.case_id, number, row.reason)
        changes.append(LinkChange(LinkChangeKind.FILED, *filed, who(row.linked_by), filed_at))
        changes.append(LinkChange(LinkChangeKind.REMOVED, *filed, who(row.removed_by), removed_at))
    return sorted(changes, key=lambda c: (c.at, c.message_id, c.case_id))


def _consent_entry(change: ConsentChange) -> Entry:
    return Entry(
        at=change.at,
        kind=EntryKind.CONSENT,
        sender=change.by,
        body=change.what,
        detail=f"{for_people(change.number)}: okay to text {'yes' if change.okay_to_text else 'no'}, "
        f"opted out {'yes' if change.opted_out else 'no'} (source: {change.source})",
        message_id=change.message_id,
    )


def _link_entry(change: LinkChange) -> Entry:
    reason = REASON_WORDS.get(change.reason, change.reason)
    if change.change == LinkChangeKind.FILED:
        what = f"Text #{change.message_id} filed on case {change.case_number} ({reason})"
    else:
        what = f"Text #{change.message_id} taken off case {change.case_number} (it was filed: {reason})"
    return Entry(
        at=change.at,
        kind=EntryKind.LINK,
        sender=change.by,
        body=what,
        detail=_link_detail(change),
        message_id=change.message_id,
    )


def _link_detail(change: LinkChange) -> str:
    if change.change == LinkChangeKind.REMOVED:
        return f"taken off by {change.by}"
    return "filed automatically by the linking rules" if change.by == AUTOMATIC else f"filed by {change.by}"
