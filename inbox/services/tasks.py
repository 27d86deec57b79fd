"""Tasks: a title and a due time for one staff member, on a case or not. Their assignee gets reminders on
their own mobile (inbox.services.staff_reminders), which follow the task: moved with its due time,
cancelled when it is done.

Who may see a task: its assignee and whoever made it, everyone who may see its case, and supervisors and
admins. Anyone who may see a task may change it or mark it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import Subquery

from inbox import clock
from inbox.events import Bus
from inbox.models import Assignment, Case, Staff, Task
from inbox.services import staff_reminders, visibility
from inbox.services.case_events import visible_case
from inbox.services.errors import NotFound, require
from inbox.services.limits import check_fits
from inbox.services.unit_of_work import unit_of_work

TASK_RELATIONS = ("assignee", "case", "staff_reminders__message")


@dataclass(frozen=True)
class TaskInput:
    title: str
    due_at: datetime
    assignee_id: int | None = None  # None: the person adding it
    notes: str = ""


@dataclass(frozen=True)
class TaskChange:
    """A PATCH: None leaves a field as it is."""

    title: str | None = None
    due_at: datetime | None = None
    assignee_id: int | None = None
    notes: str | None = None
    done: bool | None = None


@dataclass(frozen=True)
class ShownTask:
    """A task as pages list it: its reminders with their status words."""

    task: Task
    reminders: list[staff_reminders.ShownStaffReminder]

    @property
    def done(self) -> bool:
        return self.task.done_at is not None


def shown(task: Task) -> ShownTask:
    """`task.staff_reminders__message` must be fetched."""
    return ShownTask(task, staff_reminders.shown(list(task.staff_reminders)))


async def _check(title: str, due_at: datetime, assignee_id: int, notes: str, case: Case | None) -> Staff:
    """The assignee of a task on a case must be able to see the case: its title and number are texted to them."""
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the task a title."
    check_fits(errors, "title", title.strip(), Task)
    if due_at.tzinfo is None:
        errors["due_at"] = "Give the due time with its offset or zone."
    if len(notes) > 5000:
        errors["notes"] = "Keep the notes under 5,000 characters."
    assignee = await Staff.get_or_none(id=assignee_id, is_active=True)
    if assignee is None:
        errors["assignee_id"] = "Choose an active staff member to do it."
    elif case is not None and not await visibility.can_see_case(assignee, case):
        errors["assignee_id"] = f"{assignee.name} is not on this case: choose someone assigned to it."
    require(errors)
    assert assignee is not None
    return assignee


async def may_see(staff: Staff, task: Task) -> bool:
    if staff.sees_everything or staff.id in (task.assignee_id, task.created_by_id):
        return True
    case = await Case.get_or_none(id=task.case_id) if task.case_id is not None else None
    return case is not None and await visibility.can_see_case(staff, case)


async def get_task(staff: Staff, task_id: int) -> Task:
    task = await Task.get_or_none(id=task_id).prefetch_related(*TASK_RELATIONS)
    if task is None or not await may_see(staff, task):
        raise NotFound("No task has this id.")
    return task


async def tasks_of_case(staff: Staff, case_id: int) -> list[Task]:
    """A case's tasks: open ones by due time, then done ones."""
    case = await visible_case(staff, case_id)
    rows = await Task.filter(case_id=case.id).order_by("due_at", "id").prefetch_related(*TASK_RELATIONS)
    return sorted(rows, key=lambda t: t.done_at is not None)


async def my_tasks(staff: Staff, include_done: bool = False) -> list[Task]:
    """The tasks someone is to do, soonest first."""
    query = Task.filter(assignee_id=staff.id)
    if not include_done:
        query = query.filter(done_at=None)
    return await query.order_by("due_at", "id").prefetch_related(*TASK_RELATIONS)


async def assignee_choices(staff: Staff, case: Case | None) -> list[Staff]:
    """Who a task can be for: the person adding it and the case's current assignees."""
    people = {staff.id: staff}
    if case is not None:
        current = Assignment.filter(visibility.current_assignments(), case_id=case.id).values("staff_id")
        for person in await Staff.filter(id__in=Subquery(current), is_active=True).order_by("name"):
            people.setdefault(person.id, person)
    return list(people.values())


async def create_task(
    bus: Bus, staff: Staff, case_id: int | None, data: TaskInput, now: datetime | None = None
) -> Task:
    case = await visible_case(staff, case_id) if case_id is not None else None
    assignee = await _check(data.title, data.due_at, data.assignee_id or staff.id, data.notes, case)
    async with unit_of_work(bus):
        task = await Task.create(
            title=data.title.strip(),
            due_at=data.due_at.astimezone(UTC),
            case=case,
            assignee=assignee,
            notes=data.notes,
            created_by=staff,
        )
        await staff_reminders.sync_task(task, now or clock.now())
    return await get_task(staff, task.id)


async def update_task(bus: Bus, staff: Staff, task_id: int, change: TaskChange, now: datetime | None = None) -> Task:
    """New details move the pending reminders; done cancels them (and undone brings back those still ahead)."""
    task = await get_task(staff, task_id)
    now = now or clock.now()
    title = change.title if change.title is not None else task.title
    due_at = change.due_at if change.due_at is not None else task.due_at
    notes = change.notes if change.notes is not None else task.notes
    assignee = await _check(title, due_at, change.assignee_id or task.assignee_id, notes, task.case)
    async with unit_of_work(bus):
        task.title, task.due_at, task.notes, task.assignee = title.strip(), due_at.astimezone(UTC), notes, assignee
        if change.done is not None:
            task.done_at = (task.done_at or now) if change.done else None
        await task.save(update_fields=["title", "due_at", "notes", "assignee_id", "done_at"])
        await staff_reminders.sync_task(task, now)
    return await get_task(staff, task.id)


async def mark_done(bus: Bus, staff: Staff, task_id: int, now: datetime | None = None) -> Task:
    return await update_task(bus, staff, task_id, TaskChange(done=True), now)
