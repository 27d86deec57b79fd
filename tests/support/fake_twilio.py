"""A local Twilio-compatible HTTP server for tests: Messages create, status callbacks, media.

    async with FakeTwilio(account_sid, auth_token, callback_client=app_client) as fake:
        provider = TwilioProvider(account_sid, auth_token, from_number=..., api_url=fake.base_url)
        fake.reject["+15551230000"] = 21610            # next creates to that number: HTTP 400
        fake.outcomes["+15551230003"] = [("sent", None), ("undelivered", 30003)]
        fake.add_account(other_sid, other_token)          # a second account (another office's channel)
        ...
        await fake.callbacks_done()

Shapes follow Twilio's published spec (shared/twilio/twilio_api_v2010.json, `api.v2010.account.message`)
and the error bodies `{"code", "message", "more_info", "status"}` that twilio-python turns into
TwilioRestException.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Self
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from .servers import serve_asgi

API_VERSION = "2010-04-01"
DEFAULT_OUTCOMES: list[tuple[str, int | None]] = [("sent", None), ("delivered", None)]
POOL_NUMBER = "+15005550006"  # the sender a Messaging Service "picks" from its pool

# Twilio's wording for the errors tests inject; other codes get a generic message.
ERROR_MESSAGES = {
    20003: "Authenticate",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account",  # noqa: E501 -- Twilio's own words
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21614: "'To' number is not a valid mobile number",
}


@dataclass(frozen=True)
class Callback:
    url: str
    params: dict[str, str]
    status_code: int


@dataclass(frozen=True)
class Create:
    """Who asked for a Messages create: the account in the request path and the basic-auth user."""

    path_account_sid: str
    auth_user: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class _StoredMedia:
    content: bytes
    content_type: str
    filename: str | None = None  # sent by the storage as Content-Disposition, and as the last path segment
    account_sid: str | None = None  # the account whose credentials fetch it


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str, callback_client: httpx.AsyncClient | None = None) -> None:
        self.account_sid = account_sid
        self.accounts: dict[str, str] = {account_sid: auth_token}  # account SID → auth token
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []  # form params of every create; MediaUrl as a list
        self.creates: list[Create] = []  # every create that got past authentication, with its account
        self.messages: list[dict[str, Any]] = []  # the JSON answered for each accepted create
        self.reject: dict[str, int] = {}  # To number → error code answered with HTTP 400
        self.outcomes: dict[str, list[tuple[str, int | None]]] = {}  # To number → callback story
        self.callbacks_enabled = True
        self.callback_delay = 0.0  # seconds before each status callback
        self.callbacks: list[Callback] = []  # every status callback posted, in order
        self.fail_next_with_status: int | None = None  # answer the next create with this 5xx
        self._callback_client = callback_client
        self._own_client: httpx.AsyncClient | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._callback_errors: list[BaseException] = []
        self._media: dict[str, _StoredMedia] = {}  # media SID → bytes
        self._store: dict[str, _StoredMedia] = {}  # storage key → bytes (no auth, like Twilio's CDN)
        self.deleted_media: list[str] = []  # media SIDs deleted through the API, in order
        self.media_fetches: list[str] = []  # media SIDs requested (with the right credentials or not)
        self.media_gate: asyncio.Event | None = None  # when set, media requests wait for it to open
        self._server: contextlib.AbstractAsyncContextManager[str] | None = None

    async def __aenter__(self) -> Self:
        if self._callback_client is None:
            self._own_client = httpx.AsyncClient(timeout=10)
        self._server = serve_asgi(self._app(), lifespan="off")
        self.base_url = await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in list(self._callback_tasks):
            task.cancel()
        await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        try:
            if self._server is not None:
                await self._server.__aexit__(None, None, None)
        finally:
            if self._own_client is not None:
                await self._own_client.aclose()

    async def callbacks_done(self) -> None:
        """Wait until every status callback scheduled so far has been posted; re-raise failures."""
        while self._callback_tasks:
            await asyncio.gather(*list(self._callback_tasks), return_exceptions=True)
        if self._callback_errors:
            error, self._callback_errors = self._callback_errors[0], []
            raise error

    @property
    def auth_token(self) -> str:
        """The first account's token (a test may "rotate" it, as an admin would in the console)."""
        return self.accounts[self.account_sid]

    @auth_token.setter
    def auth_token(self, token: str) -> None:
        self.accounts[self.account_sid] = token

    def add_account(self, account_sid: str, auth_token: str) -> None:
        """Another account this server accepts (its creates, callbacks and media use its own token)."""
        self.accounts[account_sid] = auth_token

    def add_media(
        self, content: bytes, content_type: str, filename: str | None = None, account_sid: str | None = None
    ) -> str:
        """A Twilio-style MediaUrl (basic auth, redirects to storage) serving `content`.

        With `filename`, the storage names the file itself (Content-Disposition and the redirect's last
        path segment), as a CDN might: a client must not trust it.
        """
        media_sid = "ME" + secrets.token_hex(16)
        account = account_sid or self.account_sid
        self._media[media_sid] = _StoredMedia(content, content_type, filename, account)
        message_sid = "MM" + secrets.token_hex(16)
        return f"{self.base_url}/{API_VERSION}/Accounts/{account}/Messages/{message_sid}/Media/{media_sid}"

    # --- the HTTP side ---------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create_message, methods=["POST"]),
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}/Media/{{media_sid}}.json",
                    self._delete_media,
                    methods=["DELETE"],
                ),
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}/Media/{{media_sid}}",
                    self._media_redirect,
                    methods=["GET"],
                ),
                Route("/media-store/{key}", self._media_content, methods=["GET"]),
                Route("/media-store/{key}/{name:path}", self._media_content, methods=["GET"]),
            ]
        )

    async def _create_message(self, request: Request) -> Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        if self.fail_next_with_status is not None:
            status, self.fail_next_with_status = self.fail_next_with_status, None
            return JSONResponse(
                {"code": 20500, "message": "Internal Server Error", "more_info": _more_info(20500), "status": status},
                status_code=status,
            )
        form = await request.form()
        params: dict[str, Any] = {key: form[key] for key in form.keys()}
        if "MediaUrl" in params:
            params["MediaUrl"] = form.getlist("MediaUrl")
        self.requests.append(params)
        credentials = basic_auth(request)
        self.creates.append(Create(request.path_params["account_sid"], credentials[0] if credentials else None, params))

        refusal = self._refusal_for(params)
        if refusal is not None:
            return twilio_error(400, refusal)
        message = self._message_json(params, request.path_params["account_sid"])
        self.messages.append(message)
        if params.get("StatusCallback") and self.callbacks_enabled:
            self._schedule_callbacks(message, str(params["StatusCallback"]))
        return JSONResponse(message, status_code=201)

    def _authorised(self, request: Request) -> bool:
        account_sid = request.path_params.get("account_sid", self.account_sid)
        if account_sid not in self.accounts:
            return False
        return basic_auth(request) == (account_sid, self.accounts[account_sid])

    def _refusal_for(self, params: dict[str, Any]) -> int | None:
        """The error code Twilio would answer for this create, if any."""
        if not params.get("To"):
            return 21604
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return 21603
        if not params.get("Body") and not params.get("MediaUrl") and not params.get("ContentSid"):
            return 21602
        return self.reject.get(str(params["To"]))

    def _message_json(self, params: dict[str, Any], account_sid: str | None = None) -> dict[str, Any]:
        account_sid = account_sid or self.account_sid
        media_urls: Sequence[str] = params.get("MediaUrl") or []
        sid = ("MM" if media_urls else "SM") + secrets.token_hex(16)
        service_sid = params.get("MessagingServiceSid")
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": params.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # With a Messaging Service the sender is chosen later, as Twilio does.
            "from": None if service_sid and not params.get("From") else params.get("From"),
            "messaging_service_sid": service_sid,
            "num_media": str(len(media_urls)),
            "num_segments": "0" if service_sid else "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service_sid else "queued",
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            "to": params["To"],
            "uri": uri,
        }

    def _schedule_callbacks(self, message: dict[str, Any], url: str) -> None:
        task = asyncio.get_running_loop().create_task(self._post_callbacks(message, url))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def _post_callbacks(self, message: dict[str, Any], url: str) -> None:
        story = self.outcomes.get(message["to"], DEFAULT_OUTCOMES)
        try:
            for status, error_code in story:
                await asyncio.sleep(self.callback_delay)
                await self._post_callback(message, url, status, error_code)
        except Exception as error:  # surfaced by callbacks_done()
            self._callback_errors.append(error)

    async def _post_callback(self, message: dict[str, Any], url: str, status: str, error_code: int | None) -> None:
        params = {
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": message["account_sid"],
            "From": message["from"] or POOL_NUMBER,
            "To": message["to"],
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        # Twilio signs the URL exactly as it was given in StatusCallback, with the account's token.
        signature = RequestValidator(self.accounts[message["account_sid"]]).compute_signature(url, params)
        client = self._callback_client or self._own_client
        assert client is not None
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
        self.callbacks.append(Callback(url=url, params=params, status_code=response.status_code))

    async def _media_redirect(self, request: Request) -> Response:
        self.media_fetches.append(request.path_params["media_sid"])
        if self.media_gate is not None:
            await self.media_gate.wait()
        if not self._authorised(request):
            return twilio_error(401, 20003)
        media = self._media.get(request.path_params["media_sid"])
        if media is None or media.account_sid != request.path_params["account_sid"]:
            return twilio_error(404, 20404, "The requested resource was not found")
        key = secrets.token_urlsafe(16)
        self._store[key] = media
        suffix = "/" + quote(media.filename, safe="") if media.filename else ""
        return RedirectResponse(f"{self.base_url}/media-store/{key}{suffix}", status_code=307)

    async def _media_content(self, request: Request) -> Response:
        media = self._store.get(request.path_params["key"])
        if media is None:
            return Response(status_code=404)
        headers = {"Content-Disposition": f'attachment; filename="{media.filename}"'} if media.filename else None
        return Response(media.content, media_type=media.content_type, headers=headers)

    async def _delete_media(self, request: Request) -> Response:
        """Twilio's DeleteMedia: 204, and the media is gone (its URL answers 404 from then on)."""
        if not self._authorised(request):
            return twilio_error(401, 20003)
        media_sid = request.path_params["media_sid"]
        if self._media.pop(media_sid, None) is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        self.deleted_media.append(media_sid)
        return Response(status_code=204)


def twilio_error(status: int, code: int, message: str | None = None) -> JSONResponse:
    body = {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, f"Error {code}"),
        "more_info": _more_info(code),
        "status": status,
    }
    return JSONResponse(body, status_code=status)


def basic_auth(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return username, password


def _more_info(code: int) -> str:
    return f"https://www.twilio.com/docs/errors/{code}"
