"""Filing texts on cases (LegalServer's rules, seed 002) and the case notes each link creates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.functions import Max
from tortoise.transactions import in_transaction

from inbox import clock
from inbox.events import Bus, MessageLinksChanged
from inbox.models import (
    Case,
    CaseNote,
    Client,
    ClientPhone,
    ConsentSource,
    Conversation,
    Direction,
    LinkingPolicy,
    LinkReason,
    Message,
    MessageLink,
    MessageStatus,
    PhoneKind,
    RemovedLink,
    Staff,
    flat_values,
)
from inbox.phones import for_people, is_phone_number
from inbox.services import audit, bulk, consent, settings_cache, visibility
from inbox.services.errors import NotFound, Refused, ValidationFailed, require
from inbox.services.limits import check_fits, clip
from inbox.services.unit_of_work import unit_of_work

# Linking a conversation to a client is for numbers on no record. A number on a record is filed by the
# rules already, and moving it would hand one client's texts (and their reader's access) to another.
ALREADY_ON_A_RECORD = (
    "This number is already on a client record, so its texts are filed on that client's cases. "
    "Nothing was changed. To file one text on another case, open the text and use “File on another case”."
)
NOT_A_PHONE_NUMBER = (
    "Only a phone number can join a client's record, and this sender is not one (a WhatsApp or Messenger "
    "address, a named sender or a short code). Nothing was changed. To file one of its texts on a case, open "
    "the text and use “File on another case”."
)

REASON_WORDS: dict[str, str] = {
    LinkReason.SENT_FROM: "sent from this case",
    LinkReason.TEXTED_BEFORE: "this case texted the number",
    LinkReason.CLIENT_PHONE: "number on client record",
    LinkReason.BEST_GUESS: "best guess",
    LinkReason.MANUAL: "linked by hand",
}


@dataclass(frozen=True)
class CaseChoice:
    case_id: int
    reason: LinkReason


async def linking_policy() -> LinkingPolicy:
    return (await settings_cache.policies()).linking


async def cases_for_inbound(number: str, policy: LinkingPolicy) -> list[CaseChoice]:
    """The cases an inbound text from `number` lands on, each with the rule that chose it."""
    return (await _senders([number], policy))[number].choices


@dataclass
class _Sender:
    """What filing a number's texts needs: the cases they land on, and its clients' names (for the note)."""

    choices: list[CaseChoice]
    names: list[str]


async def _senders(numbers: Sequence[str], policy: LinkingPolicy) -> dict[str, _Sender]:
    """`cases_for_inbound` and the clients' names for many numbers, in three queries however many there are.

    The cases that texted a number, the most recent sender first, then the cases whose client has the number
    in a phone field, the most recently created first. Filing texts changes neither: a batch's texts from one
    number all land on the same cases."""
    wanted = list(dict.fromkeys(numbers))
    texted = await _cases_that_texted(wanted)
    phones = (
        await ClientPhone.filter(number__in=wanted)
        .order_by("client_id")
        .values_list("number", "client_id", "client__name")
    )
    on_record = await _cases_of_clients({client_id for _, client_id, _ in phones})
    senders = {}
    for number in wanted:
        clients = {client_id: name for phone, client_id, name in phones if phone == number}
        cases = [case_id for client_id, case_id in on_record if client_id in clients]
        choices = _choices(texted.get(number, []), list(dict.fromkeys(cases)), policy)
        senders[number] = _Sender(choices, list(dict.fromkeys(clients.values())))
    return senders


def _choices(texted: list[int], on_record: list[int], policy: LinkingPolicy) -> list[CaseChoice]:
    if policy == LinkingPolicy.BEST_GUESS:
        choice = texted[:1] or on_record[:1]
        return [CaseChoice(choice[0], LinkReason.BEST_GUESS)] if choice else []
    choices = []
    if texted:
        choices.append(CaseChoice(texted[0], LinkReason.SENT_FROM))
        choices += [CaseChoice(case_id, LinkReason.TEXTED_BEFORE) for case_id in texted[1:]]
    choices += [CaseChoice(case_id, LinkReason.CLIENT_PHONE) for case_id in on_record]
    return choices


async def _cases_that_texted(numbers: list[str]) -> dict[str, list[int]]:
    """The cases that sent texts to each number, the most recent sender first (one row per number and case).
    A text still waiting for its time (scheduled) or stopped before it left (canceled) was not sent."""
    rows = (
        await Message.filter(direction=Direction.OUTBOUND, to_number__in=numbers, case_id__not_isnull=True)
        .exclude(status__in=[MessageStatus.SCHEDULED, MessageStatus.CANCELED])
        .annotate(last=Max("id"))
        .group_by("to_number", "case_id")
        .order_by("-last")
        .values_list("to_number", "case_id")
    )
    texted: dict[str, list[int]] = {}
    for number, case_id in rows:
        texted.setdefault(number, []).append(case_id)
    return texted


async def _cases_of_clients(client_ids: set[int]) -> list[tuple[int, int]]:
    """(client id, case id) of these clients' cases, the most recently created first."""
    if not client_ids:
        return []
    rows = (
        await Case.filter(client_id__in=sorted(client_ids))
        .order_by("-created_at", "-id")
        .values_list("client_id", "id")
    )
    return [(client_id, case_id) for client_id, case_id in rows]


def note_author(message: Message, sender_names: list[str], staff: Staff | None) -> str:
    """Who a case note says wrote the text (long or many names are clipped to fit the note)."""
    if message.direction == Direction.OUTBOUND:
        author = f"{staff.name} (text to {for_people(message.to_number)})" if staff else "Text sent"
    else:
        who = " / ".join(sender_names) or for_people(message.from_number)
        author = f"{who} (text from {for_people(message.from_number)})"
    return clip(author, CaseNote, "author")


async def file_on_case(
    message: Message, case_id: int, reason: LinkReason, author: str, by: Staff | None = None
) -> bool:
    """A link and, once per message and case, its case note. Answers whether the case is new to the message."""
    await MessageLink.get_or_create(message=message, case_id=case_id, reason=reason, defaults={"linked_by": by})
    _, noted = await CaseNote.get_or_create(
        case_id=case_id, message=message, defaults={"author": author, "body": message.body, "at": message.created_at}
    )
    return noted


async def link_inbound(message: Message) -> list[int]:
    """Files an inbound text by the organisation's policy; answers the case ids it landed on."""
    return (await link_inbound_many([message]))[0]


async def link_inbound_many(messages: Sequence[Message]) -> list[list[int]]:
    """link_inbound for each text, in order: the case ids each landed on (aligned with `messages`).

    The texts are new (stored in the caller's unit of work): none has links or notes yet, so each link and
    note is an INSERT, not a look-up and an insert (in a savepoint) per case and reason. A fixed number of
    statements however many texts and senders: filing was the largest cost of an inbound text (bench/ingest.py).
    """
    if not messages:
        return []
    senders = await _senders([message.from_number for message in messages], await linking_policy())
    now = clock.now()
    links: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    landed = []
    for message in messages:
        sender = senders[message.from_number]
        for case_id, reason in dict.fromkeys((choice.case_id, choice.reason) for choice in sender.choices):
            links.append((message.id, case_id, reason.value, None, now))
        case_ids = list(dict.fromkeys(choice.case_id for choice in sender.choices))
        author = note_author(message, sender.names, None) if case_ids else ""
        notes += [(case_id, message.id, author, message.body, message.created_at, now) for case_id in case_ids]
        landed.append(case_ids)
    await bulk.insert_rows("message_link", LINK_COLUMNS, links)
    await bulk.insert_rows("case_note", NOTE_COLUMNS, notes)
    return landed


# The columns the INSERTs of a new text's links and notes fill, with their PostgreSQL types (inbox.services.bulk).
LINK_COLUMNS = {
    "message_id": "int",
    "case_id": "int",
    "reason": "text",
    "linked_by_id": "int",
    "created_at": "timestamptz",
}
NOTE_COLUMNS = {
    "case_id": "int",
    "message_id": "int",
    "author": "text",
    "body": "text",
    "at": "timestamptz",
    "created_at": "timestamptz",
}


async def link_by_hand(message: Message, case: Case, staff: Staff) -> None:
    sender = await Staff.get_or_none(id=message.sent_by_id) if message.sent_by_id else None
    names = await flat_values(
        Client.filter(phones__number=message.from_number).distinct().values_list("name", flat=True)
    )
    await file_on_case(message, case.id, LinkReason.MANUAL, note_author(message, list(names), sender), by=staff)


async def unlink(message: Message, case_id: int, by: Staff | None = None) -> int:
    """Removes every link of the message to the case, and the case note they made. Each removed link is kept
    as a RemovedLink: the case file's transcript still shows it was filed there, and who took it off."""
    links = await MessageLink.filter(message=message, case_id=case_id)
    if not links:
        return 0
    now = clock.now()
    await RemovedLink.bulk_create(
        [
            RemovedLink(
                message_id=message.id,
                case_id=case_id,
                reason=link.reason,
                linked_by_id=link.linked_by_id,
                linked_at=link.created_at,
                removed_by=by,
                removed_at=now,
            )
            for link in links
        ]
    )
    removed = await MessageLink.filter(id__in=[link.id for link in links]).delete()
    await CaseNote.filter(message=message, case_id=case_id).delete()
    return removed


async def link_conversation_to_client(
    conversation: Conversation, client: Client, case: Case, staff: Staff
) -> list[int]:
    """An unmatched number joins a client's record; its past texts join the case. Answers the message ids.

    Refused, changing nothing, for a number already on any client record and for a sender that is no
    phone number. Inside the caller's unit of work, or a transaction of its own."""
    if case.client_id != client.id:
        require({"case_id": f"Case {case.number} is not {client.name}'s."})
    if not is_phone_number(conversation.phone):
        raise Refused(NOT_A_PHONE_NUMBER)
    async with in_transaction():
        # Checked inside the transaction that adds it: two links at once cannot both find it unmatched.
        if await ClientPhone.exists(number=conversation.phone):
            raise Refused(ALREADY_ON_A_RECORD)
        # Texting the number is not consent: okay-to-text stays off until someone records it.
        phone = await ClientPhone.create(
            client=client, number=conversation.phone, kind=PhoneKind.MOBILE, okay_to_text=False
        )
        visibility.forget()  # the number is now on a client's record: its readers change
        await consent.record_new_phone(
            phone, ConsentSource.STAFF, f"number added to the client's record by {staff.name}", staff
        )
        messages = await Message.filter(conversation=conversation).order_by("id").prefetch_related("sent_by")
        for message in messages:
            await link_by_hand(message, case, staff)
    return [m.id for m in messages]


async def case_ids_of(message_id: int) -> list[int]:
    rows = await flat_values(MessageLink.filter(message_id=message_id).order_by("id").values_list("case_id", flat=True))
    return list(dict.fromkeys(rows))


async def linked_message(message_id: int) -> Message:
    message = await Message.get_or_none(id=message_id)
    if message is None:
        raise NotFound("No message has this id.")
    return message


# ---------------------------------------------------------------- by hand, with events


async def _visible_message_and_case(staff: Staff, message_id: int, case_id: int) -> tuple[Message, Case]:
    message = await Message.get_or_none(id=message_id).prefetch_related("conversation")
    if message is None or not await visibility.can_see_conversation(staff, message.conversation):
        raise NotFound("No message has this id.")
    case = await Case.get_or_none(id=case_id)
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return message, case


async def add_link(bus: Bus, staff: Staff, message_id: int, case_id: int) -> Message:
    """Files a text on a case by hand (with its case note) and tells every open tab."""
    message, case = await _visible_message_and_case(staff, message_id, case_id)
    async with unit_of_work(bus) as uow:
        await link_by_hand(message, case, staff)
        await audit.record(audit.Action.LINK_CHANGED, staff, message, change="added", case_id=case.id)
        uow.publish(await _links_changed(message))
    return message


async def remove_link(bus: Bus, staff: Staff, message_id: int, case_id: int) -> Message:
    """Takes a text off a case (every rule that filed it there, and its note)."""
    message, _ = await _visible_message_and_case(staff, message_id, case_id)
    async with unit_of_work(bus) as uow:
        removed = await unlink(message, case_id, staff)
        if not removed:
            raise NotFound("This text is not filed on that case.")
        await audit.record(audit.Action.LINK_CHANGED, staff, message, change="removed", case_id=case_id)
        uow.publish(await _links_changed(message))
    return message


async def link_unmatched(bus: Bus, staff: Staff, conversation_id: int, case_number: str) -> Case:
    """An unmatched number joins the client of a case; its past texts are filed on that case."""
    conversation = await Conversation.get_or_none(id=conversation_id)
    if conversation is None or not await visibility.can_see_conversation(staff, conversation):
        raise NotFound("No conversation has this id.")
    number = (case_number or "").strip()
    errors: dict[str, str] = {}
    check_fits(errors, "case_number", number, Case, "number")  # Tortoise refuses to look up a longer one
    require(errors)
    case = await Case.get_or_none(number=number).prefetch_related("client")
    if case is None or not await visibility.can_see_case(staff, case):
        raise ValidationFailed(
            "Please correct the highlighted fields.",
            {"case_number": f"No case numbered “{case_number}” that you may see."},
        )
    async with unit_of_work(bus) as uow:
        for message_id in await link_conversation_to_client(conversation, case.client, case, staff):
            uow.publish(await _links_changed(await Message.get(id=message_id)))
        await audit.record(audit.Action.LINK_CHANGED, staff, conversation, change="number_added", case_id=case.id)
    return case


async def _links_changed(message: Message) -> MessageLinksChanged:
    return MessageLinksChanged(
        message_id=message.id, conversation_id=message.conversation_id, case_ids=await case_ids_of(message.id)
    )
