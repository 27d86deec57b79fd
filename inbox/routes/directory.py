"""Client and case pages, and "Send text" from a case."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Case, CaseNote, Client, Message
from inbox.services import directory, media, messaging, visibility
from inbox.services.errors import NotFound, ServiceError
from inbox.services.messaging import SendRequest
from inbox.web import checked_form, render, require_staff


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
    messages = await Message.filter(conversation__phone__in=numbers).order_by("-id").limit(50).prefetch_related("case", "sent_by") if numbers else []
    return render(request, "clients/detail.html", {"client": client, "messages": messages})


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
    return render(request, "cases/detail.html", {"case": case, "sms_log": log, "notes": notes, "documents": documents})


async def _text_form(request: Request, case: Case, body: str = "", to: str = "", error: str | None = None, status_code: int = 200) -> Response:
    phones = list(case.client.phones)
    default = directory.mobile_of(case.client)
    context = {
        "case": case,
        "phones": phones,
        "to": to or (default.number if default else ""),
        "body": body,
        "error": error,
        "char_limit": await messaging.char_limit(),
    }
    return render(request, "cases/text.html", context, status_code=status_code)


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
    return RedirectResponse(f"/conversations/{message.conversation_id}", status_code=303)


routes = [
    Route("/clients", client_list),
    Route("/clients/{client_id:int}", client_page),
    Route("/cases", case_list),
    Route("/cases/{case_id:int}", case_page),
    Route("/cases/{case_id:int}/text", case_text_form, methods=["GET"]),
    Route("/cases/{case_id:int}/text", case_send_text, methods=["POST"]),
]
