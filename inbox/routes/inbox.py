"""The inbox: conversation list, threads, and sending from a thread."""

from __future__ import annotations

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.phones import is_phone_number
from inbox.routes.guards import record_id
from inbox.services import consent, linking, media, messaging, organisation, visibility
from inbox.services import conversations as convo
from inbox.services.errors import ServiceError, ValidationFailed
from inbox.services.messaging import SendRequest
from inbox.web import checked_form, is_htmx, render, require_staff, send_after


def _filter_of(request: Request) -> str:
    name = request.query_params.get("filter", "all")
    return name if name in convo.FILTERS else "all"


async def home(request: Request) -> Response:
    return await _inbox_page(request, conversation_id=None)


async def conversation_page(request: Request) -> Response:
    return await _inbox_page(request, conversation_id=request.path_params["conversation_id"])


async def _inbox_page(request: Request, conversation_id: int | None) -> Response:
    staff = await require_staff(request)
    filter_name = _filter_of(request)
    search = request.query_params.get("q", "")
    thread = await thread_context(request, conversation_id) if conversation_id is not None else None
    # Beside a conversation the list comes after the page (_conversation_list.html): the thread shows sooner.
    rows = None if thread is not None else await convo.inbox_rows(staff, filter_name, search)
    context: dict[str, object] = {"rows": rows, "filter": filter_name, "q": search, "thread": thread}
    return render(request, "inbox/index.html", context)


async def thread_context(
    request: Request, conversation_id: int, body: str = "", error: str | None = None
) -> dict[str, object]:
    staff = await require_staff(request)
    conversation = await messaging.conversation_for(staff, conversation_id)
    messages, has_older = await convo.thread_page(conversation)
    # Reading a page never writes: an unread thread asks its browser to POST …/read (_thread.html).
    unread = await convo.unread_for(staff, [conversation.id])
    clients = await convo.clients_of_phone(staff, conversation.phone)
    return {
        # A number on no client record may be a staff member's own mobile: said so, never offered for linking.
        "staff_owner": None if clients else await convo.staff_with_mobile(conversation.phone),
        "conversation": conversation,
        "messages": messages,
        "has_older": has_older,
        "scheduled": await convo.scheduled_texts(conversation),
        "unread": unread.get(conversation.id, 0),
        "thread_items": await consent.thread_items(staff, conversation, messages, has_older),
        "clients": clients,
        "consents": await consent.phone_consents([phone for client in clients for phone in client.phones]),
        "visible_cases": await visibility.visible_case_ids(staff),
        "char_limit": await organisation.text_limit(),
        # Said above the composer (which hides) before anyone writes a text that cannot go; live on a change.
        "refusal": await consent.refusal_at_send_to(conversation.phone),
        "linkable": is_phone_number(conversation.phone),  # only a phone number can join a client's record
        "body": body,
        "error": error,
    }


async def conversation_list(request: Request) -> Response:
    staff = await require_staff(request)
    filter_name = _filter_of(request)
    search = request.query_params.get("q", "")
    rows = await convo.inbox_rows(staff, filter_name, search)
    return render(request, "inbox/_conversation_list.html", {"rows": rows, "filter": filter_name, "q": search})


async def thread_pane(request: Request) -> Response:
    context = await thread_context(request, request.path_params["conversation_id"])
    return render(request, "inbox/_thread.html", {"thread": context})


async def older_messages(request: Request) -> Response:
    staff = await require_staff(request)
    conversation = await messaging.conversation_for(staff, request.path_params["conversation_id"])
    before = int_or_none(request.query_params.get("before"))
    messages, has_older = await convo.thread_page(conversation, before_id=before)
    context = {
        "conversation": conversation,
        "messages": messages,
        "has_older": has_older,
        "thread_items": await consent.thread_items(staff, conversation, messages, has_older, before_id=before),
        "visible_cases": await visibility.visible_case_ids(staff),
    }
    # Without `before` this is the newest page as a whole list: what a reconnecting tab re-fetches.
    return render(request, "inbox/_older.html" if before else "inbox/_messages.html", context)


async def composer_refusal(request: Request) -> Response:
    """Why no text may go to the conversation's number now (empty when one may): a reconnecting tab re-fetches it."""
    staff = await require_staff(request)
    conversation = await messaging.conversation_for(staff, request.path_params["conversation_id"])
    refusal = await consent.refusal_at_send_to(conversation.phone)
    context = {"conversation_id": conversation.id, "refusal": refusal}
    return render(request, "inbox/_composer_refusal.html", context)


async def scheduled_strip(request: Request) -> Response:
    """The thread's texts waiting for their time, by when they go: what a reconnecting tab re-fetches."""
    staff = await require_staff(request)
    conversation = await messaging.conversation_for(staff, request.path_params["conversation_id"])
    context = {
        "conversation": conversation,
        "scheduled": await convo.scheduled_texts(conversation),
        "visible_cases": await visibility.visible_case_ids(staff),
    }
    return render(request, "inbox/_scheduled.html", context)


async def send_from_thread(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    conversation_id = request.path_params["conversation_id"]
    body = str(form.get("body", ""))
    case_id = int_or_none(form.get("case_id"))
    try:
        attachments = await attachments_of(form)
        request_ = SendRequest(body=body, conversation_id=conversation_id, case_id=case_id, attachments=attachments)
        message = await messaging.send_text(request.app.state.outbox, staff, request_)
    except ServiceError as exc:
        error = exc.fields.get("body") or exc.fields.get("attachment") or exc.message
        context = await thread_context(request, conversation_id, body=body, error=error)
        return composer_or_page(request, context, status_code=exc.status)
    context = await thread_context(request, conversation_id)
    return send_after(composer_or_page(request, context), request.app.state.outbox, message)


async def attachments_of(form: FormData) -> tuple[media.Attachment, ...]:
    """The composer's file, if one was chosen; read no further than the limit allows."""
    upload = form.get("attachment")
    if not isinstance(upload, UploadFile):
        return ()
    try:
        content = await upload.read(media.MAX_MEDIA_BYTES + 1)
    finally:
        await upload.close()
    if not content and not upload.filename:  # the file input was left empty
        return ()
    if len(content) > media.MAX_MEDIA_BYTES:
        message = f"Attachments are limited to {media.MAX_MEDIA_BYTES // (1024 * 1024)} MB; choose a smaller file."
        raise ValidationFailed(message, {"attachment": message})
    return (media.Attachment(content=content, filename=upload.filename or ""),)


def composer_or_page(request: Request, thread: dict[str, object], status_code: int = 200) -> Response:
    """htmx gets a fresh composer (the bubble arrives by the event stream); a plain form post, the page.

    Refusals keep their status (422, 409); base.html tells htmx to swap 4xx answers, so the
    composer comes back with the typed text and the reason.
    """
    if is_htmx(request):
        return render(request, "inbox/_composer.html", {"thread": thread}, status_code=status_code)
    return render(request, "inbox/thread_page.html", {"thread": thread}, status_code=status_code)


async def mark_read(request: Request) -> Response:
    """htmx posts this as a thread opens or a text arrives in it (204; the row updates by the event
    stream); without JavaScript the thread's "Mark as read" button does, and comes back to the thread."""
    staff = await require_staff(request)
    await checked_form(request)
    conversation = await messaging.conversation_for(staff, request.path_params["conversation_id"])
    await messaging.mark_read(request.app.state.bus, staff, conversation)
    if is_htmx(request):
        return Response(status_code=204)
    return RedirectResponse(f"/conversations/{conversation.id}", status_code=303)


async def link_to_case(request: Request) -> Response:
    """An unmatched number joins the client of the case named; its past texts are filed on the case.
    Refused (the pane shows why, with what was typed) for a number already on a client record."""
    staff = await require_staff(request)
    form = await checked_form(request)
    conversation_id = request.path_params["conversation_id"]
    case_number = str(form.get("case_number", ""))
    try:
        await linking.link_unmatched(request.app.state.bus, staff, conversation_id, case_number)
    except ServiceError as exc:
        thread = await thread_context(request, conversation_id)
        thread["link_error"] = exc.fields.get("case_number") or exc.message
        thread["case_number"] = case_number
        rows = await convo.inbox_rows(staff, "all", "")  # the whole page again, its list included
        context = {"rows": rows, "filter": "all", "q": "", "thread": thread}
        return render(request, "inbox/index.html", context, status_code=exc.status)
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


def int_or_none(value: object) -> int | None:
    """An id from a query or a form; None when it is not one the database can hold."""
    return record_id(value)


routes = [
    Route("/", home),
    Route("/conversations", conversation_list),
    Route("/conversations/{conversation_id:int}", conversation_page),
    Route("/conversations/{conversation_id:int}/thread", thread_pane),
    Route("/conversations/{conversation_id:int}/older", older_messages),
    Route("/conversations/{conversation_id:int}/refusal", composer_refusal),
    Route("/conversations/{conversation_id:int}/scheduled", scheduled_strip),
    Route("/conversations/{conversation_id:int}/messages", send_from_thread, methods=["POST"]),
    Route("/conversations/{conversation_id:int}/read", mark_read, methods=["POST"]),
    Route("/conversations/{conversation_id:int}/link", link_to_case, methods=["POST"]),
]
