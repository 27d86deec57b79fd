"""Alerts: an inbound text on a case raises one for its assignees; one dismissal clears it for all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise import Tortoise
from tortoise.expressions import Q
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
    Direction,
    Message,
    Office,
    Organisation,
    Staff,
    flat_values,
)
from inbox.services import bulk, search, settings_cache, visibility
from inbox.services.errors import NotFound
from inbox.services.unit_of_work import current_unit, unit_of_work


async def alert_policy() -> AlertPolicy:
    return (await settings_cache.policies()).alerts


async def raise_alerts(message: Message, case_ids: Sequence[int]) -> None:
    """An alert per case the text landed on, inside the inbound unit of work (announced on commit). The text
    is new (stored in this unit of work): no alert can have counted it yet."""
    await raise_alerts_many([(message, case_ids)])


async def raise_alerts_many(items: Sequence[tuple[Message, Sequence[int]]]) -> None:
    """raise_alerts(message, case_ids) for each, in order, inside the caller's unit of work."""
    await _raise([(message, case_id) for message, case_ids in items for case_id in case_ids], await alert_policy())


async def raise_alert(message: Message, case_id: int, policy: AlertPolicy, *, new_text: bool = False) -> bool:
    """The client's text waits on the case: counted on the open alert of its conversation and case (which
    moves to it), or a new alert addressed to the case's assignees. False when it was counted before.

    Our own text (an unconfirmed hearing's reminder, inbox.services.confirmations) always has its own alert.
    """
    if not new_text and await Alert.exists(case_id=case_id, message_id=message.id):
        return False
    await _raise([(message, case_id)], policy)
    return True


@dataclass
class _Tally:
    """The texts of one batch that wait on one alert: the open alert they are counted on (`alert_id`), or the
    one they raise (None until inserted; its first text's message then never shows: it moves to the latest)."""

    case_id: int
    alert_id: int | None
    texts: int
    latest: int  # the batch's latest text on it


async def _raise(texts: list[tuple[Message, int]], policy: AlertPolicy) -> None:
    """raise_alert(message, case_id, policy, new_text=True) for each pair, in order, in a fixed number of
    statements: the batch is first tallied per alert (texts of one conversation and case count on its open alert,
    or on the alert the first of them raises), then written at once. One AlertRaised per alert touched."""
    if not texts:
        return
    inbound = [(message, case_id) for message, case_id in texts if message.direction == Direction.INBOUND]
    await _lock_conversations({message.conversation_id for message, _ in inbound})
    open_alerts, addressed = await _open_alerts(inbound)
    tallies: list[_Tally] = []
    by_key: dict[tuple[int, int], _Tally] = {}
    for message, case_id in texts:
        key = (case_id, message.conversation_id)
        tally = by_key.get(key) if message.direction == Direction.INBOUND else None
        if tally is None:
            tally = _Tally(case_id, open_alerts.get(key) if message.direction == Direction.INBOUND else None, 0, 0)
            tallies.append(tally)
            if message.direction == Direction.INBOUND:
                by_key[key] = tally
        tally.texts += 1
        tally.latest = max(tally.latest, message.id)
    counted = await _count_on_open_alerts([tally for tally in tallies if tally.alert_id is not None])
    for tally in tallies:
        if tally.alert_id is not None and tally.alert_id not in counted:
            tally.alert_id = None  # dismissed since it was read: the texts raise a new one (as one text would)
    raised = await _insert_alerts([tally for tally in tallies if tally.alert_id is None])
    staff = await _assignees_by_case({tally.case_id for tally in tallies}, policy)
    rows = []
    for tally in tallies:
        alert_id = tally.alert_id if tally.alert_id is not None else raised[tally.case_id, tally.latest]
        mine = addressed.get(alert_id, set()) if tally.alert_id is not None else set()
        rows += [(alert_id, staff_id) for staff_id in staff.get(tally.case_id, []) if staff_id not in mine]
        count, latest = counted.get(alert_id, (tally.texts, tally.latest))
        current_unit().publish(AlertRaised(alert_id=alert_id, case_id=tally.case_id, message_id=latest, count=count))
    await bulk.insert_rows("alert_assignee", {"alert_id": "int", "staff_id": "int"}, rows)


async def _lock_conversations(conversation_ids: set[int]) -> None:
    """Texts arriving at once must make one alert of two: on PostgreSQL the conversations' rows are locked for
    the rest of the unit of work, so a text from another process waits here until ours have committed their
    alert (READ COMMITTED: the queries after the lock see it). One statement, in id order: two batches lock
    shared conversations in the same order, never each holding what the other waits for.

    FOR NO KEY UPDATE, the strength an UPDATE of the row takes: a plain FOR UPDATE also waits for the key-share
    lock the other text's INSERT of its message holds on the row, while that text waits for ours — a deadlock
    (tests/test_alert_counts.py found it). SQLite has one writer: Tortoise runs a process's transactions one at
    a time on its one connection, and a text's unit of work begins with a write (inbound.record_inbound), so a
    web process and a worker processing texts at once take the writer in turn for the whole unit.
    """
    if not conversation_ids or bulk.db().capabilities.dialect != "postgres":
        return
    statement = "SELECT id FROM conversation WHERE id = ANY($1::int[]) ORDER BY id FOR NO KEY UPDATE"
    await bulk.db().execute_query(statement, [sorted(conversation_ids)])


async def _open_alerts(texts: list[tuple[Message, int]]) -> tuple[dict[tuple[int, int], int], dict[int, set[int]]]:
    """The open alert of each (case id, conversation id) the texts are on — the oldest, should there be two —
    and whom each is addressed to already (two queries, or none)."""
    if not texts:
        return {}, {}
    keys = {(case_id, message.conversation_id) for message, case_id in texts}
    rows = (
        await Alert.filter(
            case_id__in=sorted({case_id for case_id, _ in keys}),
            message__conversation_id__in=sorted({conversation_id for _, conversation_id in keys}),
            dismissed_at=None,
            message__direction=Direction.INBOUND,
        )
        .order_by("id")
        .values_list("id", "case_id", "message__conversation_id")
    )
    found: dict[tuple[int, int], int] = {}
    for alert_id, case_id, conversation_id in rows:
        if (case_id, conversation_id) in keys:
            found.setdefault((case_id, conversation_id), alert_id)
    if not found:
        return {}, {}
    addressed: dict[int, set[int]] = {}
    for alert_id, staff_id in await AlertAssignee.filter(alert_id__in=sorted(found.values())).values_list(
        "alert_id", "staff_id"
    ):
        addressed.setdefault(alert_id, set()).add(staff_id)
    return found, addressed


async def _count_on_open_alerts(tallies: list[_Tally]) -> dict[int, tuple[int, int]]:
    """Counts each tally's texts on its open alert, which moves to the latest text; answers (how many now wait,
    the latest text) per alert counted on (one UPDATE). Conditional: a dismissal committed meanwhile leaves its
    alert alone (the texts then raise a new one). Texts racing in may take the lock out of order: the alert
    shows the latest, whichever came last."""
    if not tallies:
        return {}
    rows = await _returning(
        "WITH v (id, texts, latest) AS ({rows}) UPDATE alert SET text_count = alert.text_count + v.texts,"
        " message_id = {larger}(alert.message_id, v.latest) FROM v WHERE alert.id = v.id AND alert.dismissed_at IS NULL"
        " RETURNING alert.id, alert.text_count, alert.message_id",
        [
            ("int", [t.alert_id for t in tallies]),
            ("int", [t.texts for t in tallies]),
            ("int", [t.latest for t in tallies]),
        ],
    )
    return {int(row["id"]): (int(row["text_count"]), int(row["message_id"])) for row in rows}


async def _insert_alerts(tallies: list[_Tally]) -> dict[tuple[int, int], int]:
    """New alerts, each at its latest text and counting its texts (one INSERT); their ids by (case id, text id)."""
    if not tallies:
        return {}
    now = clock.now()
    rows = await _returning(
        "INSERT INTO alert (case_id, message_id, created_at, text_count) {rows} RETURNING id, case_id, message_id",
        [
            ("int", [t.case_id for t in tallies]),
            ("int", [t.latest for t in tallies]),
            ("timestamptz", [now] * len(tallies)),
            ("int", [t.texts for t in tallies]),
        ],
    )
    return {(int(row["case_id"]), int(row["message_id"])): int(row["id"]) for row in rows}


async def _returning(template: str, columns: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """A statement over rows given as columns (each with its PostgreSQL type), answering what it returns.
    `{rows}` in `template` becomes a query of those rows: on PostgreSQL a SELECT from an `unnest` of one array per
    column (one statement text whatever the count: asyncpg's prepared statement is reused), on SQLite a VALUES
    list. `{larger}`: the function that answers the larger of two values."""
    if bulk.db().capabilities.dialect == "postgres":
        arrays = ", ".join(f"${n}::{kind}[]" for n, (kind, _) in enumerate(columns, start=1))
        statement = template.format(rows=f"SELECT * FROM unnest({arrays})", larger="GREATEST")
        return await bulk.db().execute_query_dict(statement, [values for _, values in columns])
    rows = list(zip(*(values for _, values in columns), strict=True))
    one = "(" + ", ".join("?" for _ in columns) + ")"
    statement = template.format(rows="VALUES " + ", ".join([one] * len(rows)), larger="max")
    return await bulk.db().execute_query_dict(statement, [value for row in rows for value in row])


async def _assignees_by_case(case_ids: set[int], policy: AlertPolicy) -> dict[int, list[int]]:
    """Whom the policy addresses on each case: its current assignees (no end date, or one in the future), the
    primary ones or all of them, in the order they were assigned (one query)."""
    query = Assignment.filter(visibility.current_assignments(), case_id__in=sorted(case_ids))
    if policy == AlertPolicy.PRIMARY:
        query = query.filter(primary=True)
    staff: dict[int, list[int]] = {}
    for case_id, staff_id in await query.order_by("id").values_list("case_id", "staff_id"):
        if staff_id not in staff.setdefault(case_id, []):
            staff[case_id].append(staff_id)
    return staff


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
