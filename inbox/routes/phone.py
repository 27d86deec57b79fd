"""The client phone (development mode with the simulator only): play a client texting in.

Replies go through the simulator to the real webhook route, signed like Twilio signs them.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tortoise.expressions import Q

from inbox.models import ClientPhone, Direction, Message, MessageStatus
from inbox.phones import InvalidPhoneNumber, normalise
from inbox.services.errors import ValidationFailed
from inbox.web import checked_form, is_htmx, render, require_staff

DELIVERED_TO_PHONE = [
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.PARTIALLY_DELIVERED,
]


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
        return render(
            request, "dev/phone_index.html", {"phones": phones, "number": raw, "error": str(exc)}, status_code=422
        )
    return RedirectResponse(f"/dev/phone/{number}", status_code=303)


async def _screen(
    request: Request, number: str, body: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    # The phone shows what reached it: the client's own texts, and ours once Twilio sent them.
    reached = Q(direction=Direction.INBOUND) | Q(status__in=DELIVERED_TO_PHONE)
    messages = (
        await Message.filter(reached, conversation__phone=number).order_by("-id").limit(50).prefetch_related("media")
    )
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


# Photos the client phone "sends" wait here for the simulator to fetch, like Twilio's media store.
PHONE_MEDIA_KEPT = 50


async def phone_reply(request: Request) -> Response:
    await require_staff(request)
    number = _number_of(request)
    form = await checked_form(request)
    body = str(form.get("body", ""))
    upload = form.get("photo")
    media = await _keep_upload(request, upload) if isinstance(upload, UploadFile) else []
    if not body.strip() and not media:
        return await _screen(request, number, body, "Type a reply or choose a photo first.", status_code=422)
    channel = request.app.state.channel
    response = await request.app.state.provider.send_inbound(number, channel.from_number, body, media=media)
    if response.status_code != 200:
        return await _screen(request, number, body, f"The webhook answered {response.status_code}.", status_code=502)
    return RedirectResponse(f"/dev/phone/{number}", status_code=303)


async def _keep_upload(request: Request, upload: UploadFile) -> list[tuple[str, str]]:
    """Keeps the file in memory under an unguessable name and answers its MediaUrl and type."""
    try:
        content = await upload.read() if upload.filename else b""
    finally:
        await upload.close()
    if not content:
        return []  # the file input was left empty
    kept: OrderedDict[str, tuple[bytes, str]] = request.app.state.__dict__.setdefault("phone_media", OrderedDict())
    token = secrets.token_urlsafe(24)
    content_type = upload.content_type or "application/octet-stream"
    kept[token] = (content, content_type)
    while len(kept) > PHONE_MEDIA_KEPT:
        kept.popitem(last=False)
    return [(f"{request.app.state.settings.public_url}/dev/phone/media/{token}", content_type)]


async def phone_media(request: Request) -> Response:
    """What the simulator fetches for an MMS the client phone sent (no session: Twilio's storage has none)."""
    kept = request.app.state.__dict__.get("phone_media", {})
    item = kept.get(request.path_params["token"])
    if item is None:
        return Response("No such media.", status_code=404, media_type="text/plain")
    content, content_type = item
    return Response(content, media_type=content_type, headers={"X-Content-Type-Options": "nosniff"})


routes = [
    Route("/dev/phone", phone_index, methods=["GET"]),
    Route("/dev/phone", phone_open, methods=["POST"]),
    Route("/dev/phone/{number}", phone_screen, methods=["GET"]),
    Route("/dev/phone/{number}", phone_reply, methods=["POST"]),
    Route("/dev/phone/media/{token}", phone_media, methods=["GET"]),
]
