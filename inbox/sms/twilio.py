"""The Twilio adapter: the real `twilio` library with its async (aiohttp) client.

Pointing it at a local Twilio-compatible server (INBOX_TWILIO_API_URL): in twilio-python 9.13 every
api.twilio.com call is built by `twilio.base.domain.Domain.absolute_url()` from the `base_url` of the
`Api` domain object, which `ApiBase.__init__` hard-codes to "https://api.twilio.com". `Client.api` is
created once and cached (`Client._api`), and `client.messages` is `client.api.account.messages`, so
assigning `client.api.base_url = api_url` reroutes every Messages request of that client (other
domains, e.g. lookups.twilio.com, keep their own base_url; we use none). The only other host
rewriting is `ClientBase.get_hostname()`, which applies TWILIO_EDGE / TWILIO_REGION and would
mangle a local host name, so we clear edge and region for a local server. No host-rewriting
http_client is needed.

One http_client subclass remains, for two other reasons: AsyncTwilioHttpClient builds an
`aiohttp.BasicAuth` per request, which aiohttp 3.14 deprecates (a DeprecationWarning on every send),
so `_HeaderAuthHttpClient` sends the same credentials as a ready-made Authorization header; and
TwilioRestException carries no headers, so it hands Twilio's Retry-After to the calling task through
a ContextVar (sends run concurrently on one client: the client's own `_test_only_last_response` may
belong to another send by the time an error is raised).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from inbox.sms.base import (
    MAX_MEDIA_BYTES,
    FetchedMedia,
    MediaDeleteFailed,
    MediaFetchFailed,
    MediaTooLarge,
    MediaUrlRefused,
    OutboundText,
    ProviderInfo,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
    valid_signature,
)

TWILIO_API_URL = "https://api.twilio.com"
# The async client has no timeout of its own (aiohttp is given `timeout=None`): a hung connection
# would hold a send forever. Twilio answers a create in well under a second.
SEND_TIMEOUT_SECONDS = 20.0
MEDIA_TIMEOUT_SECONDS = 30.0
# find_sent looks this far before the attempt began: Twilio's clock and ours differ a little.
LOOKUP_CLOCK_SLACK = timedelta(minutes=1)
# A look-up reads the Messages to the number page by page, newest first, back to the attempt's start:
# a number that got many texts since then (a worker died mid-batch and another sent the rest before its
# lease expired) must not push the text out of a single page. 1000 is the largest page Twilio serves.
LOOKUP_PAGE_SIZE = 1000
LOOKUP_MAX_PAGES = 20  # a bound for a number texted without pause: 20,000 Messages since the attempt began


@dataclass
class _Answer:
    """What the http client saw of the last answer in this task: Twilio's Retry-After, if any."""

    retry_after: str | None = None


# Set by each send to a fresh _Answer: the create runs in the sending task, so the http client's
# `request` (awaited in that same task) fills in that send's own record and no other.
_ANSWER: ContextVar[_Answer | None] = ContextVar("twilio_answer", default=None)


class _HeaderAuthHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- twilio's AsyncHttpClient.request signature
        allow_redirects: bool = False,
    ) -> Any:
        if auth is not None:
            headers = {**(headers or {}), "Authorization": basic_auth_header(*auth)}
        response = await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        answer = _ANSWER.get()
        if answer is not None:
            answer.retry_after = (response.headers or {}).get("Retry-After")
        return response


def basic_auth_header(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode("latin-1")).decode("ascii")
    return f"Basic {token}"


class TwilioProvider:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str | None = None,
        label: str = "Twilio",
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.info = ProviderInfo(
            account_sid=account_sid,
            from_number=from_number,
            messaging_service_sid=messaging_service_sid,
            label=label,
            extra={"api_url": api_url} if api_url else {},
        )
        self._auth_token = str(auth_token)
        self._api_url = api_url.rstrip("/") if api_url else None
        self._validator = RequestValidator(self._auth_token)
        self._send_timeout = send_timeout
        # Created on first send: aiohttp's ClientSession must be made inside the running loop.
        self._client: Client | None = None
        self._http: _HeaderAuthHttpClient | None = None

    def __repr__(self) -> str:
        # Spelled out so the auth token can never reach a log line or a traceback.
        return (
            f"TwilioProvider(account_sid={self.info.account_sid!r}, from_number={self.info.from_number!r}, "
            f"messaging_service_sid={self.info.messaging_service_sid!r}, api_url={self._api_url!r})"
        )

    async def send(self, text: OutboundText) -> SendResult:
        from_number, service_sid = self._sender_for(text)
        answer = _Answer()
        token = _ANSWER.set(answer)
        try:
            async with asyncio.timeout(self._send_timeout):
                message = await self._twilio().messages.create_async(
                    to=text.to,
                    from_=from_number or values.unset,
                    messaging_service_sid=service_sid or values.unset,
                    body=text.body if text.body or not text.media_urls else values.unset,
                    media_url=list(text.media_urls) if text.media_urls else values.unset,
                    status_callback=text.status_callback or values.unset,
                )
        except (TwilioRestException, TwilioServiceException) as error:
            raise provider_error_from(error, retry_after=seconds_from_retry_after(answer.retry_after)) from error
        except TimeoutError as error:
            # The request may have reached Twilio and been taken: only a look-up can tell.
            raise ProviderUnavailable(
                f"Twilio did not answer within {self._send_timeout:g} s", outcome_unknown=True
            ) from error
        except aiohttp.ClientConnectorError as error:
            # No connection was made (refused, DNS, TLS): Twilio cannot have seen the request.
            raise ProviderUnavailable(f"could not connect to Twilio: {error}") from error
        except (aiohttp.ClientError, OSError) as error:
            # The connection broke after the request may have been written (server disconnected,
            # a truncated answer, a reset): Twilio may have taken it.
            raise ProviderUnavailable(f"the connection to Twilio broke: {error!r}", outcome_unknown=True) from error
        finally:
            _ANSWER.reset(token)
        return SendResult(provider_sid=message.sid or "", status=str(message.status or "queued"))

    async def find_sent(self, text: OutboundText, since: datetime) -> SendResult | None:
        """The oldest Message at Twilio with this text's recipient, sender and body, created since
        `since` (less a minute of clock slack); None when Twilio has none.

        Twilio fills `date_sent` only once it sends the text on, so a text still queued at Twilio is
        missed by the DateSent> filter: when that finds nothing, the newest Messages to the number are
        read again without it. Either way only texts created since then count.
        """
        from_number, service_sid = self._sender_for(text)
        # twilio-python writes a datetime as "%Y-%m-%dT%H:%M:%SZ" without converting it: give it UTC.
        earliest = (since - LOOKUP_CLOCK_SLACK).astimezone(UTC)
        try:
            async with asyncio.timeout(self._send_timeout):
                sent = await self._messages_like(text, from_number, service_sid, earliest, date_sent_after=earliest)
                if not sent:
                    sent = await self._messages_like(text, from_number, service_sid, earliest)
        except (TwilioException, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ProviderUnavailable(f"could not look the text up at Twilio: {error!r}") from error
        if not sent:
            return None
        # Twilio lists newest first and dates to the second: among equal dates the last listed is oldest.
        oldest = min(reversed(sent), key=_created_at)
        return SendResult(provider_sid=str(oldest.sid), status=str(oldest.status or "queued"))

    def validate_webhook(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        return valid_signature(self._validator, url, params, signature)

    async def fetch_media(self, url: str) -> FetchedMedia:
        target = self._routed_media_url(url)
        if not self._may_receive_credentials(target):
            raise MediaUrlRefused(url, "not a Twilio media URL; the account credentials are not sent there")
        async with httpx.AsyncClient(timeout=MEDIA_TIMEOUT_SECONDS, follow_redirects=True) as client:
            try:
                # httpx drops the Authorization header when a redirect leaves the host, as Twilio's
                # redirect to its media storage expects.
                async with client.stream("GET", target, auth=(self.info.account_sid, self._auth_token)) as response:
                    return await read_capped_media(response, url)
            except httpx.HTTPError as error:
                raise MediaFetchFailed(url, f"network error: {error!r}") from error

    async def delete_media(self, url: str) -> None:
        """DELETE the media resource (Twilio keeps media until it is deleted). Gone already counts as done."""
        target = self._routed_media_url(url)
        if not self._may_receive_credentials(target):
            raise MediaDeleteFailed(url, "not a Twilio media URL; the account credentials are not sent there")
        resource = target.split("?", 1)[0]
        resource = resource if resource.endswith(".json") else resource + ".json"
        async with httpx.AsyncClient(timeout=MEDIA_TIMEOUT_SECONDS, follow_redirects=False) as client:
            try:
                response = await client.delete(resource, auth=(self.info.account_sid, self._auth_token))
            except httpx.HTTPError as error:
                raise MediaDeleteFailed(url, f"network error: {error!r}") from error
        if response.status_code in (200, 204, 404):
            return
        if response.status_code in (401, 403):
            raise MediaDeleteFailed(url, f"the provider refused the account credentials (HTTP {response.status_code})")
        raise MediaDeleteFailed(url, f"the provider answered HTTP {response.status_code}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None

    def _twilio(self) -> Client:
        if self._client is None:
            self._http = _HeaderAuthHttpClient()
            self._client = Client(self.info.account_sid, self._auth_token, http_client=self._http)
            if self._api_url:
                self._client.api.base_url = self._api_url
                self._client.edge = None
                self._client.region = None
        return self._client

    async def _messages_like(
        self,
        text: OutboundText,
        from_number: str | None,
        service_sid: str | None,
        earliest: datetime,
        date_sent_after: datetime | None = None,
    ) -> list[Any]:
        """The Messages to `text.to` from this sender with exactly this body, read newest first until a
        page holds nothing created since `earliest` (Twilio's order is not documented to be strictly by
        creation, so a whole page must be older before the reading stops).

        With a Messaging Service alone the sender is picked from its pool after the create, so only
        `To` is filtered at Twilio and the service SID is matched here.
        """
        page = await self._twilio().messages.page_async(
            to=text.to,
            from_=from_number or values.unset,
            date_sent_after=date_sent_after or values.unset,
            page_size=LOOKUP_PAGE_SIZE,
        )
        found: list[Any] = []
        for _ in range(LOOKUP_MAX_PAGES):
            recent = _created_since(list(page), earliest)
            found.extend(
                message
                for message in recent
                if message.body == text.body
                and (from_number is None or message.from_ == from_number)
                and (service_sid is None or message.messaging_service_sid == service_sid)
            )
            if not recent:
                break
            page = await page.next_page_async()
            if page is None:
                break
        return found

    def _sender_for(self, text: OutboundText) -> tuple[str | None, str | None]:
        """The text's own sender if it names one, else this channel's."""
        if text.from_number or text.messaging_service_sid:
            return text.from_number, text.messaging_service_sid
        return self.info.from_number, self.info.messaging_service_sid

    def _routed_media_url(self, url: str) -> str:
        if self._api_url and url.startswith(TWILIO_API_URL + "/"):
            return self._api_url + url[len(TWILIO_API_URL) :]
        return url

    def _may_receive_credentials(self, url: str) -> bool:
        """Only Twilio (or the configured stand-in) gets the account's basic-auth credentials."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if self._api_url and _origin(url) == _origin(self._api_url):
            return True
        return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def provider_error_from(
    error: TwilioRestException | TwilioServiceException, retry_after: float | None = None
) -> Exception:
    """4xx means Twilio refused this text (do not retry); 5xx and 429 mean try again later.

    An answer is Twilio saying it did not take the text, so the outcome is known.
    """
    status = int(error.status or 0)
    code = _int_or_none(error.code)
    if 400 <= status < 500 and status != 429:
        return ProviderRejected(code, _plain_message(error))
    return ProviderUnavailable(
        f"Twilio answered HTTP {status}: {_plain_message(error)}",
        retry_after=retry_after,
        status=status or None,
        code=code,
    )


def seconds_from_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: either delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither form: better no hint than a wrong one
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _created_since(messages: list[Any], earliest: datetime) -> list[Any]:
    """Only texts created since the attempt began (less the slack) can be this attempt's. Whatever
    Twilio makes of DateSent>'s time of day (its docs speak of whole days), an older text with the
    same words is an earlier text, not this one."""
    return [message for message in messages if _created_at(message) >= earliest]


def _created_at(message: Any) -> datetime:
    """A listed Message's creation time (the library parses Twilio's RFC 2822 date to UTC). Twilio always
    gives one; without it a text counts as new, since adopting its SID is safer than sending twice."""
    created = message.date_created
    return created if isinstance(created, datetime) else datetime.max.replace(tzinfo=UTC)


def _plain_message(error: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(error, TwilioServiceException):
        return str(error.detail or error.title or "")
    # The library prefixes Twilio's own words with "Unable to create record: ".
    message = str(error.msg or "")
    _, separator, rest = message.partition(": ")
    return rest if separator and message.startswith("Unable to") else message


async def read_capped_media(response: httpx.Response, url: str, limit: int = MAX_MEDIA_BYTES) -> FetchedMedia:
    """The body of a streamed media response, refused past `limit` bytes without reading it all."""
    if response.status_code in (401, 403):
        raise MediaFetchFailed(
            url, f"the provider refused the account credentials (HTTP {response.status_code})", response.status_code
        )
    if response.status_code >= 400:
        raise MediaFetchFailed(url, f"the provider answered HTTP {response.status_code}", response.status_code)
    declared = _int_or_none(response.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise MediaTooLarge(url, limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > limit:
            raise MediaTooLarge(url, limit)
        chunks.append(chunk)
    content_type = response.headers.get("content-type", "application/octet-stream").strip()
    return FetchedMedia(content=b"".join(chunks), content_type=content_type)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
