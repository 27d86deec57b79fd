"""The SMS queue page, scheduling from a thread or a case ("Send later"), and the quiet-hours setting."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Case, Message, Staff
from inbox.routes.inbox import attachments_of, composer_or_page, int_or_none, thread_context
from inbox.routes.quick_entries import COMPOSER_FIELDS, case_text_page
from inbox.services import directory, organisation, queue, quiet_hours, visibility
from inbox.services.errors import NotFound, Refused, ServiceError
from inbox.services.messaging import SendRequest
from inbox.services.quiet_hours import QuietHoursInput
from inbox.web import checked_form, is_htmx, iso, render, require_admin, require_staff, send_after

DONE = {
    "canceled": "Cancelled: it will not be sent.",
    "saved": "Saved.",
    "retried": "Retried: it is being handed to Twilio now.",
}
SECTION_TITLES = {
    queue.QueueState.STUCK: "Stuck",
    queue.QueueState.FAILED: "Failed today",
    queue.QueueState.RETRYING: "Retrying",
    queue.QueueState.SENDING: "Being sent",
    queue.QueueState.WAITING: "Waiting to send",
    queue.QueueState.SCHEDULED: "Scheduled",
}


def _send_at_of(form: FormData, organisation_zone: str) -> tuple[str, str]:
    """The typed time and the zone it is in (the browser's, else the organisation's)."""
    zone = str(form.get("time_zone", "")).strip()
    return str(form.get("send_at", "")), zone if quiet_hours.zone_named(zone) else organisation_zone


def _parse_send_at(form: FormData, organisation_zone: str) -> datetime:
    return queue.parse_local_time(
        str(form.get("send_at", "")), str(form.get("time_zone", "")), str(form.get("tz_offset", "")), organisation_zone
    )


def _scheduled_words(message: Message, zone: str) -> str:
    local = message.send_at.astimezone(quiet_hours.zone_named(zone)) if message.send_at else None
    when = f"{local:%a} {local.day} {local:%b}, {quiet_hours.clock_words(local)} ({zone})" if local else "later"
    note = message.error_message or ""
    held = f" — {note[0].lower()}{note[1:]}" if quiet_hours.is_hold_note(note) else ""
    return f"Scheduled for {when}{held}. Change or cancel it on the queue page."


# ---------------------------------------------------------------- "Send later"


async def schedule_from_thread(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    conversation_id = request.path_params["conversation_id"]
    body = str(form.get("body", ""))
    org_zone = await queue.organisation_zone()
    raw, zone = _send_at_of(form, org_zone)
    try:
        send_at = _parse_send_at(form, org_zone)
        attachments = await attachments_of(form)
        request_ = SendRequest(
            body=body,
            conversation_id=conversation_id,
            case_id=int_or_none(form.get("case_id")),
            send_at=send_at,
            attachments=attachments,
        )
        message = await queue.schedule_text(request.app.state.outbox, staff, request_)
    except ServiceError as exc:
        fields = exc.fields
        error = fields.get("send_at") or fields.get("body") or fields.get("attachment") or exc.message
        context = await thread_context(request, conversation_id, body=body, error=error)
        context.update(send_at=raw, time_zone=zone, organisation_zone=org_zone)
        return composer_or_page(request, context, status_code=exc.status)
    context = await thread_context(request, conversation_id)
    context.update(organisation_zone=org_zone, notice=_scheduled_words(message, zone))
    return composer_or_page(request, context)


async def _case_for_text(staff: Staff, case_id: int) -> Case:
    case = await directory.get_case(case_id)
    if not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


async def schedule_from_case(request: Request) -> Response:
    staff = await require_staff(request)
    case = await _case_for_text(staff, request.path_params["case_id"])
    form = await checked_form(request)
    body, to = str(form.get("body", "")), str(form.get("to", ""))
    org_zone = await queue.organisation_zone()
    raw, zone = _send_at_of(form, org_zone)
    try:
        send_at = _parse_send_at(form, org_zone)
        request_ = SendRequest(body=body, case_id=case.id, to=to or None, send_at=send_at)
        message = await queue.schedule_text(request.app.state.outbox, staff, request_)
    except ServiceError as exc:
        error = "; ".join(exc.fields.values()) or exc.message
        return await case_text_page(
            request, case, body=body, to=to, error=error, status_code=exc.status, send_at=raw, time_zone=zone
        )
    return RedirectResponse(f"/conversations/{message.conversation_id}", status_code=303)


# ---------------------------------------------------------------- the queue page


SECTION_LIMIT = 200  # texts listed per state on the page


def _chosen_state(request: Request) -> queue.QueueState | None:
    """The state the page is filtered to; anything else (or nothing) shows every state."""
    try:
        return queue.QueueState(request.query_params.get("state", ""))
    except ValueError:
        return None


async def _queue_context(request: Request, staff: Staff) -> dict[str, object]:
    outbox = request.app.state.outbox
    rules = outbox.rules
    chosen = _chosen_state(request)
    states = [chosen] if chosen else list(queue.STATE_ORDER)
    listed = {
        state: await queue.texts_in_state(staff, state, rules, limit=SECTION_LIMIT, newest_first=False)
        for state in states
    }
    sections = [(state, SECTION_TITLES[state], entries) for state, entries in listed.items()]
    return {
        # A state listed in full is counted from its list: no second query for it.
        "overview": await queue.overview(staff, rules, pacer=outbox.pacer, listed=listed, listed_limit=SECTION_LIMIT),
        "sections": sections,
        "with_twilio": await queue.with_twilio(staff) if chosen is None else [],
        "chosen": chosen,
        "titles": SECTION_TITLES,
        "stuck_after": queue.duration_words(rules.stuck_after).removeprefix("about "),
    }


async def queue_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    staff = await require_staff(request)
    org = await organisation.current()
    context = {
        **await _queue_context(request, staff),
        "window": quiet_hours.Window.of(org),
        "done": DONE.get(request.query_params.get("done", "")),
        "error": error,
    }
    # The live pane re-fetches itself (static/app.js) as texts move between states: the pane alone.
    template = "queue/_pane.html" if is_htmx(request) and error is None else "queue/index.html"
    return render(request, template, context, status_code=status_code)


async def queue_index(request: Request) -> Response:
    return await queue_page(request)


async def _row_or_page(request: Request, staff: Staff, message_id: int, exc: Refused) -> Response:
    """A refused cancel or retry, said where the person clicked: the row (htmx) or the page."""
    if not is_htmx(request):
        return await queue_page(request, error=exc.message, status_code=exc.status)
    entry = await queue.queue_entry(staff, message_id, rules=request.app.state.outbox.rules)
    return render(request, "queue/_row.html", {"entry": entry, "row_error": exc.message}, status_code=exc.status)


async def cancel(request: Request) -> Response:
    staff = await require_staff(request)
    await checked_form(request)
    message_id = request.path_params["message_id"]
    try:
        await queue.cancel_scheduled(request.app.state.bus, staff, message_id)
    except Refused as exc:  # handed to Twilio meanwhile: say so where the person clicked
        return await _row_or_page(request, staff, message_id, exc)
    if is_htmx(request):
        entry = await queue.queue_entry(staff, message_id, rules=request.app.state.outbox.rules)
        return render(request, "queue/_row.html", {"entry": entry})
    return RedirectResponse("/queue?done=canceled", status_code=303)


async def retry(request: Request) -> Response:
    """ "Retry now" on a stuck text, "Retry" on a failed one: back in the outbox, handed over after the answer."""
    staff = await require_staff(request)
    await checked_form(request)
    message_id = request.path_params["message_id"]
    outbox = request.app.state.outbox
    try:
        message = await queue.retry_now(request.app.state.bus, staff, message_id, outbox.rules)
    except Refused as exc:
        return await _row_or_page(request, staff, message_id, exc)
    response: Response
    if is_htmx(request):
        entry = await queue.queue_entry(staff, message_id, rules=outbox.rules)
        response = render(request, "queue/_row.html", {"entry": entry})
    else:
        response = RedirectResponse("/queue?done=retried", status_code=303)
    return send_after(response, outbox, message)


async def _edit_page(
    request: Request,
    entry: queue.QueueEntry,
    body: str,
    send_at: str,
    time_zone: str,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    org_zone = await queue.organisation_zone()
    context = {
        "entry": entry,
        "body": body,
        "send_at": send_at,
        "time_zone": time_zone,
        "organisation_zone": org_zone,
        "errors": errors or {},
        "error": error,
        "char_limit": await organisation.text_limit(),
        "field": {
            **COMPOSER_FIELDS["case"],
            "wrap": "edit-body-wrap",
            "textarea": "edit-body",
            "counter": "edit-count",
        },
        "utc": None if errors or error else iso(entry.message.send_at),
    }
    return render(request, "queue/edit.html", context, status_code=status_code)


async def edit_form(request: Request) -> Response:
    staff = await require_staff(request)
    entry = await queue.queue_entry(staff, request.path_params["message_id"])
    org_zone = await queue.organisation_zone()
    message = entry.message
    error = None if entry.may_change else queue.HANDED_OVER
    status = 200 if entry.may_change else 409
    return await _edit_page(
        request,
        entry,
        message.body,
        queue.local_value(message.send_at, org_zone),
        org_zone,
        error=error,
        status_code=status,
    )


async def save_edit(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    message_id = request.path_params["message_id"]
    body = str(form.get("body", ""))
    org_zone = await queue.organisation_zone()
    raw, zone = _send_at_of(form, org_zone)
    try:
        send_at = _parse_send_at(form, org_zone)
        await queue.edit_scheduled(request.app.state.bus, staff, message_id, body, send_at)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        entry = await queue.queue_entry(staff, message_id)
        return await _edit_page(
            request, entry, body, raw, zone, errors=exc.fields, error=exc.message, status_code=exc.status
        )
    return RedirectResponse("/queue?done=saved", status_code=303)


# ---------------------------------------------------------------- the quiet-hours setting


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "change the quiet hours")


async def quiet_hours_page(request: Request) -> Response:
    await _admin(request)
    org = await organisation.current()
    data = QuietHoursInput(str(org.quiet_hours_start), str(org.quiet_hours_end), org.time_zone)
    context = {"data": data, "errors": {}, "saved": "saved" in request.query_params}
    return render(request, "queue/quiet_hours.html", context)


async def save_quiet_hours(request: Request) -> Response:
    staff = await _admin(request)
    form = await checked_form(request)
    data = QuietHoursInput(str(form.get("start", "")), str(form.get("end", "")), str(form.get("time_zone", "")))
    try:
        await quiet_hours.update_window(staff, data)
    except ServiceError as exc:
        return render(
            request,
            "queue/quiet_hours.html",
            {"data": data, "errors": exc.fields, "saved": False},
            status_code=exc.status,
        )
    return RedirectResponse("/admin/quiet-hours?saved=1", status_code=303)


routes = [
    Route("/queue", queue_index, methods=["GET"]),
    Route("/queue/{message_id:int}/edit", edit_form, methods=["GET"]),
    Route("/queue/{message_id:int}/edit", save_edit, methods=["POST"]),
    Route("/queue/{message_id:int}/cancel", cancel, methods=["POST"]),
    Route("/queue/{message_id:int}/retry", retry, methods=["POST"]),
    Route("/conversations/{conversation_id:int}/schedule", schedule_from_thread, methods=["POST"]),
    Route("/cases/{case_id:int}/schedule", schedule_from_case, methods=["POST"]),
    Route("/admin/quiet-hours", quiet_hours_page, methods=["GET"]),
    Route("/admin/quiet-hours", save_quiet_hours, methods=["POST"]),
]
