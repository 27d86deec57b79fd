"""Twilio's webhooks as Twilio sends them: its form fields, signed with the account's auth token over the
URL it was given (our public URL), posted to the app; and a client's text stored through them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from inbox.models import Message

from .config import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL
from .records import MARIA

INBOUND = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"


def new_sid(prefix: str = "SM") -> str:
    """A message SID never used before (MM for a text with attachments, as Twilio names them)."""
    return prefix + secrets.token_hex(16)


def numbered_sid(n: int) -> str:
    """The test's n-th message SID: one it can name again later."""
    return "SM" + f"{n:032x}"


def signed_post_args(path: str, params: dict[str, str], token: str = AUTH_TOKEN, query: str = "") -> dict[str, Any]:
    """What Twilio would send: the form, and the signature over our public URL."""
    url = f"{PUBLIC_URL}{path}" + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url, params)
    return {"url": path + (f"?{query}" if query else ""), "data": params, "headers": {"X-Twilio-Signature": signature}}


def inbound_params(sid: str, from_number: str, body: str, **extra: str) -> dict[str, str]:
    """A text to our number, as Twilio posts it; `extra` adds fields or replaces them."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_number,
        "To": FROM_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def inbound_params_for(
    account_sid: str, to: str, sid: str, from_number: str = MARIA, body: str = "Which courtroom?", **extra: str
) -> dict[str, str]:
    """A text to another account's number (another office's channel)."""
    return {**inbound_params(sid, from_number, body, **extra), "AccountSid": account_sid, "To": to}


def mms_params(sid: str, from_number: str, body: str, media: Sequence[tuple[str, str]]) -> dict[str, str]:
    """A text with attachments: each a (MediaUrl, MediaContentType) pair."""
    extra = {"NumMedia": str(len(media))}
    for index, (url, content_type) in enumerate(media):
        extra[f"MediaUrl{index}"] = url
        extra[f"MediaContentType{index}"] = content_type
    return inbound_params(sid, from_number, body, **extra)


def status_params(sid: str, status: str, error_code: str | None = None, to: str = MARIA) -> dict[str, str]:
    """Twilio's status callback for a text we sent from our number."""
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT_SID,
        "From": FROM_NUMBER,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


def status_callback(sid: str, status: str, error_code: str | None = None, to: str = MARIA) -> dict[str, Any]:
    """The status callback signed and ready to post: `await http.post(**status_callback(sid, "sent"))`."""
    return signed_post_args(STATUS, status_params(sid, status, error_code, to))


async def post_text(
    http: httpx.AsyncClient,
    from_number: str = MARIA,
    body: str = "Which courtroom?",
    *,
    sid: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    **extra: str,
) -> httpx.Response:
    """A client's text posted to the inbound webhook as Twilio posts it (signed); the answer as it came."""
    sid = sid or new_sid("MM" if media else "SM")
    params = mms_params(sid, from_number, body, media) if media else inbound_params(sid, from_number, body)
    return await http.post(**signed_post_args(INBOUND, {**params, **extra}))


def is_empty_twiml(response: httpx.Response) -> bool:
    """The answer to every inbound text: 200 and TwiML that says nothing (replies go out through the API)."""
    return (
        response.status_code == 200
        and response.headers["content-type"].startswith("text/xml")
        and response.text.strip().endswith("<Response/>")
    )


async def text_in(
    http: httpx.AsyncClient,
    from_number: str = MARIA,
    body: str = "Which courtroom?",
    *,
    sid: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    **extra: str,
) -> Message:
    """A client's text through the signed inbound webhook, answered with empty TwiML; the stored message."""
    sid = sid or new_sid("MM" if media else "SM")
    response = await post_text(http, from_number, body, sid=sid, media=media, **extra)
    assert is_empty_twiml(response), (response.status_code, response.headers.get("content-type"), response.text)
    return await Message.get(provider_sid=sid)


async def mms_in(
    http: httpx.AsyncClient, media: Sequence[tuple[str, str]], from_number: str = MARIA, body: str = ""
) -> Message:
    """A client's text with attachments (MediaUrl, MediaContentType); the stored message."""
    return await text_in(http, from_number, body, media=media)
