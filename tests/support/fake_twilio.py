"""A local Twilio-compatible HTTP server for tests: Messages create, list and fetch, status callbacks,
media, and the ways a busy or slow Twilio answers.

    async with FakeTwilio(account_sid, auth_token, callback_client=app_client) as fake:
        provider = TwilioProvider(account_sid, auth_token, from_number=..., api_url=fake.base_url)
        fake.reject["+15551230000"] = 21610            # next creates to that number: HTTP 400
        fake.outcomes["+15551230003"] = [("sent", None), ("undelivered", 30003)]
        fake.add_account(other_sid, other_token)          # a second account (another office's channel)
        ...
        await fake.callbacks_done()

A busy Twilio (nothing is stored; Twilio's error body, codes 20429/20500/20503):

    fake.fail_next(429, times=2, retry_after=3)        # the next 2 creates, whoever they are for
    fake.fail_next(503)                                  # queued after those; no Retry-After
    fake.fail_next(429, retry_after="Wed, 21 Oct 2037 07:28:00 GMT")  # an HTTP-date
    fake.busy["+15551230429"] = [429, (429, 5), 503]   # that number's next creates, in order;
                                                       # (status, Retry-After) or a bare status
    fake.fail_next_with_status = 500                   # the older one-shot form, still honoured

A slow Twilio: the create is accepted — stored, in `messages`, its callbacks scheduled — and only then
is the answer held, so the client times out although Twilio took the text:

    fake.hold["+15551230408"] = 30.0                   # answer creates to it 30 s late
    fake.hold_all = 30.0                                 # every create
    fake.hold_gate["+15551230408"] = event              # until `event` is set (no sleeps in tests)

Held answers are let go when the fake closes.

What tests count on: `requests` (form params of every authenticated create, answered or not),
`messages` (the JSON answered to each accepted create, in order), `accepted_at` (the loop time of each
accepted create, for pacing), `count_to(to)` and `bodies_to(to)` (accepted creates to a number),
`list_queries` (the query of every Messages list, to see which filters a client sent).

Messages list and fetch: `GET /2010-04-01/Accounts/{sid}/Messages.json` with To, From, DateSent,
DateSent<, DateSent>, PageSize, Page and PageToken answers Twilio's page envelope, newest first, only
the caller's account; `GET …/Messages/{sid}.json` one message. Listed messages show their current
state: each step of the delivery story (`outcomes`, default sent → delivered) updates `status`,
`error_code` and `date_updated` whether or not a StatusCallback was given (with `callbacks_enabled =
False` no story plays: the text stays queued at Twilio, as tests mean by it), and `date_sent` is set
at the "sent" step (or a later one, delivered/undelivered, when "sent" was skipped). The spec says
date_sent is "when Twilio sent the message" (nullable), and a Messaging Service text is not even given
a sender until then; so a text still queued at Twilio has `date_sent: null` and no DateSent filter
finds it. `fake.outcomes[to] = []` keeps texts to that number queued for good. DateSent filters take
`YYYY-MM-DD` (the whole day, both ends inclusive) or `YYYY-MM-DDTHH:MM:SSZ` (to the second,
inclusive), the two forms twilio-python sends. PageToken is a cursor (the last SID of the page
before), so texts created while a client pages do not shift what it reads.

Shapes follow Twilio's published spec (tests/contract/twilio-oai/twilio_api_v2010.json,
`api.v2010.account.message` and ListMessageResponse) and the error bodies `{"code", "message",
"more_info", "status"}` that twilio-python turns into TwilioRestException.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Self
from urllib.parse import quote, urlencode

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

# What a busy or failing Twilio answers: HTTP status → (Twilio error code, its words).
BUSY_ANSWERS: dict[int, tuple[int, str]] = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Statuses at which Twilio has sent the text on (date_sent is set at the first of them).
SENT_STATUSES = {"sent", "delivered", "undelivered", "read"}

# A scripted busy answer: a status, or (status, Retry-After) where Retry-After is seconds or an HTTP-date.
BusyAnswer = int | tuple[int, float | str | None]


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
        self.busy: dict[str, list[BusyAnswer]] = {}  # To number → answers to its next creates, in order
        self.hold: dict[str, float] = {}  # To number → seconds to hold the answer to an accepted create
        self.hold_all: float | None = None  # seconds to hold every accepted create's answer
        self.hold_gate: dict[str, asyncio.Event] = {}  # To number → answer its accepted creates once set
        self.accepted_at: list[float] = []  # loop time of each accepted create (pacing measurements)
        self.list_queries: list[dict[str, str]] = []  # the query of every authenticated Messages list
        self._failures: list[tuple[int, str | None]] = []  # fail_next's queue: (status, Retry-After)
        self._stored: dict[str, dict[str, Any]] = {}  # message SID → its current JSON (list and fetch)
        self._closing = asyncio.Event()  # set on exit: held answers are let go
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
        self._server = serve_asgi(self._app(), lifespan="off")
        self.base_url = await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
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

    def fail_next(self, status: int, times: int = 1, retry_after: float | str | None = None) -> None:
        """Answer the next `times` creates (after any already scripted) with `status` and nothing stored.

        `retry_after` becomes the Retry-After header: seconds, or an HTTP-date string as given.
        """
        self._failures.extend([(status, _retry_after_header(retry_after))] * times)

    def count_to(self, to: str) -> int:
        """How many creates to `to` were accepted (each would reach the phone)."""
        return sum(1 for message in self.messages if message["to"] == to)

    def bodies_to(self, to: str) -> list[str]:
        """The bodies of the accepted creates to `to`, in the order they were accepted."""
        return [str(message["body"]) for message in self.messages if message["to"] == to]

    def stored(self, sid: str) -> dict[str, Any]:
        """A message as the list and fetch show it now (status and date_sent follow its story)."""
        return self._stored[sid]

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
                Route(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._list_messages, methods=["GET"]),
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}.json",
                    self._fetch_message,
                    methods=["GET"],
                ),
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
            self._failures.insert(0, (status, None))
        form = await request.form()
        params: dict[str, Any] = {key: form[key] for key in form.keys()}
        if "MediaUrl" in params:
            params["MediaUrl"] = form.getlist("MediaUrl")
        self.requests.append(params)
        credentials = basic_auth(request)
        self.creates.append(Create(request.path_params["account_sid"], credentials[0] if credentials else None, params))

        busy = self._busy_answer_for(str(params.get("To", "")))
        if busy is not None:
            return busy_error(*busy)
        refusal = self._refusal_for(params)
        if refusal is not None:
            return twilio_error(400, refusal)
        message = self._message_json(params, request.path_params["account_sid"])
        self._accept(message, params)
        await self._hold_answer(message["to"])
        return JSONResponse(message, status_code=201)

    def _busy_answer_for(self, to: str) -> tuple[int, str | None] | None:
        """The scripted busy answer for this create, if any: the global queue first, then the number's."""
        if self._failures:
            return self._failures.pop(0)
        script = self.busy.get(to)
        if not script:
            return None
        answer = script.pop(0)
        if isinstance(answer, tuple):
            return answer[0], _retry_after_header(answer[1])
        return answer, None

    def _accept(self, message: dict[str, Any], params: dict[str, Any]) -> None:
        """Store the message and start its story, as Twilio does before it answers."""
        self.messages.append(message)
        self.accepted_at.append(asyncio.get_running_loop().time())
        self._stored[message["sid"]] = dict(message)
        callback_url = str(params["StatusCallback"]) if params.get("StatusCallback") else None
        if self.callbacks_enabled:  # off: the text stays queued at Twilio (tests rely on that)
            self._schedule_story(self._stored[message["sid"]], callback_url)

    async def _hold_answer(self, to: str) -> None:
        """Keep the client waiting (past its timeout) after the message was taken."""
        gate = self.hold_gate.get(to)
        if gate is not None:
            await self._unless_closing(gate.wait())
        seconds = self.hold.get(to, self.hold_all)
        if seconds:
            await self._unless_closing(asyncio.sleep(seconds))

    async def _unless_closing(self, waiting: Awaitable[Any]) -> None:
        tasks = {asyncio.ensure_future(waiting), asyncio.ensure_future(self._closing.wait())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _list_messages(self, request: Request) -> Response:
        """Twilio's Messages list: newest first, filtered, one page with its envelope."""
        if not self._authorised(request):
            return twilio_error(401, 20003)
        account_sid = request.path_params["account_sid"]
        query = request.query_params
        self.list_queries.append(dict(query))
        try:
            matches = [
                message
                for message in self._newest_first(account_sid)
                if _matches_filters(message, query.get("To"), query.get("From"), _date_sent_filters(query))
            ]
            page_size = min(max(int(query.get("PageSize") or DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
            page = max(int(query.get("Page") or 0), 0)
        except ValueError as error:
            return twilio_error(400, 20001, f"Invalid parameter: {error}")
        start = _page_start(matches, query.get("PageToken"), page * page_size)
        items = matches[start : start + page_size]
        return JSONResponse(_page_envelope(request.url.path, query, items, page, page_size, start, len(matches)))

    async def _fetch_message(self, request: Request) -> Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        message = self._stored.get(request.path_params["message_sid"])
        if message is None or message["account_sid"] != request.path_params["account_sid"]:
            return twilio_error(404, 20404, "The requested resource was not found")
        return JSONResponse(message)

    def _newest_first(self, account_sid: str) -> list[dict[str, Any]]:
        # Creation order is the tie-breaker Twilio's one-second dates cannot give.
        return [message for message in reversed(self._stored.values()) if message["account_sid"] == account_sid]

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

    def _schedule_story(self, message: dict[str, Any], callback_url: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self._play_story(message, callback_url))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def _play_story(self, message: dict[str, Any], callback_url: str | None) -> None:
        """Each step of the delivery story updates the stored message and, when asked, calls back."""
        story = self.outcomes.get(message["to"], DEFAULT_OUTCOMES)
        try:
            for status, error_code in story:
                await asyncio.sleep(self.callback_delay)
                _advance(message, status, error_code)
                if callback_url and self.callbacks_enabled:
                    await self._post_callback(message, callback_url, status, error_code)
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
        client = self._callback_client or self._client_of_its_own()
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
        self.callbacks.append(Callback(url=url, params=params, status_code=response.status_code))

    def _client_of_its_own(self) -> httpx.AsyncClient:
        """For callbacks to a URL outside the test's app; made when first needed (its TLS context costs ~30 ms)."""
        if self._own_client is None:
            self._own_client = httpx.AsyncClient(timeout=10)
        return self._own_client

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


def busy_error(status: int, retry_after: str | None = None) -> JSONResponse:
    """A 429 or 5xx as Twilio answers it, with Retry-After when scripted."""
    code, message = BUSY_ANSWERS.get(status, (20500, "Internal Server Error"))
    response = twilio_error(status, code, message)
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _retry_after_header(value: float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _advance(message: dict[str, Any], status: str, error_code: int | None) -> None:
    """One step of a message's story at Twilio: its status, error and dates as the list shows them."""
    now = format_datetime(datetime.now(UTC))
    message["status"] = status
    message["date_updated"] = now
    if error_code is not None:
        message["error_code"] = error_code
        message["error_message"] = ERROR_MESSAGES.get(error_code)
    if status in SENT_STATUSES and message["date_sent"] is None:
        message["date_sent"] = now
        if message["from"] is None:
            message["from"] = POOL_NUMBER  # a Messaging Service picks its sender when it sends


DateBounds = tuple[datetime | None, datetime | None]  # inclusive (earliest, latest) date_sent


def _date_sent_filters(query: Any) -> DateBounds | None:
    """DateSent, DateSent> and DateSent< as inclusive bounds on date_sent; None without any of them."""
    exact, after, before = query.get("DateSent"), query.get("DateSent>"), query.get("DateSent<")
    if exact is None and after is None and before is None:
        return None
    earliest: datetime | None = None
    latest: datetime | None = None
    if exact is not None:
        earliest, latest = _first_instant(exact), _last_instant(exact)
    if after is not None:
        earliest = _first_instant(after)
    if before is not None:
        latest = _last_instant(before)
    return earliest, latest


def _first_instant(value: str) -> datetime:
    """The first second a DateSent value names: a day's midnight, or the datetime itself."""
    if "T" not in value:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _last_instant(value: str) -> datetime:
    """The last second a DateSent value names: a day's 23:59:59, or the datetime itself."""
    if "T" not in value:
        return datetime.combine(date.fromisoformat(value), time(), UTC) + timedelta(days=1, seconds=-1)
    return _first_instant(value)


def _matches_filters(message: dict[str, Any], to: str | None, from_: str | None, date_sent: DateBounds | None) -> bool:
    if to is not None and message["to"] != to:
        return False
    if from_ is not None and message["from"] != from_:
        return False
    if date_sent is None:
        return True
    if message["date_sent"] is None:
        return False  # not sent on yet: no DateSent filter finds it
    sent = parsedate_to_datetime(message["date_sent"])
    earliest, latest = date_sent
    return (earliest is None or sent >= earliest) and (latest is None or sent <= latest)


def _page_start(matches: list[dict[str, Any]], page_token: str | None, fallback: int) -> int:
    """Where a page begins: after the SID its PageToken names (a cursor), else Page × PageSize."""
    if page_token and page_token.startswith("PA"):
        after_sid = page_token[2:]
        for index, message in enumerate(matches):
            if message["sid"] == after_sid:
                return index + 1
    return fallback


def _page_envelope(
    path: str, query: Any, items: list[dict[str, Any]], page: int, page_size: int, start: int, total: int
) -> dict[str, Any]:
    filters = [(key, query[key]) for key in ("To", "From", "DateSent", "DateSent<", "DateSent>") if key in query]

    def uri(page_number: int, token: str | None = None) -> str:
        params = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
        if token:
            params.append(("PageToken", token))
        return f"{path}?{urlencode(params)}"

    more = start + len(items) < total
    return {
        "messages": items,
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": start + max(len(items) - 1, 0),
        "uri": uri(page),
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1, "PA" + items[-1]["sid"]) if more and items else None,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
    }


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
