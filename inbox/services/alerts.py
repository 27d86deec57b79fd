"""Alerts: an inbound text on a case raises one for its assignees; one dismissal clears it for all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tortoise import Tortoise
from tortoise.expressions import Case as SqlCase
from tortoise.expressions import F, Q, Subquery, When
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from inbox import clock
from inbox.events import AlertDismissed, AlertRaised, Bus
from inbox.models import (
    Alert,
    AlertAssignee,
    AlertPolicy,
    Assignment,
    Case,
    Conversation,
    Direction,
    Message,
    Office,
    Organisation,
    Staff,
    flat_values,
)
from inbox.services import search, settings_cache, visibility
from inbox.services.errors import NotFound
from inbox.services.unit_of_work import current_unit, unit_of_work


async def alert_policy() -> AlertPolicy:
    return (await settings_cache.policies()).alerts


async def assignees_for(case_id: int, policy: AlertPolicy, not_on_alert: int | None = None) -> list[int]:
    """Current assignees (no end date, or one in the future): the primary ones, or all of them; with
    `not_on_alert`, only those that alert is not addressed to yet (one query, not two: the inbound hot path)."""
    query = Assignment.filter(visibility.current_assignments(), case_id=case_id)
    if not_on_alert is not None:
        query = query.exclude(staff_id__in=Subquery(AlertAssignee.filter(alert_id=not_on_alert).values("staff_id")))
    if policy == AlertPolicy.PRIMARY:
        query = query.filter(primary=True)
    return list(dict.fromkeys(await flat_values(query.order_by("id").values_list("staff_id", flat=True))))


async def raise_alerts(message: Message, case_ids: list[int]) -> None:
    """An alert per case the text landed on, inside the inbound unit of work (announced on commit). The text
    is new (stored in this unit of work): no alert can have counted it yet."""
    policy = await alert_policy()
    for case_id in case_ids:
        await raise_alert(message, case_id, policy, new_text=True)


async def raise_alert(message: Message, case_id: int, policy: AlertPolicy, *, new_text: bool = False) -> bool:
    """The client's text waits on the case: counted on the open alert of its conversation and case (which
    moves to it), or a new alert addressed to the case's assignees. False when it was counted before.

    Our own text (an unconfirmed hearing's reminder, inbox.services.confirmations) always has its own alert.
    """
    if not new_text and await Alert.exists(case_id=case_id, message_id=message.id):
        return False
    if message.direction == Direction.INBOUND:
        waiting = await _count_on_open_alert(message, case_id, policy)
        if waiting is not None:
            return True
    alert = await Alert.create(case_id=case_id, message=message)
    for staff_id in await assignees_for(case_id, policy):
        await AlertAssignee.create(alert=alert, staff_id=staff_id)
    current_unit().publish(AlertRaised(alert_id=alert.id, case_id=case_id, message_id=message.id, count=1))
    return True


async def _count_on_open_alert(message: Message, case_id: int, policy: AlertPolicy) -> int | None:
    """Counts the text on its conversation's open alert on the case; how many now wait, None without one.
    Whom the policy addresses now and the alert did not yet is added (a new assignee, a policy changed).

    Two texts arriving at once must make one alert of two: on PostgreSQL the conversation's row is locked
    for the rest of the unit of work, so the second text waits here until the first has committed its alert
    (READ COMMITTED: the queries after the lock see it). FOR NO KEY UPDATE, the strength an UPDATE of the row
    takes: a plain FOR UPDATE also waits for the key-share lock the other text's INSERT of its message holds
    on the row, while that text waits for ours — a deadlock (tests/test_alert_counts.py found it). SQLite has
    one writer: Tortoise runs a process's transactions one at a time on its one connection, and a text's unit
    of work begins with a write (inbound.record_inbound), so a web process and a worker processing texts at
    once take the writer in turn for the whole unit.
    """
    if Alert._meta.db.capabilities.dialect == "postgres":
        await Conversation.select_for_update(no_key=True).filter(id=message.conversation_id).first()
    open_alert = (
        await Alert.filter(
            case_id=case_id,
            dismissed_at=None,
            message__conversation_id=message.conversation_id,
            message__direction=Direction.INBOUND,
        )
        .order_by("id")
        .first()
    )
    if open_alert is None:
        return None
    # Conditional: a dismissal committed meanwhile leaves it alone (the text then raises a new one). Texts
    # racing in may take the lock out of order: the alert shows the latest, whichever came last.
    # (Tortoise 1.1 annotates `then` narrower than it is: a plain value is wrapped as a constant.)
    later = When(message_id__lt=message.id, then=message.id)  # type: ignore[arg-type]
    latest_first = SqlCase(later, default=F("message_id"))
    changed = await Alert.filter(id=open_alert.id, dismissed_at=None).update(
        text_count=F("text_count") + 1, message_id=latest_first
    )
    if not changed:
        return None
    for staff_id in await assignees_for(case_id, policy, not_on_alert=open_alert.id):
        await AlertAssignee.create(alert_id=open_alert.id, staff_id=staff_id)
    latest = max(open_alert.message_id, message.id)
    waiting = open_alert.text_count + 1
    current_unit().publish(AlertRaised(alert_id=open_alert.id, case_id=case_id, message_id=latest, count=waiting))
    return waiting


def open_alerts_for(staff: Staff) -> Q:
    """The alerts a person is shown: addressed to them — or, for supervisors and admins, all open ones."""
    if staff.sees_everything:
        return Q(dismissed_at=None)
    return Q(dismissed_at=None, assignees__staff_id=staff.id)


async def _open_alerts_query(staff: Staff) -> QuerySet[Alert]:
    """Open alerts addressed to the person, on cases they may still see (an ended assignment hides them)."""
    query = Alert.filter(open_alerts_for(staff)).distinct()
    visible = await visibility.visible_case_ids(staff)
    if visible is not None:
        query = query.filter(case_id__in=list(visible))
    return query


async def alerts_for(
    staff: Staff, limit: int = 200, before: int | None = None, newest_first: bool = False
) -> list[Alert]:
    """Oldest first (the dashboard's order), or newest first (the API's); `before` pages by id."""
    query = await _open_alerts_query(staff)
    if before:
        query = query.filter(id__lt=before)
    order = ("-id",) if newest_first else ("created_at", "id")
    return (
        await query.order_by(*order)
        .limit(limit)
        .prefetch_related("case__office", "case__client", "message", "assignees__staff")
    )


async def open_alert_count(staff: Staff) -> int:
    return await (await _open_alerts_query(staff)).count()


async def visible_alert(staff: Staff, alert_id: int) -> Alert:
    alert = await Alert.get_or_none(id=alert_id).prefetch_related("case", "assignees")
    # Whoever may see the case may see (and dismiss) its alerts; being addressed once is not enough
    # after the assignment has ended.
    if alert is None or not await visibility.can_see_case(staff, alert.case):
        raise NotFound("No alert has this id.")
    return alert


async def dismiss(bus: Bus, staff: Staff, alert_id: int) -> Alert:
    """Dismissed for everyone at once (LegalServer's rule). Dismissing twice is harmless."""
    alert = await visible_alert(staff, alert_id)
    async with unit_of_work(bus) as uow:
        changed = await Alert.filter(id=alert.id, dismissed_at=None).update(
            dismissed_at=clock.now(), dismissed_by_id=staff.id, dismissed_because="dismissed"
        )
        if changed:
            uow.publish(AlertDismissed(alert_id=alert.id, case_id=alert.case_id, message_id=alert.message_id))
    await alert.refresh_from_db()
    return alert


async def dismiss_on_reply(conversation_id: int, staff: Staff) -> None:
    """Answering the client clears the alerts of the texts they sent in this conversation (a setting, on
    unless an admin turns it off), inside the sending unit of work."""
    organisation = await Organisation.first()
    if not (organisation and organisation.dismiss_alerts_on_reply):
        return
    alerts = await Alert.filter(dismissed_at=None, message__conversation_id=conversation_id)
    for alert in alerts:
        changed = await Alert.filter(id=alert.id, dismissed_at=None).update(
            dismissed_at=clock.now(), dismissed_by_id=staff.id, dismissed_because="replied"
        )
        if changed:
            current_unit().publish(
                AlertDismissed(alert_id=alert.id, case_id=alert.case_id, message_id=alert.message_id)
            )


async def case_of(alert: Alert) -> Case:
    return await Case.get(id=alert.case_id)


# ---------------------------------------------------------------- live counts and the supervisors' dashboard

# What an alert row shows: client, case, office, the text, whom it is addressed to.
ALERT_VIEW_RELATIONS = ("case__office", "case__client", "message", "assignees__staff")


async def alert_with_view(alert_id: int) -> Alert | None:
    """One alert, open or not, with what its row shows and whom it is addressed to."""
    return await Alert.get_or_none(id=alert_id).prefetch_related(*ALERT_VIEW_RELATIONS)


async def addressees_who_see(alert: Alert) -> set[int]:
    """Whom the alert is addressed to, less anyone no longer on a case of its client (one query)."""
    addressed = [assignee.staff_id for assignee in alert.assignees]
    if not addressed:
        return set()
    current = Assignment.filter(
        visibility.current_assignments(), staff_id__in=addressed, case__client_id=alert.case.client_id
    )
    return set(await flat_values(current.values_list("staff_id", flat=True)))


async def open_alert_counts(addressed: Iterable[int], everything: bool) -> tuple[dict[int, int], int | None]:
    """open_alert_count for many readers at once, in a fixed number of queries however many there are.

    For each of `addressed`: the open alerts addressed to them on cases they may still see (one query
    for the alerts, one for their current assignments). With `everything`: how many alerts are open
    at all, which is every supervisor's and admin's count.
    """
    staff_ids = sorted(set(addressed))
    counts = dict.fromkeys(staff_ids, 0)
    if staff_ids:
        waiting = await AlertAssignee.filter(alert__dismissed_at=None, staff_id__in=staff_ids).values_list(
            "staff_id", "alert__case__client_id"
        )
        current = await Assignment.filter(visibility.current_assignments(), staff_id__in=staff_ids).values_list(
            "staff_id", "case__client_id"
        )
        clients: dict[int, set[int]] = {}
        for staff_id, client_id in current:
            clients.setdefault(staff_id, set()).add(client_id)
        for staff_id, client_id in waiting:
            if client_id in clients.get(staff_id, ()):
                counts[staff_id] += 1
    total = await Alert.filter(dismissed_at=None).count() if everything else None
    return counts, total


NO_OFFICE = "none"
UNASSIGNED = "unassigned"


def office_key(office_id: int | None) -> str:
    return NO_OFFICE if office_id is None else str(office_id)


@dataclass(frozen=True)
class AssigneeGroup:
    """Open alerts addressed to the same people (or to no one), oldest first."""

    key: str  # UNASSIGNED, or the staff ids joined by "-"
    label: str
    alerts: list[Alert]


@dataclass(frozen=True)
class OfficeAlerts:
    """One page of an office's open alerts, grouped by assignee; the group with the oldest alert first."""

    key: str  # the office id, or NO_OFFICE for cases without one
    name: str
    groups: list[AssigneeGroup]
    total: int = 0  # the office's open alerts, on this page and after it
    more_after: int | None = None  # the last alert shown, when newer ones follow (the next page's key)
    after: int | None = None  # the alert this page follows (None: the first page)

    @property
    def count(self) -> int:
        return max(self.total, sum(len(group.alerts) for group in self.groups))


DASHBOARD_PAGE = 50  # alerts per office and page: a busy office's section stays a page, not megabytes


async def dashboard(office: str | None = None, after: int | None = None) -> list[OfficeAlerts]:
    """Open alerts by the case's office and then by assignee, oldest unanswered first, DASHBOARD_PAGE per
    office: a fixed number of queries, however many alerts are open.

    Every office has a section, with or without alerts, so a live update always has a place to
    land; `office` (an office key) limits the answer to that one section, and `after` (an alert id, with
    `office`) gives the page of that office's alerts that follows it.
    """
    offices = [(office_key(o.id), o.name) for o in await Office.all().order_by("name", "id")]
    offices.append((NO_OFFICE, "No office"))
    if office is not None:
        offices = [(key, name) for key, name in offices if key == office]
    if not offices:
        return []
    totals = await _open_by_office(office)
    page_ids = await _dashboard_page_ids(office, after)
    found = await Alert.filter(id__in=page_ids).order_by("created_at", "id").prefetch_related(*ALERT_VIEW_RELATIONS)
    by_office: dict[str, dict[str, AssigneeGroup]] = {key: {} for key, _ in offices}
    shown: dict[str, list[Alert]] = {key: [] for key, _ in offices}
    for alert in found:
        key_ = office_key(alert.case.office_id)
        if key_ not in shown:  # an office created after the list of offices was read
            continue
        shown[key_].append(alert)
    sections = []
    for key, name in offices:
        page = shown[key][:DASHBOARD_PAGE]
        groups = by_office[key]
        for alert in page:
            people = sorted((a.staff for a in alert.assignees), key=lambda s: (s.name.casefold(), s.id))
            group_key = "-".join(str(s.id) for s in sorted(people, key=lambda s: s.id)) or UNASSIGNED
            label = ", ".join(s.name for s in people) or "Unassigned"
            groups.setdefault(group_key, AssigneeGroup(group_key, label, [])).alerts.append(alert)
        more = page[-1].id if len(shown[key]) > DASHBOARD_PAGE else None
        sections.append(OfficeAlerts(key, name, list(groups.values()), totals.get(key, 0), more, after))
    return sections


async def _open_by_office(office: str | None) -> dict[str, int]:
    """How many alerts are open in each office (one COUNT … GROUP BY)."""
    query = Alert.filter(dismissed_at=None)
    if office is not None:
        query = _in_office(query, office)
    rows = await query.annotate(open=Count("id")).group_by("case__office_id").values_list("case__office_id", "open")
    return {office_key(office_id): int(count) for office_id, count in rows}


def _in_office(query: QuerySet[Alert], office: str) -> QuerySet[Alert]:
    if office == NO_OFFICE:
        return query.filter(case__office_id__isnull=True)
    return query.filter(case__office_id=int(office))


async def _dashboard_page_ids(office: str | None, after: int | None) -> list[int]:
    """The ids of each office's next DASHBOARD_PAGE + 1 open alerts, oldest first (one query: a window over
    the open alerts, in the order of idx_alert_open_by_age); + 1 tells whether another page follows."""
    connection = Tortoise.get_connection("default")
    params = search._Params(connection.capabilities.dialect)
    mark, where = "", ["a.dismissed_at IS NULL"]
    if after is not None:  # those after the alert the previous page ended with (dismissed since or not)
        mark = f" JOIN alert m ON m.id = {params.add(after)}"  # its placeholder first: SQLite's are positional
        where.append("(a.created_at > m.created_at OR (a.created_at = m.created_at AND a.id > m.id))")
    if office == NO_OFFICE:
        where.append("c.office_id IS NULL")
    elif office is not None:
        where.append(f"c.office_id = {params.add(int(office))}")
    sql = (
        "SELECT id FROM (SELECT a.id AS id, ROW_NUMBER() OVER"
        " (PARTITION BY c.office_id ORDER BY a.created_at, a.id) AS place"
        f' FROM alert a JOIN "case" c ON c.id = a.case_id{mark} WHERE {" AND ".join(where)}) AS paged'
        f" WHERE place <= {params.add(DASHBOARD_PAGE + 1)}"
    )
    return [int(row["id"]) for row in await connection.execute_query_dict(sql, params.values)]


async def raise_alerts_many(items: Sequence[tuple[Message, Sequence[int]]]) -> None:
    for message, case_ids in items:  # placeholder: branch filing's bulk version replaces it
        await raise_alerts(message, list(case_ids))
