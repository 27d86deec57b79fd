"""One text in full: its status timeline (Prime's "Message Status") and the cases it is filed on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import AttemptOutcome, Case
from inbox.routes.guards import record_id
from inbox.services import conversations, linking, messaging, visibility
from inbox.services.errors import ServiceError
from inbox.web import checked_form, render, require_staff

# What each attempt to hand a text to Twilio came to, for the message page.
OUTCOME_WORDS = {
    AttemptOutcome.ACCEPTED: "Twilio took it",
    AttemptOutcome.RETRY: "Not taken — tried again later",
    AttemptOutcome.UNKNOWN: "No answer — Twilio is asked before it is sent again",
    AttemptOutcome.FAILED: "Failed",
}


async def _page(request: Request, message_id: int, error: str | None = None, status_code: int = 200) -> Response:
    staff = await require_staff(request)
    message = await messaging.get_message_for(staff, message_id)
    await message.fetch_related("sent_by", "case", "links__case", "attempts")
    visible = await visibility.visible_case_ids(staff)
    links = [link for link in message.links if visible is None or link.case_id in visible]
    linked = {link.case_id for link in links}
    choices = Case.all() if visible is None else Case.filter(id__in=list(visible))
    candidates = [c for c in await choices.order_by("-created_at").limit(200) if c.id not in linked]
    # The texter's own cases come first; another client's case is offered apart and never preselected.
    own_clients = {client.id for client in await conversations.clients_of_phone(staff, message.conversation.phone)}
    context = {
        "message": message,
        "links": links,
        "timeline": messaging.timeline_of(message),
        "attempts": sorted(message.attempts, key=lambda attempt: (attempt.at, attempt.id)),
        "outcome_words": OUTCOME_WORDS,
        "own_choices": [c for c in candidates if c.client_id in own_clients],
        "other_choices": [c for c in candidates if c.client_id not in own_clients],
        "error": error,
    }
    return render(request, "messages/detail.html", context, status_code=status_code)


async def message_page(request: Request) -> Response:
    return await _page(request, request.path_params["message_id"])


async def add_link(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    message_id = request.path_params["message_id"]
    case_id = record_id(form.get("case_id"))
    if case_id is None:
        return await _page(request, message_id, "Choose a case.", status_code=422)
    try:
        await linking.add_link(request.app.state.bus, staff, message_id, case_id)
    except ServiceError as exc:
        return await _page(request, message_id, exc.message, status_code=exc.status)
    return RedirectResponse(f"/messages/{message_id}", status_code=303)


async def remove_link(request: Request) -> Response:
    staff = await require_staff(request)
    await checked_form(request)
    message_id, case_id = request.path_params["message_id"], request.path_params["case_id"]
    await linking.remove_link(request.app.state.bus, staff, message_id, case_id)
    return RedirectResponse(f"/messages/{message_id}", status_code=303)


routes = [
    Route("/messages/{message_id:int}", message_page, methods=["GET"]),
    Route("/messages/{message_id:int}/links", add_link, methods=["POST"]),
    Route("/messages/{message_id:int}/links/{case_id:int}/delete", remove_link, methods=["POST"]),
]
