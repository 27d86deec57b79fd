"""Tasks on the case page and "My tasks": add one, mark it done. The reminders texted to the assignee's own
mobile are inbox.services.staff_reminders'."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Case, Staff
from inbox.routes.auth import safe_next
from inbox.services import case_events, quiet_hours, tasks
from inbox.services import queue as sms_queue
from inbox.services.errors import ServiceError, ValidationFailed
from inbox.services.tasks import TaskInput
from inbox.web import checked_form, render, require_staff

FIELDS = ("title", "due_at", "assignee_id", "notes")


def _due(form: FormData, organisation_zone: str) -> datetime:
    if not str(form.get("due_at", "")).strip():
        raise ValidationFailed("Say when the task is due.", {"due_at": "Choose a date and time."})
    try:
        zone, offset = str(form.get("time_zone", "")), str(form.get("tz_offset", ""))
        return sms_queue.parse_local_time(str(form.get("due_at", "")), zone, offset, organisation_zone)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, {"due_at": next(iter(exc.fields.values()), exc.message)}) from None


def _assignee_id(form: FormData) -> int | None:
    raw = str(form.get("assignee_id", "")).strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ValidationFailed("Choose who is to do it.", {"assignee_id": "Choose who is to do it."})
    return int(raw)


async def _form_page(
    request: Request, staff: Staff, case: Case | None, form: FormData, errors: dict[str, str], status_code: int
) -> Response:
    """The task form again, with what was typed and what to correct."""
    zone = await sms_queue.organisation_zone()
    browser_zone = str(form.get("time_zone", ""))
    context = {
        "case": case,
        "values": {name: str(form.get(name, "")) for name in FIELDS},
        "errors": errors,
        "assignees": await tasks.assignee_choices(staff, case),
        "time_zone": browser_zone if quiet_hours.zone_named(browser_zone) else zone,
    }
    return render(request, "cases/task_form.html", context, status_code=status_code)


async def _add(request: Request, staff: Staff, case: Case | None) -> Response:
    form = await checked_form(request)
    try:
        data = TaskInput(
            title=str(form.get("title", "")),
            due_at=_due(form, await sms_queue.organisation_zone()),
            assignee_id=_assignee_id(form),
            notes=str(form.get("notes", "")),
        )
        task = await tasks.create_task(request.app.state.bus, staff, case.id if case else None, data)
    except ServiceError as exc:
        return await _form_page(request, staff, case, form, exc.fields or {"title": exc.message}, exc.status)
    return RedirectResponse(f"/cases/{case.id}#task-{task.id}" if case else "/tasks", status_code=303)


async def add_case_task(request: Request) -> Response:
    staff = await require_staff(request)
    case = await case_events.visible_case(staff, request.path_params["case_id"])
    return await _add(request, staff, case)


async def add_own_task(request: Request) -> Response:
    staff = await require_staff(request)
    return await _add(request, staff, None)


async def mark_done(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    task = await tasks.mark_done(request.app.state.bus, staff, request.path_params["task_id"])
    back = safe_next(str(form.get("next", "")) or (f"/cases/{task.case_id}" if task.case_id else "/tasks"))
    return RedirectResponse(f"{back}#task-{task.id}", status_code=303)


async def my_tasks_page(request: Request) -> Response:
    staff = await require_staff(request)
    mine = await tasks.my_tasks(staff)
    context = {
        "tasks": [tasks.shown(task) for task in mine],
        "assignees": [staff],
        "time_zone": await sms_queue.organisation_zone(),
    }
    return render(request, "tasks/index.html", context)


routes = [
    Route("/tasks", my_tasks_page, methods=["GET"]),
    Route("/tasks", add_own_task, methods=["POST"]),
    Route("/tasks/{task_id:int}/done", mark_done, methods=["POST"]),
    Route("/cases/{case_id:int}/tasks", add_case_task, methods=["POST"]),
]
