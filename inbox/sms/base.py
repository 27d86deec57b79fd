"""The provider interface. Services take a Provider; they never import an adapter.

Adapters know nothing of models: they speak in the plain records below.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from twilio.request_validator import RequestValidator


class _SignedForm(dict[str, str]):
    """A form as RequestValidator reads it: `getall` is the first way it tries (plain dicts answer its two
    attempts before, `getall` and Django's `getlist`, with an AttributeError each, for every parameter)."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def valid_signature(validator: RequestValidator, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether Twilio signed this webhook. Twilio signs the URL it was given, which is `url` (our public
    one); RequestValidator.validate always computes two signatures (with and without the port, "since sig
    generation on back end is inconsistent"): the one over `url` first, then validate's two if it differs."""
    if not signature:
        return False
    form = _SignedForm(params)
    if hmac.compare_digest(validator.compute_signature(url, form).encode(), signature.encode()):
        return True
    return bool(validator.validate(url, form, signature))


@dataclass(frozen=True)
class OutboundText:
    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_sid: str
    status: str  # Twilio's word: "queued", or "accepted" with a Messaging Service


class ProviderRejected(Exception):
    """The provider refused the text (HTTP 4xx at create), e.g. 21610 opted out."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProviderUnavailable(Exception):
    """Not sent now, may be retried: no connection, timeout, 429, 5xx.

    `outcome_unknown` is True when the request may have reached Twilio (a timeout after it was sent, a
    connection dropped mid-answer): the text may exist at Twilio, so look it up (`find_sent`) before
    sending it again. It is False when Twilio cannot have taken it: a refused connection, a DNS failure,
    or an answer (429, 5xx) that says it did not. `retry_after` is Twilio's Retry-After in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.status = status
        self.code = code


# Twilio's own ceiling for the media of one message; a larger download is not a real MMS.
MAX_MEDIA_BYTES = 5 * 1024 * 1024


class MediaFetchFailed(Exception):
    """An attachment could not be downloaded (refused credentials, missing, network)."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"could not download media {url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class MediaTooLarge(MediaFetchFailed):
    """An attachment is larger than MAX_MEDIA_BYTES; it is refused rather than stored."""

    def __init__(self, url: str, limit: int = MAX_MEDIA_BYTES) -> None:
        super().__init__(url, f"larger than the {limit // (1024 * 1024)} MB limit")
        self.limit = limit


class MediaUrlRefused(MediaFetchFailed):
    """The URL is not one the account's credentials may be sent to: trying again cannot help."""


class MediaDeleteFailed(Exception):
    """The provider did not delete a stored attachment (network, refused credentials, not final yet)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not delete media {url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class InboundText:
    provider_sid: str
    account_sid: str
    from_number: str
    to_number: str
    body: str
    messaging_service_sid: str | None = None
    num_segments: int | None = None
    media: tuple[tuple[str, str], ...] = ()  # (url, content type) per MediaUrlN
    opt_out_type: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    provider_sid: str
    status: str
    error_code: int | None = None
    account_sid: str | None = None


@dataclass(frozen=True)
class FetchedMedia:
    content: bytes
    content_type: str


@dataclass
class ProviderInfo:
    """What the app needs to know to set up the first channel for this provider."""

    account_sid: str
    from_number: str | None
    messaging_service_sid: str | None
    label: str
    is_simulator: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelCredentials:
    """What an adapter needs to act for one sending number: its account, token and sender."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    label: str = "Twilio"


class Provider(Protocol):
    info: ProviderInfo

    async def send(self, text: OutboundText) -> SendResult: ...

    async def find_sent(self, text: OutboundText, since: datetime) -> SendResult | None:
        """Did the provider take this text after all (at or after `since`)? The oldest match, or None.

        Asked before any new attempt after an unknown outcome; a failed look-up raises
        ProviderUnavailable (outcome_unknown=False), and the caller must not send again then.
        """
        ...

    def validate_webhook(self, url: str, params: Mapping[str, str], signature: str) -> bool: ...

    async def fetch_media(self, url: str) -> FetchedMedia: ...

    async def delete_media(self, url: str) -> None: ...

    async def close(self) -> None: ...


def parse_inbound(params: Mapping[str, str]) -> InboundText:
    """Twilio's inbound message webhook as a plain record. Twilio adds fields at will: ignore the rest."""
    count = _int_or_none(params.get("NumMedia")) or 0
    media = tuple(
        (params[f"MediaUrl{n}"], params.get(f"MediaContentType{n}", "application/octet-stream"))
        for n in range(count)
        if params.get(f"MediaUrl{n}")
    )
    return InboundText(
        provider_sid=params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid") or "",
        account_sid=params.get("AccountSid", ""),
        from_number=params.get("From", ""),
        to_number=params.get("To", ""),
        body=params.get("Body", ""),
        messaging_service_sid=params.get("MessagingServiceSid") or None,
        num_segments=_int_or_none(params.get("NumSegments")),
        media=media,
        opt_out_type=params.get("OptOutType") or None,
    )


def parse_status(params: Mapping[str, str]) -> StatusUpdate:
    return StatusUpdate(
        provider_sid=params.get("MessageSid") or params.get("SmsSid") or "",
        status=(params.get("MessageStatus") or params.get("SmsStatus") or "").lower(),
        error_code=_int_or_none(params.get("ErrorCode")),
        account_sid=params.get("AccountSid") or None,
    )


def _int_or_none(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None
