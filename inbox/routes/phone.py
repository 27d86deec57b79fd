"""The client phone (development mode with the simulator only): play a client texting in.

Replies go through the simulator to the real webhook route, signed like Twilio signs them. An
advocate plays only their own clients' numbers; a number they may not play answers 404
(inbox.services.client_phone has the rule).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.phones import InvalidPhoneNumber
from inbox.services import client_phone
from inbox.services.errors import NotFound, ValidationFailed
from inbox.web import checked_form, is_htmx, render, require_staff


async def phone_index(request: Request) -> Response:
    staff = await require_staff(request)
    return await _index(request, staff)


async def _index(
    request: Request, staff: Staff, number: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    phones = await client_phone.playable_phones(staff)
    context = {"phones": phones, "number": number, "error": error, "any_number": staff.sees_everything}
    return render(request, "dev/phone_index.html", context, status_code=status_code)


async def phone_open(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    raw = str(form.get("number", ""))
    try:
        number = client_phone.sender_to_play(staff, raw)
        await client_phone.check_may_play(staff, number)
    except InvalidPhoneNumber as exc:
        return await _index(request, staff, raw, str(exc), status_code=422)
    except NotFound as exc:
        return await _index(request, staff, raw, exc.message, status_code=404)
    return RedirectResponse(f"/dev/phone/{number}", status_code=303)


async def _screen(
    request: Request, number: str, body: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    messages = await client_phone.texts_on_phone(number)
    template = "dev/_phone_screen.html" if is_htmx(request) and request.method == "GET" else "dev/phone.html"
    context = {"number": number, "messages": messages, "body": body, "error": error}
    return render(request, template, context, status_code=status_code)


def _number_of(request: Request, staff: Staff) -> str:
    try:
        return client_phone.sender_to_play(staff, request.path_params["number"])
    except InvalidPhoneNumber as exc:
        raise ValidationFailed(str(exc)) from None


async def phone_screen(request: Request) -> Response:
    staff = await require_staff(request)
    number = _number_of(request, staff)
    await client_phone.check_may_play(staff, number)
    return await _screen(request, number)


# Photos the client phone "sends" wait here for the simulator to fetch, like Twilio's media store.
PHONE_MEDIA_KEPT = 50


async def phone_reply(request: Request) -> Response:
    staff = await require_staff(request)
    number = _number_of(request, staff)
    form = await checked_form(request)
    await client_phone.check_may_play(staff, number)
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
