"""Who may see what. Advocates see clients on cases they are currently assigned to, and the conversation
of their own mobile (their task and calendar reminders); supervisors and admins see everything, unmatched
conversations included.

Every page, API answer and live event asks these functions, so the rule lives in one place.

One answer per request: a page asks who its reader may see from the inbox list, the thread, consent and
alerts alike (3–7 times), so inside `one_answer_per_request()` (the app's middleware opens it for each
request, until the answer starts) each reader's answers are kept and reused. Outside one — a stream's
events, the worker, tests calling services — every question is asked afresh. A write that changes who sees
what (an assignment, a client's number) calls `forget()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import wraps
from typing import TypeVar

from tortoise.expressions import Q, Subquery

from inbox.models import Assignment, Case, ClientPhone, Conversation, Role, Staff, flat_values

T = TypeVar("T")


@dataclass
class _Answers:
    kept: dict[tuple[str, int, str | None], object]
    open: bool = True  # a flag, not the variable: a task started inside the request sees it close too


_answers: ContextVar[_Answers | None] = ContextVar("visibility_answers", default=None)


@contextmanager
def one_answer_per_request() -> Iterator[Callable[[], None]]:
    """Keeps each reader's answers until the block ends or the function it gives is called."""
    answers = _Answers({})
    token = _answers.set(answers)

    def stop() -> None:
        # A streaming answer's body runs after the answer has started: from then on it asks afresh.
        answers.open = False
        answers.kept.clear()

    try:
        yield stop
    finally:
        stop()
        _answers.reset(token)


def forget() -> None:
    """Who sees what has changed: the answers kept for this request are asked again."""
    answers = _answers.get()
    if answers is not None:
        answers.kept.clear()


def _kept(ask: Callable[[Staff], Awaitable[T]]) -> Callable[[Staff], Awaitable[T]]:
    """The reader's answer to `ask`, kept for the request (a copy each time: callers may change theirs)."""

    @wraps(ask)
    async def kept(staff: Staff) -> T:
        answers = _answers.get()
        if answers is None or not answers.open:
            return await ask(staff)
        key = (ask.__name__, staff.id, staff.mobile)
        if key not in answers.kept:
            answers.kept[key] = await ask(staff)
        answer = answers.kept[key]
        return answer.copy() if isinstance(answer, (list, set)) else answer  # type: ignore[return-value]

    return kept


async def kept_for_request(key: str, ask: Callable[[], Awaitable[T]]) -> T:
    """`ask()`'s answer, asked once per request under `key` (the same holder and lifetime as the readers'
    answers): for what a page reads many times and no reader changes, such as the organisation's settings.
    Outside a request, asked every time."""
    answers = _answers.get()
    if answers is None or not answers.open:
        return await ask()
    slot = (key, 0, None)
    if slot not in answers.kept:
        answers.kept[slot] = await ask()
    return answers.kept[slot]  # type: ignore[return-value]


def current_assignments(today: date | None = None) -> Q:
    """Current = no end date, or an end date in the future."""
    today = today or date.today()
    return Q(end=None) | Q(end__gt=today)


@_kept
async def assigned_case_ids(staff: Staff) -> list[int]:
    rows = await flat_values(
        Assignment.filter(current_assignments(), staff_id=staff.id).values_list("case_id", flat=True)
    )
    return list(rows)


@_kept
async def assigned_client_ids(staff: Staff) -> list[int]:
    rows = await flat_values(
        Assignment.filter(current_assignments(), staff_id=staff.id).values_list("case__client_id", flat=True)
    )
    return list(set(rows))


@_kept
async def assigned_phone_numbers(staff: Staff) -> list[str]:
    """Numbers of clients on the staff member's current cases (their "mine")."""
    client_ids = await assigned_client_ids(staff)
    if not client_ids:
        return []
    rows = await flat_values(ClientPhone.filter(client_id__in=client_ids).values_list("number", flat=True))
    return list(set(rows))


@_kept
async def visible_phone_numbers(staff: Staff) -> list[str] | None:
    """None means every number, unmatched ones included. An advocate's own mobile is theirs to see: the
    reminders texted to it (never another staff member's)."""
    if staff.sees_everything:
        return None
    numbers = await assigned_phone_numbers(staff)
    return [*numbers, staff.mobile] if staff.mobile and staff.mobile not in numbers else numbers


@_kept
async def visible_case_ids(staff: Staff) -> set[int] | None:
    """Cases the reader may see (every case of their clients); None means every case."""
    if staff.sees_everything:
        return None
    client_ids = await assigned_client_ids(staff)
    return (
        set(await flat_values(Case.filter(client_id__in=client_ids).values_list("id", flat=True)))
        if client_ids
        else set()
    )


async def can_see_client(staff: Staff, client_id: int) -> bool:
    return staff.sees_everything or client_id in await assigned_client_ids(staff)


async def can_see_case(staff: Staff, case: Case) -> bool:
    return staff.sees_everything or await can_see_client(staff, case.client_id)


async def can_see_conversation(staff: Staff, conversation: Conversation) -> bool:
    if staff.sees_everything or (staff.mobile and conversation.phone == staff.mobile):
        return True
    return conversation.phone in await assigned_phone_numbers(staff)


async def advocates_who_see_phone(phone: str) -> set[int]:
    """Ids of advocates currently assigned to a case of a client with this number (one query)."""
    client_ids = ClientPhone.filter(number=phone).values("client_id")
    case_ids = Case.filter(client_id__in=Subquery(client_ids)).values("id")
    rows = await flat_values(
        Assignment.filter(current_assignments(), case_id__in=Subquery(case_ids), staff__role=Role.ADVOCATE).values_list(
            "staff_id", flat=True
        )
    )
    return set(rows)


@dataclass(frozen=True)
class AssignedReader:
    """Someone currently assigned to a case of a client with a given number."""

    role: str
    client_ids: frozenset[int]


async def staff_assigned_to_phone(phone: str) -> dict[int, AssignedReader]:
    """Staff (any role) currently assigned to a case of a client with this number (one query)."""
    client_ids = ClientPhone.filter(number=phone).values("client_id")
    case_ids = Case.filter(client_id__in=Subquery(client_ids)).values("id")
    rows = await Assignment.filter(current_assignments(), case_id__in=Subquery(case_ids)).values_list(
        "staff_id", "staff__role", "case__client_id"
    )
    clients: dict[int, set[int]] = {}
    roles: dict[int, str] = {}
    for staff_id, role, client_id in rows:
        roles[staff_id] = role
        clients.setdefault(staff_id, set()).add(client_id)
    return {staff_id: AssignedReader(roles[staff_id], frozenset(ids)) for staff_id, ids in clients.items()}


async def staff_who_see_client(client_id: int) -> set[int]:
    """Ids of staff currently assigned to a case of this client: besides supervisors and admins, the only
    ones who may see the client's cases (`can_see_case`), in one query."""
    case_ids = Case.filter(client_id=client_id).values("id")
    rows = await flat_values(
        Assignment.filter(current_assignments(), case_id__in=Subquery(case_ids)).values_list("staff_id", flat=True)
    )
    return set(rows)
