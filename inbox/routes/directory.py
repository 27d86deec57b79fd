"""Client and case pages, and "Send text" from a case."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Case, CaseNote, Client, Message
from inbox.routes.quick_entries import case_text_page
from inbox.services import (
    case_events,
    consent,
    directory,
    media,
    messaging,
    organisation,
    system_texts,
    tasks,
    visibility,
)
from inbox.services.errors import NotFound, ServiceError
from inbox.services.messaging import SendRequest
from inbox.web import checked_form, is_htmx, render, require_staff, send_after


async def client_list(request: Request) -> Response:
    staff = await require_staff(request)
    query = Client.all()
    if not staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_client_ids(staff))
    clients = await query.order_by("name").limit(500).prefetch_related("phones", "cases")
    return render(request, "clients/index.html", {"clients": clients})


async def client_page(request: Request) -> Response:
    staff = await require_staff(request)
    client_id = request.path_params["client_id"]
    if not await visibility.can_see_client(staff, client_id):
        raise NotFound("No client has this id.")
    client = await directory.get_client(client_id)
    numbers = [p.number for p in client.phones]
    messages = (
        await Message.filter(conversation__phone__in=numbers)
        .order_by("-id")
        .limit(50)
        .prefetch_related("case", "sent_by")
        if numbers
        else []
    )
    consents = await consent.phone_consents(list(client.phones))
    return render(request, "clients/detail.html", {"client": client, "messages": messages, "consents": consents})


# ---------------------------------------------------------------- consent (a client phone's okay-to-text)


async def _phone_consent(request: Request) -> consent.PhoneConsent:
    staff = await require_staff(request)
    phone = await consent.visible_phone(staff, request.path_params["client_id"], request.path_params["phone_id"])
    return (await consent.phone_consents([phone]))[phone.id]


async def consent_state(request: Request) -> Response:
    """A phone's consent block (the client page and the thread's client pane re-fetch it on reconnect)."""
    return render(request, "clients/_consent_state.html", {"pc": await _phone_consent(request)})


async def consent_ledger(request: Request) -> Response:
    return render(request, "clients/_consent_ledger.html", {"pc": await _phone_consent(request)})


async def set_consent(request: Request) -> Response:
    """Staff tick or untick okay-to-text. The block itself is updated by the live event, as for everyone."""
    staff = await require_staff(request)
    form = await checked_form(request)
    client_id, phone_id = request.path_params["client_id"], request.path_params["phone_id"]
    okay = str(form.get("okay_to_text", "")).lower() in ("1", "true", "on", "yes")
    await consent.set_okay_to_text(request.app.state.bus, staff, client_id, phone_id, okay)
    return _consent_answer(request, client_id, "Okay to text ticked." if okay else "Okay to text unticked.")


async def request_opt_in(request: Request) -> Response:
    """Staff ask for consent by text: the organisation's opt-in text, sent before okay-to-text."""
    staff = await require_staff(request)
    await checked_form(request)
    client_id, phone_id = request.path_params["client_id"], request.path_params["phone_id"]
    try:
        message = await system_texts.send_opt_in_request(staff, client_id, phone_id)
    except ServiceError as exc:
        if is_htmx(request):
            return render(request, "clients/_consent_feedback.html", {"error": exc.message}, status_code=exc.status)
        raise
    answer = _consent_answer(request, client_id, "Opt-in request sent: a reply of Y or YES records consent.")
    return send_after(answer, request.app.state.outbox, message)


def _consent_answer(request: Request, client_id: int, notice: str = "", error: str = "") -> Response:
    if is_htmx(request):
        return render(request, "clients/_consent_feedback.html", {"notice": notice, "error": error})
    return RedirectResponse(f"/clients/{client_id}", status_code=303)


async def case_list(request: Request) -> Response:
    staff = await require_staff(request)
    query = Case.all()
    if not staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_case_ids(staff))
    cases = await query.order_by("-created_at").limit(500).prefetch_related("client")
    return render(request, "cases/index.html", {"cases": cases})


async def _visible_case(request: Request) -> Case:
    staff = await require_staff(request)
    case = await directory.get_case(request.path_params["case_id"])
    if not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


async def case_page(request: Request) -> Response:
    case = await _visible_case(request)
    log = await Message.filter(links__case_id=case.id).distinct().order_by("-id").limit(100).prefetch_related("sent_by")
    notes = await CaseNote.filter(case_id=case.id).order_by("-at", "-id").limit(100).prefetch_related("message__media")
    documents = await media.documents_of_case(case.id)
    staff = await require_staff(request)
    events = await case_events.events_of_case(staff, case.id)
    context = {
        "case": case,
        "sms_log": log,
        "notes": notes,
        "documents": documents,
        "events": [case_events.shown(event) for event in events],
        "tasks": [tasks.shown(task) for task in await tasks.tasks_of_case(staff, case.id)],
        "task_assignees": await tasks.assignee_choices(staff, case),
        "task_time_zone": (await organisation.current()).time_zone,
    }
    return render(request, "cases/detail.html", context)


async def _text_form(
    request: Request, case: Case, body: str = "", to: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    # One page for sending now and later, with quick entries: inbox/routes/quick_entries.py renders it.
    return await case_text_page(request, case, body=body, to=to, error=error, status_code=status_code)


async def case_text_form(request: Request) -> Response:
    return await _text_form(request, await _visible_case(request))


async def case_send_text(request: Request) -> Response:
    staff = await require_staff(request)
    case = await _visible_case(request)
    form = await checked_form(request)
    body, to = str(form.get("body", "")), str(form.get("to", ""))
    try:
        message = await messaging.send_text(
            request.app.state.outbox, staff, SendRequest(body=body, case_id=case.id, to=to or None)
        )
    except ServiceError as exc:
        error = "; ".join(exc.fields.values()) or exc.message
        return await _text_form(request, case, body=body, to=to, error=error, status_code=exc.status)
    redirect = RedirectResponse(f"/conversations/{message.conversation_id}", status_code=303)
    return send_after(redirect, request.app.state.outbox, message)


routes = [
    Route("/clients", client_list),
    Route("/clients/{client_id:int}", client_page),
    Route("/clients/{client_id:int}/phones/{phone_id:int}/consent", consent_state, methods=["GET"]),
    Route("/clients/{client_id:int}/phones/{phone_id:int}/consent", set_consent, methods=["POST"]),
    Route("/clients/{client_id:int}/phones/{phone_id:int}/ledger", consent_ledger, methods=["GET"]),
    Route("/clients/{client_id:int}/phones/{phone_id:int}/opt-in-request", request_opt_in, methods=["POST"]),
    Route("/cases", case_list),
    Route("/cases/{case_id:int}", case_page),
    Route("/cases/{case_id:int}/text", case_text_form, methods=["GET"]),
    Route("/cases/{case_id:int}/text", case_send_text, methods=["POST"]),
]
