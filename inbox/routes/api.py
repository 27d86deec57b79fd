"""The JSON API under /api/v1 (bearer token). Field names are a contract: see PRODUCT.md."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox.models import (
    Alert,
    Assignment,
    Case,
    CaseNote,
    Client,
    ClientPhone,
    ConsentEvent,
    ConsentSource,
    Media,
    MediaStatus,
    Message,
    Staff,
)
from inbox.routes.events import open_stream
from inbox.routes.openapi import OPENAPI
from inbox.services import alerts, consent, directory, linking, media, messaging, visibility
from inbox.services import queue as sms_queue
from inbox.services.errors import (
    Forbidden,
    NotFound,
    ServiceError,
    ValidationFailed,
    require,
)
from inbox.services.messaging import SendRequest
from inbox.services.staff import staff_for_token
from inbox.services.throttle import Throttle, Throttled
from inbox.web import client_address, iso

Handler = Callable[[Request, Staff], Awaitable[Response]]


class Unauthorised(ServiceError):
    status = 401


def error_response(exc: ServiceError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, Throttled):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticates the bearer token and turns service errors into the contract's JSON errors."""

    async def endpoint(request: Request) -> Response:
        try:
            staff = await _token_staff(request)
            return await handler(request, staff)
        except ServiceError as exc:
            return error_response(exc)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _token_staff(request: Request) -> Staff:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorised("Send a token: Authorization: Bearer <token> (see `inbox create-token`).")
    throttle: Throttle = request.app.state.throttle
    await throttle.check_token(client_address(request))  # Throttled (429) after too many bad tokens
    staff = await staff_for_token(token.strip())
    if staff is None:
        await throttle.token_failed(client_address(request))
        raise Unauthorised("This token is not valid.")
    return staff


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.")
    return body


# ---------------------------------------------------------------- field checks


def text_field(body: dict[str, Any], name: str, errors: dict[str, str], required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            errors[name] = "This field is required."
        return None
    if not isinstance(value, str):
        errors[name] = "Must be a string."
        return None
    return value


def int_field(body: dict[str, Any], name: str, errors: dict[str, str], required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            errors[name] = "This field is required."
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = "Must be an integer id."
        return None
    return int(value)


def date_field(body: dict[str, Any], name: str, errors: dict[str, str]) -> date | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        errors[name] = "Must be a date like 2026-11-21."
        return None


def datetime_field(body: dict[str, Any], name: str, errors: dict[str, str]) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        errors[name] = "Must be an ISO 8601 time with an offset, like 2026-11-21T15:00:00Z."
        return None
    if moment.tzinfo is None:
        errors[name] = "Give the time zone offset, e.g. 2026-11-21T15:00:00Z."
        return None
    return moment


def paging(request: Request) -> tuple[int, int | None]:
    errors: dict[str, str] = {}
    limit, before = 50, None
    try:
        limit = max(1, min(200, int(request.query_params.get("limit", "50"))))
    except ValueError:
        errors["limit"] = "Must be an integer."
    try:
        raw_before = request.query_params.get("before")
        before = int(raw_before) if raw_before else None
    except ValueError:
        errors["before"] = "Must be an integer (the id to page before)."
    if errors:
        raise ValidationFailed("limit and before must be integers.", errors)
    return limit, before


def require_manager(staff: Staff) -> None:
    if not staff.sees_everything:
        raise Forbidden("Only supervisors and admins may change clients, cases and assignments.")


# ---------------------------------------------------------------- shapes


def client_json(client: Client) -> dict[str, Any]:
    return {
        "id": client.id,
        "name": client.name,
        "external_id": client.external_id,
        "preferred_language": client.preferred_language,
        "phones": [phone_json(p) for p in client.phones],
        "case_ids": [c.id for c in client.cases],
        "created_at": iso(client.created_at),
    }


def phone_json(phone: ClientPhone) -> dict[str, Any]:
    """A client phone with its consent ledger (consent_log fetched), oldest entry first."""
    return {
        "id": phone.id,
        "number": phone.number,
        "kind": phone.kind.value,
        "okay_to_text": phone.okay_to_text,
        "opted_out": phone.opted_out,
        "consent_log": [consent_json(row) for row in sorted(phone.consent_log, key=lambda row: (row.at, row.id))],
    }


def consent_json(row: ConsentEvent) -> dict[str, Any]:
    return {
        "okay_to_text": row.okay_to_text,
        "opted_out": row.opted_out,
        "source": row.source.value,
        "at": iso(row.at),
        "message_id": row.message_id,
    }


def case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "client_id": case.client_id,
        "legal_problem": case.legal_problem,
        "office": case.office.name if case.office else None,
        "external_id": case.external_id,
        "opened": case.opened_on.isoformat(),
        "closed": case.closed_on.isoformat() if case.closed_on else None,
        "created_at": iso(case.created_at),
    }


def assignment_json(assignment: Assignment) -> dict[str, Any]:
    return {
        "id": assignment.id,
        "case_id": assignment.case_id,
        "staff_email": assignment.staff.email,
        "primary": assignment.primary,
        "start": assignment.start.isoformat(),
        "end": assignment.end.isoformat() if assignment.end else None,
    }


def media_url(media_id: int) -> str:
    """Where an attachment is fetched, with the same token as the rest of the API."""
    return f"/api/v1/media/{media_id}"


def media_json(item: Media) -> dict[str, Any]:
    stored = item.status == MediaStatus.STORED
    return {
        "id": item.id,
        # Until the file is stored, only the type the provider declared is known.
        "content_type": item.content_type if stored else item.declared_type,
        "size": item.size,
        "url": media_url(item.id),
        "status": item.status.value,
    }


def message_json(message: Message, visible_cases: set[int] | None = None) -> dict[str, Any]:
    """The message as the reader may see it: `visible_cases` None means every case (supervisors, admins);
    otherwise links to cases outside it (a shared phone filed the text on another client's case) are left out."""
    links = [
        link
        for link in sorted(message.links, key=lambda link: link.id)
        if visible_cases is None or link.case_id in visible_cases
    ]
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction.value,
        "from": message.from_number,
        "to": message.to_number,
        "body": message.body,
        "status": message.status.value,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "provider_sid": message.provider_sid,
        "segments": message.segments,
        "case_ids": sorted({link.case_id for link in links}),
        "links": [{"case_id": link.case_id, "reason": str(link.reason)} for link in links],
        "media": [media_json(item) for item in sorted(message.media, key=lambda m: (m.position, m.id))],
        "sent_by": message.sent_by_id,
        "send_at": iso(message.send_at) or None,
        "created_at": iso(message.created_at),
        "timeline": [
            {"status": step.status.value, "at": iso(step.at), "error_code": step.error_code}
            for step in sorted(message.timeline, key=lambda s: (s.at, s.id))
        ],
    }


def note_json(note: CaseNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "case_id": note.case_id,
        "message_id": note.message_id,
        "author": note.author,
        "body": note.body,
        "at": iso(note.at),
    }


def document_json(item: Media) -> dict[str, Any]:
    return {
        "id": item.id,
        "message_id": item.message_id,
        "content_type": item.content_type,
        "size": item.size,
        "filename": item.filename,
        "url": media_url(item.id),
        "created_at": iso(item.created_at),
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "case_id": alert.case_id,
        "message_id": alert.message_id,
        "assignee_emails": sorted(a.staff.email for a in alert.assignees),
        "created_at": iso(alert.created_at),
        "dismissed_at": iso(alert.dismissed_at) or None,
        "dismissed_by": alert.dismissed_by.email if alert.dismissed_by_id and alert.dismissed_by else None,
    }


# ---------------------------------------------------------------- clients, cases, assignments


@api
async def create_client(request: Request, staff: Staff) -> Response:
    require_manager(staff)
    body = await json_body(request)
    errors: dict[str, str] = {}
    name = text_field(body, "name", errors, required=True)
    external_id = text_field(body, "external_id", errors)
    language = text_field(body, "preferred_language", errors)
    phones = _phones_field(body, errors)
    require(errors)
    client = await directory.create_client(
        name=name or "",
        phones=phones,
        external_id=external_id,
        preferred_language=language,
        source=ConsentSource.API,
        staff=staff,
    )
    return JSONResponse(client_json(await directory.get_client(client.id)), status_code=201)


def _phones_field(body: dict[str, Any], errors: dict[str, str]) -> list[directory.PhoneInput]:
    raw = body.get("phones", [])
    if not isinstance(raw, list):
        errors["phones"] = "Must be a list of {number, kind, okay_to_text}."
        return []
    phones = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("number"), str):
            errors[f"phones.{index}.number"] = "Each phone needs a number (a string)."
            continue
        okay = item.get("okay_to_text", False)
        if not isinstance(okay, bool):
            errors[f"phones.{index}.okay_to_text"] = "Must be true or false."
            continue
        phones.append(directory.PhoneInput(item["number"], str(item.get("kind", "mobile")), okay))
    return phones


@api
async def list_clients(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    query = Client.all()
    if not staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_client_ids(staff))
    if before:
        query = query.filter(id__lt=before)
    clients = await query.order_by("-id").limit(limit).prefetch_related("phones__consent_log", "cases")
    return JSONResponse([client_json(c) for c in clients])


@api
async def get_client(request: Request, staff: Staff) -> Response:
    client_id = request.path_params["client_id"]
    if not await visibility.can_see_client(staff, client_id):
        raise NotFound("No client has this id.")
    return JSONResponse(client_json(await directory.get_client(client_id)))


@api
async def set_phone_consent(request: Request, staff: Staff) -> Response:
    """The case management system records okay-to-text for one number (an opt-out stays until START)."""
    body = await json_body(request)
    okay = body.get("okay_to_text")
    if not isinstance(okay, bool):
        require({"okay_to_text": "Must be true or false."})
    phone = await consent.set_okay_to_text(
        request.app.state.bus,
        staff,
        request.path_params["client_id"],
        request.path_params["phone_id"],
        bool(okay),
        ConsentSource.API,
    )
    await phone.fetch_related("consent_log")
    return JSONResponse(phone_json(phone))


@api
async def create_case(request: Request, staff: Staff) -> Response:
    require_manager(staff)
    body = await json_body(request)
    errors: dict[str, str] = {}
    values = {
        name: text_field(body, name, errors, required=name in ("number", "title"))
        for name in ("number", "title", "legal_problem", "office", "external_id")
    }
    client_id = int_field(body, "client_id", errors, required=True)
    require(errors)
    case = await directory.create_case(client_id=client_id, **values)  # type: ignore[arg-type]
    return JSONResponse(case_json(await directory.get_case(case.id)), status_code=201)


@api
async def list_cases(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    query = Case.all()
    if not staff.sees_everything:
        query = query.filter(id__in=await visibility.assigned_case_ids(staff))
    if before:
        query = query.filter(id__lt=before)
    cases = await query.order_by("-id").limit(limit).prefetch_related("office")
    return JSONResponse([case_json(c) for c in cases])


async def _visible_case(staff: Staff, case_id: int) -> Case:
    case = await Case.get_or_none(id=case_id).prefetch_related("office")
    if case is None or not await visibility.can_see_case(staff, case):
        raise NotFound("No case has this id.")
    return case


@api
async def get_case(request: Request, staff: Staff) -> Response:
    return JSONResponse(case_json(await _visible_case(staff, request.path_params["case_id"])))


@api
async def create_assignment(request: Request, staff: Staff) -> Response:
    require_manager(staff)
    body = await json_body(request)
    errors: dict[str, str] = {}
    case_id = int_field(body, "case_id", errors, required=True)
    email = text_field(body, "staff_email", errors, required=True)
    primary = body.get("primary", False)
    if not isinstance(primary, bool):
        errors["primary"] = "Must be true or false."
    start, end = date_field(body, "start", errors), date_field(body, "end", errors)
    require(errors)
    assignment = await directory.create_assignment(
        case_id=case_id, staff_email=email or "", primary=primary, start=start, end=end
    )
    await assignment.fetch_related("staff")
    return JSONResponse(assignment_json(assignment), status_code=201)


@api
async def list_assignments(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    query = Assignment.all()
    if not staff.sees_everything:
        query = query.filter(case_id__in=await visibility.assigned_case_ids(staff))
    if request.query_params.get("case_id", "").isdigit():
        query = query.filter(case_id=int(request.query_params["case_id"]))
    if before:
        query = query.filter(id__lt=before)
    rows = await query.order_by("-id").limit(limit).prefetch_related("staff")
    return JSONResponse([assignment_json(a) for a in rows])


@api
async def get_assignment(request: Request, staff: Staff) -> Response:
    assignment = await Assignment.get_or_none(id=request.path_params["assignment_id"]).prefetch_related("staff", "case")
    if assignment is None or not await visibility.can_see_case(staff, assignment.case):
        raise NotFound("No assignment has this id.")
    return JSONResponse(assignment_json(assignment))


# ---------------------------------------------------------------- messages


async def _message_for(staff: Staff, message_id: int) -> Message:
    message = await messaging.get_message_for(staff, message_id)
    await message.fetch_related("media")
    return message


@api
async def send_message(request: Request, staff: Staff) -> Response:
    body = await json_body(request)
    errors: dict[str, str] = {}
    text = text_field(body, "body", errors, required=True)
    case_id, client_id = int_field(body, "case_id", errors), int_field(body, "client_id", errors)
    to = text_field(body, "to", errors)
    send_at = datetime_field(body, "send_at", errors)
    if case_id is None and client_id is None and not to and "to" not in errors:
        errors["to"] = "Give case_id, client_id or to."
    require(errors)
    message = await messaging.send_text(
        request.app.state.outbox,
        staff,
        SendRequest(body=text or "", case_id=case_id, client_id=client_id, to=to, send_at=send_at),
    )
    visible = await visibility.visible_case_ids(staff)
    return JSONResponse(message_json(await _message_for(staff, message.id), visible), status_code=201)


@api
async def get_message(request: Request, staff: Staff) -> Response:
    message = await _message_for(staff, request.path_params["message_id"])
    return JSONResponse(message_json(message, await visibility.visible_case_ids(staff)))


@api
async def cancel_message(request: Request, staff: Staff) -> Response:
    """Cancel a scheduled text; 409 once it has been handed to the provider."""
    message_id = request.path_params["message_id"]
    await sms_queue.cancel_scheduled(request.app.state.bus, staff, message_id)
    return JSONResponse(message_json(await _message_for(staff, message_id), await visibility.visible_case_ids(staff)))


@api
async def list_queue(request: Request, staff: Staff) -> Response:
    """Scheduled and queued texts, newest first; `held_until` says when quiet hours let a held one go."""
    limit, before = paging(request)
    visible = await visibility.visible_case_ids(staff)
    entries = await sms_queue.queue_for(staff, limit=limit, before=before)
    return JSONResponse(
        [{**message_json(e.message, visible), "held_until": iso(e.hold.until) if e.hold else None} for e in entries]
    )


@api
async def add_message_link(request: Request, staff: Staff) -> Response:
    body = await json_body(request)
    errors: dict[str, str] = {}
    case_id = int_field(body, "case_id", errors, required=True)
    require(errors)
    message_id = request.path_params["message_id"]
    await linking.add_link(request.app.state.bus, staff, message_id, case_id or 0)
    message = await _message_for(staff, message_id)
    return JSONResponse(message_json(message, await visibility.visible_case_ids(staff)), status_code=201)


@api
async def remove_message_link(request: Request, staff: Staff) -> Response:
    await linking.remove_link(
        request.app.state.bus, staff, request.path_params["message_id"], request.path_params["case_id"]
    )
    return Response(status_code=204)


@api
async def case_transcript(request: Request, staff: Staff) -> Response:
    case = await _visible_case(staff, request.path_params["case_id"])
    messages = (
        await Message.filter(links__case_id=case.id)
        .distinct()
        .order_by("id")
        .prefetch_related("timeline", "links", "media")
    )
    visible = await visibility.visible_case_ids(staff)
    return JSONResponse({"case_id": case.id, "messages": [message_json(m, visible) for m in messages]})


@api
async def case_notes(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    case = await _visible_case(staff, request.path_params["case_id"])
    query = CaseNote.filter(case_id=case.id)
    if before:
        query = query.filter(id__lt=before)
    notes = await query.order_by("-id").limit(limit)
    return JSONResponse([note_json(note) for note in notes])


@api
async def case_documents(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    case = await _visible_case(staff, request.path_params["case_id"])
    documents = sorted(await media.documents_of_case(case.id), key=lambda item: item.id, reverse=True)
    page = [item for item in documents if before is None or item.id < before][:limit]
    return JSONResponse([document_json(item) for item in page])


@api
async def get_media(request: Request, staff: Staff) -> Response:
    from inbox.routes.media import file_response  # the attachments module serves the bytes, one way for pages and API

    item = await media.visible_media(staff, request.path_params["media_id"])
    return await file_response(item, request.app.state.settings)


# ---------------------------------------------------------------- alerts


async def _alert_with_people(alert_id: int) -> Alert:
    return await Alert.get(id=alert_id).prefetch_related("assignees__staff", "dismissed_by")


@api
async def list_alerts(request: Request, staff: Staff) -> Response:
    limit, before = paging(request)
    rows = await alerts.alerts_for(staff, limit=limit, before=before, newest_first=True)
    return JSONResponse([alert_json(alert) for alert in rows])


@api
async def dismiss_alert(request: Request, staff: Staff) -> Response:
    alert = await alerts.dismiss(request.app.state.bus, staff, request.path_params["alert_id"])
    return JSONResponse(alert_json(await _alert_with_people(alert.id)))


@api
async def events(request: Request, staff: Staff) -> Response:
    return open_stream(request, staff, "json")


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def not_found(request: Request) -> Response:
    return JSONResponse({"error": "There is no such API path."}, status_code=404)


routes = [
    Route("/clients", create_client, methods=["POST"]),
    Route("/clients", list_clients, methods=["GET"]),
    Route("/clients/{client_id:int}", get_client, methods=["GET"]),
    Route("/clients/{client_id:int}/phones/{phone_id:int}/consent", set_phone_consent, methods=["POST"]),
    Route("/cases", create_case, methods=["POST"]),
    Route("/cases", list_cases, methods=["GET"]),
    Route("/cases/{case_id:int}", get_case, methods=["GET"]),
    Route("/cases/{case_id:int}/transcript", case_transcript, methods=["GET"]),
    Route("/cases/{case_id:int}/notes", case_notes, methods=["GET"]),
    Route("/cases/{case_id:int}/documents", case_documents, methods=["GET"]),
    Route("/assignments", create_assignment, methods=["POST"]),
    Route("/assignments", list_assignments, methods=["GET"]),
    Route("/assignments/{assignment_id:int}", get_assignment, methods=["GET"]),
    Route("/messages", send_message, methods=["POST"]),
    Route("/messages/{message_id:int}", get_message, methods=["GET"]),
    Route("/messages/{message_id:int}", cancel_message, methods=["DELETE"]),
    Route("/queue", list_queue, methods=["GET"]),
    Route("/messages/{message_id:int}/links", add_message_link, methods=["POST"]),
    Route("/messages/{message_id:int}/links/{case_id:int}", remove_message_link, methods=["DELETE"]),
    Route("/media/{media_id:int}", get_media, methods=["GET"]),
    Route("/alerts", list_alerts, methods=["GET"]),
    Route("/alerts/{alert_id:int}/dismiss", dismiss_alert, methods=["POST"]),
    Route("/events", events, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/{rest:path}", not_found),
]
