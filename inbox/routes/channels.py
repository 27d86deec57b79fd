"""Sending numbers (administrators): list, create and edit them, the webhook addresses to paste into
Twilio, and a test text."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.crypto import SecretBox, SecretUnreadable, last_four
from inbox.models import AutoReplyMode, Channel, Message, Office, Staff
from inbox.routes.guards import record_id
from inbox.services import channels, system_texts
from inbox.services.channels import DAYS, ChannelForm
from inbox.services.errors import ServiceError
from inbox.web import checked_form, render, require_admin, send_after

WEBHOOK_PATHS = (
    ("A message comes in (Messaging)", "/webhooks/twilio/messages"),
    (
        "Status callback (sent by the app with every text; for a Messaging Service, its delivery status callback)",
        "/webhooks/twilio/status",
    ),
    ("A call comes in (Voice)", "/webhooks/twilio/voice"),
)
AUTO_REPLY_CHOICES = (
    (AutoReplyMode.OFF.value, "Off"),
    (AutoReplyMode.ALWAYS.value, "Answer every text"),
    (AutoReplyMode.OUTSIDE_HOURS.value, "Answer only outside office hours"),
)


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "set up sending numbers")


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def webhook_urls(request: Request) -> list[tuple[str, str]]:
    base = request.app.state.settings.public_url
    return [(purpose, base + path) for purpose, path in WEBHOOK_PATHS]


def _box(request: Request) -> SecretBox:
    settings = request.app.state.settings
    return SecretBox(settings.secret_key, settings.secret_key_old)


def credentials_locked(request: Request, channel: Channel | None) -> bool:
    """The simulator's and the environment's own channel take their credentials from the app, not the form."""
    if channel is None:
        return False
    return channel.is_simulator or (
        channel.id == request.app.state.channel.id and not request.app.state.settings.uses_simulator
    )


def token_hint(request: Request, channel: Channel) -> str:
    """How the token is shown again: never in full."""
    if channel.is_simulator:
        return "The simulator's own (no Twilio account)"
    if channel.auth_token_encrypted:
        try:
            return "Stored, encrypted: " + last_four(_box(request).decrypt(channel.auth_token_encrypted))
        except SecretUnreadable:
            return "Stored, but INBOX_SECRET_KEY has changed since: enter the token again"
    settings = request.app.state.settings
    if channel.account_sid == settings.twilio_account_sid and settings.twilio_auth_token:
        return "From the environment (TWILIO_AUTH_TOKEN): " + last_four(str(settings.twilio_auth_token))
    return "Not set: texts cannot be sent from this number until it is entered"


def _form_of(form: FormData) -> ChannelForm:
    def text(name: str) -> str:
        return str(form.get(name) or "")

    return ChannelForm(
        label=text("label"),
        office_id=text("office_id"),
        account_sid=text("account_sid"),
        auth_token=text("auth_token"),
        from_number=text("from_number"),
        messaging_service_sid=text("messaging_service_sid"),
        throughput=text("throughput"),
        help_text=text("help_text"),
        twilio_handles_opt_out=form.get("twilio_handles_opt_out") == "on",
        auto_reply_mode=text("auto_reply_mode"),
        auto_reply_text=text("auto_reply_text"),
        office_hours={day: (text(f"{day}_opens"), text(f"{day}_closes")) for day, _ in DAYS},
        time_zone=text("time_zone"),
        call_response=text("call_response"),
    )


async def _page(
    request: Request,
    channel: Channel | None,
    form: ChannelForm,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    context: dict[str, Any] = {
        "channel": channel,
        "form": form,
        "errors": errors or {},
        "locked": credentials_locked(request, channel),
        "token_hint": token_hint(request, channel) if channel is not None else None,
        "token_typed": bool(form.auth_token.strip()),
        "env_account_sid": request.app.state.settings.twilio_account_sid,
        "offices": await Office.all().order_by("name"),
        "days": DAYS,
        "auto_reply_choices": AUTO_REPLY_CHOICES,
        "time_zones": time_zones(),
        "webhook_urls": webhook_urls(request),
        "test": {"to": "", "body": "", "errors": {}, "message": None, **extra.pop("test", {})},
        **extra,
    }
    return render(request, "admin/channels_edit.html", context, status_code=status_code)


async def channel_list(request: Request) -> Response:
    staff = await _admin(request)
    rows = [(channel, token_hint(request, channel)) for channel in await channels.list_channels(staff)]
    return render(request, "admin/channels.html", {"rows": rows, "webhook_urls": webhook_urls(request)})


async def channel_new(request: Request) -> Response:
    await _admin(request)
    return await _page(request, None, ChannelForm())


async def channel_create(request: Request) -> Response:
    staff = await _admin(request)
    form = _form_of(await checked_form(request))
    try:
        channel = await channels.save_channel(
            staff,
            _box(request),
            form,
            env_account_sid=request.app.state.settings.twilio_account_sid,
            bus=request.app.state.bus,
        )
    except ServiceError as exc:
        return await _page(request, None, form, exc.fields, status_code=exc.status)
    return RedirectResponse(f"/admin/channels/{channel.id}?saved=1", status_code=303)


async def _channel(request: Request, staff: Staff) -> Channel:
    raw = request.path_params["channel_id"]
    channel = await channels.get_channel(staff, raw)
    if channel is None:
        raise HTTPException(404, "No sending number has this id.")
    return channel


async def channel_page(request: Request) -> Response:
    staff = await _admin(request)
    channel = await _channel(request, staff)
    tested = request.query_params.get("tested", "")
    message_id = record_id(tested)
    message = await Message.get_or_none(id=message_id, purpose="test") if message_id is not None else None
    return await _page(
        request, channel, ChannelForm.of(channel), saved="saved" in request.query_params, test={"message": message}
    )


async def channel_update(request: Request) -> Response:
    staff = await _admin(request)
    channel = await _channel(request, staff)
    form = _form_of(await checked_form(request))
    try:
        await channels.save_channel(
            staff,
            _box(request),
            form,
            channel,
            credentials_locked=credentials_locked(request, channel),
            env_account_sid=request.app.state.settings.twilio_account_sid,
            bus=request.app.state.bus,
        )
    except ServiceError as exc:
        await channel.refresh_from_db()  # the page describes the stored channel, the form what was typed
        return await _page(request, channel, form, exc.fields, status_code=exc.status)
    return RedirectResponse(f"/admin/channels/{channel.id}?saved=1", status_code=303)


async def channel_test(request: Request) -> Response:
    staff = await _admin(request)
    channel = await _channel(request, staff)
    posted = await checked_form(request)
    to, body = str(posted.get("to") or ""), str(posted.get("body") or "")
    try:
        message = await system_texts.send_test_text(staff, channel, to, body)
    except ServiceError as exc:
        errors = dict(exc.fields)
        if exc.status == 409 or not errors:  # a consent rule refused: its reason, in full, by the number
            errors["to"] = exc.message
        test = {"to": to, "body": body, "errors": errors}
        return await _page(request, channel, ChannelForm.of(channel), status_code=exc.status, test=test)
    redirect = RedirectResponse(f"/admin/channels/{channel.id}?tested={message.id}#test", status_code=303)
    return send_after(redirect, request.app.state.outbox, message)


routes = [
    Route("/admin/channels", channel_list, methods=["GET"]),
    Route("/admin/channels", channel_create, methods=["POST"]),
    Route("/admin/channels/new", channel_new, methods=["GET"]),
    Route("/admin/channels/{channel_id:int}", channel_page, methods=["GET"]),
    Route("/admin/channels/{channel_id:int}", channel_update, methods=["POST"]),
    Route("/admin/channels/{channel_id:int}/test", channel_test, methods=["POST"]),
]
