"""The client phone (development mode with the simulator only): play a client texting in.

Replies go through the simulator to the real webhook route, signed like Twilio signs them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tortoise.expressions import Q

from inbox.models import ClientPhone, Direction, Message, MessageStatus
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services.errors import ValidationFailed
from inbox.web import checked_form, is_htmx, render, require_staff

DELIVERED_TO_PHONE = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PARTIALLY_DELIVERED]


async def phone_index(request: Request) -> Response:
    await require_staff(request)
    phones = await ClientPhone.all().order_by("client__name").prefetch_related("client")
    return render(request, "dev/phone_index.html", {"phones": phones, "number": "", "error": None})


async def phone_open(request: Request) -> Response:
    await require_staff(request)
    form = await checked_form(request)
    raw = str(form.get("number", ""))
    try:
        number = normalise(raw)
    except InvalidPhoneNumber as exc:
        phones = await ClientPhone.all().order_by("client__name").prefetch_related("client")
        return render(request, "dev/phone_index.html", {"phones": phones, "number": raw, "error": str(exc)}, status_code=422)
    return RedirectResponse(f"/dev/phone/{number}", status_code=303)


async def _screen(request: Request, number: str, body: str = "", error: str | None = None, status_code: int = 200) -> Response:
    # The phone shows what reached it: the client's own texts, and ours once Twilio sent them.
    reached = Q(direction=Direction.INBOUND) | Q(status__in=DELIVERED_TO_PHONE)
    messages = await Message.filter(reached, conversation__phone=number).order_by("-id").limit(50)
    template = "dev/_phone_screen.html" if is_htmx(request) and request.method == "GET" else "dev/phone.html"
    context = {"number": number, "messages": list(reversed(messages)), "body": body, "error": error}
    return render(request, template, context, status_code=status_code)


def _number_of(request: Request) -> str:
    try:
        return normalise(request.path_params["number"])
    except InvalidPhoneNumber as exc:
        raise ValidationFailed(str(exc)) from None


async def phone_screen(request: Request) -> Response:
    await require_staff(request)
    return await _screen(request, _number_of(request))


async def phone_reply(request: Request) -> Response:
    await require_staff(request)
    number = _number_of(request)
    form = await checked_form(request)
    body = str(form.get("body", ""))
    if not body.strip():
        return await _screen(request, number, body, "Type a reply first.", status_code=422)
    channel = request.app.state.channel
    response = await request.app.state.provider.send_inbound(number, channel.from_number, body)
    if response.status_code != 200:
        return await _screen(request, number, body, f"The webhook answered {response.status_code}.", status_code=502)
    return RedirectResponse(f"/dev/phone/{number}", status_code=303)


routes = [
    Route("/dev/phone", phone_index, methods=["GET"]),
    Route("/dev/phone", phone_open, methods=["POST"]),
    Route("/dev/phone/{number}", phone_screen, methods=["GET"]),
    Route("/dev/phone/{number}", phone_reply, methods=["POST"]),
]
