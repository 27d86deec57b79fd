"""Twilio's webhooks: find the channel, validate the signature with its token, then hand the form and
that channel to the service that owns the use case, and turn its outcome into the answer.

Each webhook names its account (`AccountSid`) and our number (`To` for texts and calls, `From` for
status callbacks) or Messaging Service. The account's channels are tried, the one named first: a
signature any of them validates is genuine (a Messaging Service answers from any number of its pool,
so `To` may be no channel's from-number). An unknown account, or a signature none validates, is
answered 403 and nothing is stored.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.background import BackgroundTasks
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from inbox.models import Channel
from inbox.routes.guards import printable, unstorable
from inbox.services import channels, messaging
from inbox.services.errors import ValidationFailed
from inbox.services.ingest import Ingest, run_follow_ups
from inbox.services.providers import ProviderRegistry

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
URLENCODED = "application/x-www-form-urlencoded"
MAX_FIELDS = 1000  # as Starlette's own form parser allows


def signed_url(request: Request) -> str:
    """The URL Twilio signed: our public base + the raw path and query (a TLS proxy changes request.url)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    base = request.app.state.settings.public_url
    return f"{base}{request.scope.get('root_path', '')}{request.url.path}" + (f"?{query}" if query else "")


async def _verified(request: Request, our_number_field: str) -> tuple[dict[str, str], Channel] | None:
    """The form and the channel it is for, when a channel of the named account signed it; else None."""
    params = await posted_params(request)
    signature = request.headers.get("X-Twilio-Signature", "")
    registry: ProviderRegistry = request.app.state.providers
    url = signed_url(request)
    account, ours = params.get("AccountSid", ""), params.get(our_number_field, "")
    service = params.get("MessagingServiceSid") or None
    # This process's copy of the channels first; the database before refusing (a channel just added, a
    # token just changed by another process).
    candidates: list[Channel] = []
    for cached in (True, False):
        candidates = await channels.channels_for_webhook(account, ours, service, cached=cached)
        if signature and any(registry.validate_webhook(channel, url, params, signature) for channel in candidates):
            refuse_unstorable(params)
            return params, candidates[0]
    reason = (
        "a wrong signature" if signature and candidates else "no signature" if not signature else "an unknown account"
    )
    log.warning("Refused a webhook to %s with %s", request.url.path, reason)
    return None


async def posted_params(request: Request) -> dict[str, str]:
    """The form Twilio posted (a repeated field: its last value). Twilio posts URL-encoded forms: read with the
    standard library's parse_qsl, as Starlette's parser reads them (latin-1 bytes, %-escapes as UTF-8, `+` a space,
    blank values kept) in a third of its time — 16 against 47 µs for an inbound text's 20 fields, a tenth of the
    web's time for a webhook under load (NOTES.md). Anything else goes through Starlette's parser."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != URLENCODED:
        form = await request.form()
        return {key: str(value) for key, value in form.multi_items()}
    body = (await request.body()).decode("latin-1")
    try:
        return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError as error:  # more fields than any webhook of Twilio's has
        raise HTTPException(400, f"This form has more than {MAX_FIELDS} fields.") from error


def refuse_unstorable(params: dict[str, str]) -> None:
    """A signed webhook whose text the database cannot store (a NUL byte) is refused with a 422, not a 500."""
    refused = {printable(name): reason for name, value in params.items() if (reason := unstorable(name + value))}
    if refused:
        log.warning("Refused a signed webhook with text that cannot be stored in %s", ", ".join(refused))
        raise ValidationFailed(f"This webhook's {', '.join(refused)} cannot be stored.", refused)


def forbidden() -> Response:
    return PlainTextResponse("Invalid or missing X-Twilio-Signature.", status_code=403)


def idempotency_token(request: Request) -> str | None:
    return request.headers.get("I-Twilio-Idempotency-Token")


async def inbound_message(request: Request) -> Response:
    verified = await _verified(request, "To")
    if verified is None:
        return forbidden()
    params, _ = verified
    ingest: Ingest = request.app.state.ingest
    # Answered once stored: processed before the answer when nothing else waits, else right after it.
    follow_ups = await ingest.accept(params, idempotency_token(request))
    # Our answers and the attachments go after the answer: Twilio gives the webhook 15 seconds, and
    # must never wait on our own call to Twilio.
    after = BackgroundTasks()
    if follow_ups:
        after.add_task(run_follow_ups, request.app.state.outbox, follow_ups)
    return Response(EMPTY_TWIML, media_type="text/xml", background=after)


async def status_callback(request: Request) -> Response:
    verified = await _verified(request, "From")
    if verified is None:
        return forbidden()
    params, _ = verified
    await messaging.receive_status(request.app.state.bus, params, idempotency_token(request))
    return Response(status_code=200)


async def voice_call(request: Request) -> Response:
    """Prime's "Call Response": the channel's words, spoken (TwiML <Say>) to whoever calls the number."""
    verified = await _verified(request, "To")
    if verified is None:
        return forbidden()
    params, channel = verified
    payload = await messaging.store_webhook("voice", params, idempotency_token(request))
    return Response(await channels.answer_call(channel, payload), media_type="text/xml")


routes = [
    Route("/webhooks/twilio/messages", inbound_message, methods=["POST"]),
    Route("/webhooks/twilio/status", status_callback, methods=["POST"]),
    Route("/webhooks/twilio/voice", voice_call, methods=["POST"]),
]
