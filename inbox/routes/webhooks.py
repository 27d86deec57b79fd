"""Twilio's webhooks: validate the signature, store the raw payload, then process it."""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from inbox.services import media, messaging
from inbox.sms.base import parse_inbound, parse_status

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def signed_url(request: Request) -> str:
    """The URL Twilio signed: our public base + the raw path and query (a TLS proxy changes request.url)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    base = request.app.state.settings.public_url
    return f"{base}{request.scope.get('root_path', '')}{request.url.path}" + (f"?{query}" if query else "")


async def _validated_params(request: Request) -> dict[str, str] | None:
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not request.app.state.provider.validate_webhook(signed_url(request), params, signature):
        log.warning("Refused a webhook to %s with a missing or wrong signature", request.url.path)
        return None
    return params


def forbidden() -> Response:
    return PlainTextResponse("Invalid or missing X-Twilio-Signature.", status_code=403)


async def inbound_message(request: Request) -> Response:
    params = await _validated_params(request)
    if params is None:
        return forbidden()
    payload = await messaging.store_webhook(
        "message", params, request.headers.get("I-Twilio-Idempotency-Token")
    )
    text = parse_inbound(params)
    message = await messaging.record_inbound(request.app.state.bus, text, payload)
    # Attachments are downloaded after the answer: Twilio gives the webhook 15 seconds, not the downloads.
    fetch = None
    if message is not None and text.media:
        state = request.app.state
        fetch = BackgroundTask(media.fetch_pending_for_message, state.provider, state.settings.media_dir, state.bus, message.id)
    return Response(EMPTY_TWIML, media_type="text/xml", background=fetch)


async def status_callback(request: Request) -> Response:
    params = await _validated_params(request)
    if params is None:
        return forbidden()
    payload = await messaging.store_webhook("status", params, request.headers.get("I-Twilio-Idempotency-Token"))
    await messaging.record_status(request.app.state.bus, parse_status(params), payload)
    return Response(status_code=200)


routes = [
    Route("/webhooks/twilio/messages", inbound_message, methods=["POST"]),
    Route("/webhooks/twilio/status", status_callback, methods=["POST"]),
]
