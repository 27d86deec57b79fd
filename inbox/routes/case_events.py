"""Case events on the case page: add, edit and cancel a hearing, appointment, meeting or deadline, with the
lead times of its client reminders written as `7d@09:00, 1d@09:00, 2h, 30m`."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import cast

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tortoise.expressions import Q

from inbox.models import CaseEvent, EventKind, Staff
from inbox.routes.quick_entries import case_text_page
from inbox.services import case_events, directory, quiet_hours
from inbox.services import queue as sms_queue
from inbox.services.case_events import EventInput, ReminderSpec
from inbox.services.errors import NotFound, ServiceError, ValidationFailed
from inbox.web import checked_form, render, require_admin, require_staff, send_after

LEAD = re.compile(r"^(\d{1,4})\s*([dhm])(?:\s*@\s*(\d{1,2}:\d{2}))?$")
UNIT_MINUTES = {"d": 24 * 60, "h": 60, "m": 1}


def lead_words(spec: ReminderSpec) -> str:
    """`7d@09:00`, `2h`, `90m`: a reminder's lead time as the form writes it."""
    minutes = spec.minutes_before
    unit = next(u for u in ("d", "h", "m") if minutes % UNIT_MINUTES[u] == 0)
    at = f"@{spec.at_local_time}" if spec.at_local_time else ""
    return f"{minutes // UNIT_MINUTES[unit]}{unit}{at}"


def parse_leads(text: str) -> tuple[ReminderSpec, ...]:
    specs = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        match = LEAD.fullmatch(part.lower())
        if match is None:
            raise ValidationFailed(
                "Reminders are not written as lead times.",
                {"reminders": f"“{part}” is not a lead time: write e.g. 7d@09:00, 1d@09:00, 2h or 30m."},
            )
        count, unit, at = match.groups()
        at = f"{int(at.split(':')[0]):02d}:{at.split(':')[1]}" if at else None
        specs.append(ReminderSpec(int(count) * UNIT_MINUTES[unit], at))
    return tuple(specs)


def _moment(form: FormData, name: str, organisation_zone: str) -> datetime | None:
    """A `datetime-local` field in the browser's zone (else the organisation's); None when left empty."""
    if not str(form.get(name, "")).strip():
        return None
    try:
        return sms_queue.parse_local_time(
            str(form.get(name, "")), str(form.get("time_zone", "")), str(form.get("tz_offset", "")), organisation_zone
        )
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, {name: next(iter(exc.fields.values()), exc.message)}) from None


def _input_of(form: FormData, organisation_zone: str, reminders: tuple[ReminderSpec, ...] | None) -> EventInput:
    starts_at = _moment(form, "starts_at", organisation_zone)
    if starts_at is None:
        raise ValidationFailed("Say when the event starts.", {"starts_at": "Choose a date and time."})
    return EventInput(
        kind=str(form.get("kind", "")),
        title=str(form.get("title", "")),
        starts_at=starts_at,
        ends_at=_moment(form, "ends_at", organisation_zone),
        place=str(form.get("place", "")),
        notes=str(form.get("notes", "")),
        attendee_emails=tuple(str(email) for email in form.getlist("attendees") if str(email).strip()),
        reminders=reminders,
        ask_confirmation=bool(form.get("ask_confirmation")),
    )


async def _form_page(
    request: Request,
    case_id: int,
    event: CaseEvent | None = None,
    form: FormData | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    zone = await sms_queue.organisation_zone()
    browser_zone = str(form.get("time_zone", "")) if form is not None else ""
    shown_zone = browser_zone if quiet_hours.zone_named(browser_zone) else zone
    values: dict[str, object]
    if form is not None:  # what was typed, kept
        values = {name: str(form.get(name, "")) for name in ("kind", "title", "starts_at", "ends_at", "place", "notes")}
        values["reminders"] = str(form.get("reminders", ""))
        values["ask_confirmation"] = bool(form.get("ask_confirmation"))
        values["attendees"] = [str(email) for email in form.getlist("attendees")]
    elif event is not None:
        values = {
            "kind": event.kind.value,
            "title": event.title,
            "starts_at": sms_queue.local_value(event.starts_at, zone),
            "ends_at": sms_queue.local_value(event.ends_at, zone),
            "place": event.place,
            "notes": event.notes,
            "reminders": _leads_of(event),
            "ask_confirmation": case_events.asks_confirmation(event),
            "attendees": [a.staff.email for a in event.attendees],
        }
    else:
        defaults = await case_events.default_reminders(EventKind.HEARING)
        values = {
            "kind": EventKind.HEARING.value,
            "reminders": "",
            "ask_confirmation": any(spec.ask_confirmation for spec in defaults),
            "attendees": [],
        }
    context = {
        "case_id": case_id,
        "event": event,
        "values": values,
        "kinds": [k.value for k in EventKind],
        "staff_choices": await _attendee_choices(cast(list[str], values["attendees"])),
        "time_zone": shown_zone,
        "error": error,
    }
    return render(request, "cases/event_form.html", context, status_code=status_code)


def _leads_of(event: CaseEvent) -> str:
    """The lead times of the reminders the form edits: those not sent (sent ones are history)."""
    return ", ".join(lead_words(case_events.spec_of_row(r)) for r in case_events.open_reminders(event))


async def _attendee_choices(chosen: list[str]) -> list[Staff]:
    """Active staff to tick as attending, and anyone already ticked (a deactivated attendee stays listed)."""
    people = await Staff.filter(Q(is_active=True) | Q(email__in=chosen)).order_by("name", "id")
    return list(people)


async def new_event_form(request: Request) -> Response:
    staff = await require_staff(request)
    case = await case_events.visible_case(staff, request.path_params["case_id"])
    return await _form_page(request, case.id)


async def add_event(request: Request) -> Response:
    staff = await require_staff(request)
    case = await case_events.visible_case(staff, request.path_params["case_id"])
    form = await checked_form(request)
    try:
        leads = str(form.get("reminders", "")).strip()
        data = _input_of(form, await sms_queue.organisation_zone(), parse_leads(leads) if leads else None)
        event = await case_events.create_event(request.app.state.bus, staff, case.id, data)
    except ServiceError as exc:
        return await _form_page(request, case.id, form=form, error=_words(exc), status_code=exc.status)
    return RedirectResponse(f"/cases/{case.id}#event-{event.id}", status_code=303)


async def edit_event_form(request: Request) -> Response:
    staff = await require_staff(request)
    event = await _event_on_case(request, staff)
    return await _form_page(request, event.case_id, event=event)


async def save_event(request: Request) -> Response:
    """The lead times replace the reminders not yet sent only when they were changed on the form."""
    staff = await require_staff(request)
    event = await _event_on_case(request, staff)
    form = await checked_form(request)
    try:
        written = str(form.get("reminders", "")).strip()
        reminders = None if written == _leads_of(event) else parse_leads(written)
        data = _input_of(form, await sms_queue.organisation_zone(), reminders)
        data = case_events.with_changes(event, **{k: getattr(data, k) for k in _FORM_FIELDS}, reminders=reminders)
        await case_events.update_event(request.app.state.bus, staff, event.id, data)
    except ServiceError as exc:
        return await _form_page(request, event.case_id, event, form=form, error=_words(exc), status_code=exc.status)
    return RedirectResponse(f"/cases/{event.case_id}#event-{event.id}", status_code=303)


_FORM_FIELDS = ("kind", "title", "starts_at", "ends_at", "place", "notes", "attendee_emails", "ask_confirmation")


async def cancel_event(request: Request) -> Response:
    staff = await require_staff(request)
    event = await _event_on_case(request, staff)
    await checked_form(request)
    await case_events.cancel_event(request.app.state.bus, staff, event.id)
    # Offer to tell the client: the case's "Send text" page, filled in (nothing leaves unless they send it).
    case = await directory.get_case(event.case_id)
    return await case_text_page(request, case, body=await case_events.cancellation_text(staff, event))


async def events_pane(request: Request) -> Response:
    """The case page's events list alone: a tab re-fetches it after its live stream reconnects."""
    staff = await require_staff(request)
    case = await case_events.visible_case(staff, request.path_params["case_id"])
    events = await case_events.events_of_this_case(case.id)
    context = {"case": case, "events": [case_events.shown(event) for event in events]}
    return render(request, "cases/_events.html", context)


async def send_reminder_now(request: Request) -> Response:
    """ "Send now" on a pending reminder: due at once, handed to Twilio after this answer."""
    staff = await require_staff(request)
    event = await _event_on_case(request, staff)
    await checked_form(request)
    outbox = request.app.state.outbox
    back = f"/cases/{event.case_id}#event-{event.id}"
    message = await case_events.send_reminder_now(
        request.app.state.bus, staff, event.id, request.path_params["reminder_id"]
    )
    return send_after(RedirectResponse(back, status_code=303), outbox, message)


async def _event_on_case(request: Request, staff: Staff) -> CaseEvent:
    event = await case_events.get_event(staff, request.path_params["event_id"])
    if event.case_id != request.path_params["case_id"]:
        raise NotFound("No event has this id on this case.")
    return event


def _words(exc: ServiceError) -> str:
    return "; ".join(exc.fields.values()) or exc.message


# ---------------------------------------------------------------- the organisation's defaults (admins)


async def defaults_page(request: Request) -> Response:
    await require_admin(request, "change the default reminders")
    values: dict[str, str] = {}
    asks: dict[str, bool] = {}
    for kind in EventKind:
        specs = await case_events.default_reminders(kind)
        values[kind.value] = ", ".join(lead_words(s) for s in specs)
        asks[kind.value] = any(s.ask_confirmation for s in specs)
    saved = "saved" in request.query_params
    return render(request, "admin/reminders.html", {"values": values, "asks": asks, "error": None, "saved": saved})


async def save_defaults(request: Request) -> Response:
    """Each kind's lead times, and whether its reminders ask the client to reply C (`<kind>_ask`)."""
    staff = await require_admin(request, "change the default reminders")
    form = await checked_form(request)
    values = {kind.value: str(form.get(kind.value, "")) for kind in EventKind}
    asks = {kind.value: bool(form.get(f"{kind.value}_ask")) for kind in EventKind}
    try:
        defaults = {
            kind: [replace(s, ask_confirmation=asks[kind.value]) for s in parse_leads(values[kind.value])]
            for kind in EventKind
        }
        await case_events.save_default_reminders(staff, defaults)
    except ServiceError as exc:
        context = {"values": values, "asks": asks, "error": _words(exc), "saved": False}
        return render(request, "admin/reminders.html", context, status_code=exc.status)
    return RedirectResponse("/admin/reminders?saved=1", status_code=303)


routes = [
    Route("/admin/reminders", defaults_page, methods=["GET"]),
    Route("/admin/reminders", save_defaults, methods=["POST"]),
    Route("/cases/{case_id:int}/events/new", new_event_form, methods=["GET"]),
    Route("/cases/{case_id:int}/events", add_event, methods=["POST"]),
    Route("/cases/{case_id:int}/events", events_pane, methods=["GET"]),
    Route(
        "/cases/{case_id:int}/events/{event_id:int}/reminders/{reminder_id:int}/send",
        send_reminder_now,
        methods=["POST"],
    ),
    Route("/cases/{case_id:int}/events/{event_id:int}/edit", edit_event_form, methods=["GET"]),
    Route("/cases/{case_id:int}/events/{event_id:int}", save_event, methods=["POST"]),
    Route("/cases/{case_id:int}/events/{event_id:int}/cancel", cancel_event, methods=["POST"]),
]
