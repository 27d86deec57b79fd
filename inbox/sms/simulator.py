"""The built-in simulator: the provider when there are no Twilio credentials.

It behaves like Twilio from the app's side: `send()` answers at once with a fresh "SM…" SID and
`queued` (`accepted` with a Messaging Service SID), then the delivery story arrives as signed status
callbacks through the app's real webhook, `step_delay` seconds apart. `send_inbound()` plays a client
texting in through the real inbound webhook, signature included.

Which numbers do what (the first three are Twilio's own test-credential magic numbers):

| recipient                       | what happens                                                       |
|---------------------------------|--------------------------------------------------------------------|
| +15005550001                    | refused at once: 21211, not a valid phone number                    |
| +15005550009                    | refused at once: 21614, not a mobile number                         |
| +15005550004                    | refused at once: 21610, the number has opted out (texted STOP)      |
| any number ending in 0003       | queued → sent → undelivered, ErrorCode 30003 (phone unreachable)    |
| any number ending in 0006       | queued → failed, ErrorCode 30006 (landline or unreachable carrier)  |
| any number ending in 0429       | busy: the first 2 attempts of a text (same number and body) answer  |
|                                 | 429 with Retry-After 3 s; the third is accepted and delivered       |
| any number ending in 0503       | the first attempt of a text answers 503; the next is accepted       |
| any number ending in 0408       | too slow: the first attempt of a text is accepted (SID, callbacks)  |
|                                 | but the caller hears a timeout (outcome unknown); `find_sent` then  |
|                                 | finds it, and later attempts are accepted normally                  |
| any other number                | queued → sent → delivered                                           |

The retry numbers (+15005550429, +15005550503, +15005550408 for instance) are valid numbers to the
app's phone rules, like the other +1 500 555 numbers. Their attempts are counted per (number, body)
for the life of the simulator, so a demo shows the retry once per text.

The simulator remembers what it accepted (recipient, sender, body, SID, time), so `find_sent` can
answer "did Twilio take this text after all?" as the Twilio adapter does with Twilio's Messages list.

Signatures: Twilio signs the URL it called, and the app checks against INBOX_PUBLIC_URL + path + query.
The simulator signs the public URL but delivers through `webhook_client`, which may point elsewhere
(the loopback address the app listens on, or an ASGI transport in tests): a URL under `public_url` is
posted as a path relative to the client's base URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from inbox.segments import count_segments
from inbox.sms.base import (
    FetchedMedia,
    MediaFetchFailed,
    OutboundText,
    ProviderInfo,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
    valid_signature,
)
from inbox.sms.twilio import read_capped_media

logger = logging.getLogger(__name__)

# All zeros: valid in shape (AC + 32 hex digits) and obviously not a real account.
SIMULATOR_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_FROM_NUMBER = "+15005550006"  # Twilio's magic "valid sender" test number
API_VERSION = "2010-04-01"
INBOUND_WEBHOOK_PATH = "/webhooks/twilio/messages"

Outcome = tuple[str, int | None]  # (status, error code)

REFUSED_AT_CREATE: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550009": (21614, "'To' number +15005550009 is not a valid mobile number."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
}
DELIVERED: list[Outcome] = [("sent", None), ("delivered", None)]
UNREACHABLE: list[Outcome] = [("sent", None), ("undelivered", 30003)]
LANDLINE: list[Outcome] = [("failed", 30006)]

# The retry demo numbers: how many first attempts of a text fail, and how.
BUSY_ATTEMPTS = 2  # …0429 answers 429 this many times
BUSY_RETRY_AFTER_SECONDS = 3.0
# find_sent's window reaches this far before the attempt began, as the Twilio adapter's does.
LOOKUP_CLOCK_SLACK = timedelta(minutes=1)
# What find_sent can see: the newest accepted texts (the demo runs for hours; memory stays bounded).
REMEMBERED_TEXTS = 10_000


@dataclass
class AcceptedText:
    """A text the simulator took, as Twilio's Messages list would show it."""

    sid: str
    to: str
    body: str
    from_number: str | None
    messaging_service_sid: str | None
    created_at: datetime
    status: str


def outcomes_for(number: str) -> list[Outcome]:
    """The status callbacks a text to `number` will produce, after the initial `queued`."""
    if number.endswith("0003"):
        return UNREACHABLE
    if number.endswith("0006"):
        return LANDLINE
    return DELIVERED


RETRY_NUMBER_ENDINGS = ("0429", "0503", "0408")


def refuse_for_now(number: str, attempt: int) -> None:
    """Raise what a busy or failing Twilio answers to this attempt of a text to `number`, if anything."""
    if number.endswith("0429") and attempt <= BUSY_ATTEMPTS:
        raise ProviderUnavailable(
            "Twilio answered HTTP 429: Too Many Requests (simulator)",
            retry_after=BUSY_RETRY_AFTER_SECONDS,
            status=429,
            code=20429,
        )
    if number.endswith("0503") and attempt == 1:
        raise ProviderUnavailable("Twilio answered HTTP 503: Service Unavailable (simulator)", status=503, code=20503)


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


class SimulatorProvider:
    def __init__(
        self,
        auth_token: str,
        public_url: str,
        webhook_client: httpx.AsyncClient,
        from_number: str = DEFAULT_FROM_NUMBER,
        step_delay: float = 0.8,
        ledger: Path | None = None,
    ) -> None:
        self.info = ProviderInfo(
            account_sid=SIMULATOR_ACCOUNT_SID,
            from_number=from_number,
            messaging_service_sid=None,
            label="Simulator",
            is_simulator=True,
        )
        self._auth_token = str(auth_token)
        self._validator = RequestValidator(self._auth_token)
        self._public_url = public_url.rstrip("/")
        self._webhooks = webhook_client
        self._step_delay = step_delay
        # Strong references: the loop keeps only weak ones, and close() must be able to cancel them.
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted: deque[AcceptedText] = deque(maxlen=REMEMBERED_TEXTS)
        # What it took is also written to a file (INBOX_DATA_DIR/simulator-sent.jsonl in the app), as
        # Twilio keeps its Messages beyond any one process: a worker killed mid-send and the one that
        # recovers its texts must both see what "Twilio" already has.
        self._ledger = ledger
        self._attempts: dict[tuple[str, str], int] = {}  # (to, body) → attempts, retry numbers only

    def __repr__(self) -> str:
        return f"SimulatorProvider(public_url={self._public_url!r}, from_number={self.info.from_number!r})"

    async def send(self, text: OutboundText) -> SendResult:
        refused = REFUSED_AT_CREATE.get(text.to)
        if refused is not None:
            raise ProviderRejected(*refused)
        attempt = self._count_attempt(text)
        refuse_for_now(text.to, attempt)
        accepted = self._accept(text)
        if text.to.endswith("0408") and attempt == 1:
            # Taken, but the answer "arrives" after the caller's timeout, as a slow Twilio would.
            raise ProviderUnavailable("Twilio did not answer in time (simulator)", outcome_unknown=True)
        return SendResult(provider_sid=accepted.sid, status=accepted.status)

    async def find_sent(self, text: OutboundText, since: datetime) -> SendResult | None:
        """The oldest accepted text with this recipient, sender and body since `since` (less a minute)."""
        earliest = since - LOOKUP_CLOCK_SLACK
        from_number, service_sid = self._sender_for(text)
        for accepted in [*self._from_ledger(), *self.accepted]:  # oldest first
            if (
                accepted.to == text.to
                and accepted.body == text.body
                and accepted.from_number == from_number
                and accepted.messaging_service_sid == service_sid
                and accepted.created_at >= earliest
            ):
                return SendResult(provider_sid=accepted.sid, status=accepted.status)
        return None

    def _write_ledger(self, accepted: AcceptedText) -> None:
        if self._ledger is None:
            return
        self._ledger.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**asdict(accepted), "created_at": accepted.created_at.isoformat()})
        with self._ledger.open("a", encoding="utf-8") as ledger:  # one short append: whole lines survive a kill
            ledger.write(line + "\n")

    def _from_ledger(self) -> list[AcceptedText]:
        """The newest texts any simulator process took (a line cut off by a kill is skipped)."""
        if self._ledger is None or not self._ledger.exists():
            return []
        texts = []
        for line in self._ledger.read_text(encoding="utf-8").splitlines()[-REMEMBERED_TEXTS:]:
            try:
                fields = json.loads(line)
                texts.append(AcceptedText(**{**fields, "created_at": datetime.fromisoformat(fields["created_at"])}))
            except (ValueError, TypeError, KeyError):
                continue
        return texts

    async def send_inbound(
        self,
        from_number: str,
        to_number: str,
        body: str,
        media: Sequence[tuple[str, str]] = (),
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A client texting in: Twilio's inbound webhook form, signed, posted to the app."""
        form = inbound_form(self.info.account_sid, from_number, to_number, body, media)
        form.update(extra or {})
        return await self._post_signed(self._public_url + INBOUND_WEBHOOK_PATH, form)

    def validate_webhook(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        return valid_signature(self._validator, url, params, signature)

    async def fetch_media(self, url: str) -> FetchedMedia:
        try:
            async with self._webhooks.stream("GET", self._target(url), follow_redirects=True) as response:
                return await read_capped_media(response, url)
        except httpx.HTTPError as error:
            raise MediaFetchFailed(url, f"network error: {error!r}") from error

    async def delete_media(self, url: str) -> None:
        """Nothing is kept on the simulator's side, so there is nothing to delete."""

    async def wait_idle(self) -> None:
        """Wait until every status callback started so far has been posted (tests, demos)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _count_attempt(self, text: OutboundText) -> int:
        """This attempt's number for the text (1 for the first); counted for the retry numbers only."""
        if not text.to.endswith(RETRY_NUMBER_ENDINGS):
            return 1
        key = (text.to, text.body)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        return self._attempts[key]

    def _accept(self, text: OutboundText) -> AcceptedText:
        from_number, service_sid = self._sender_for(text)
        accepted = AcceptedText(
            sid=new_sid(),
            to=text.to,
            body=text.body,
            from_number=from_number,
            messaging_service_sid=service_sid,
            created_at=datetime.now(UTC),
            status="accepted" if service_sid else "queued",
        )
        self.accepted.append(accepted)
        self._write_ledger(accepted)
        if text.status_callback:
            self._start(self._play_delivery(accepted, text))
        return accepted

    def _sender_for(self, text: OutboundText) -> tuple[str | None, str | None]:
        """The text's own sender if it names one, else the simulator's number (as the adapter does)."""
        if text.from_number or text.messaging_service_sid:
            return text.from_number, text.messaging_service_sid
        return self.info.from_number, None

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_delivery(self, accepted: AcceptedText, text: OutboundText) -> None:
        assert text.status_callback
        sid = accepted.sid
        for status, error_code in outcomes_for(text.to):
            await asyncio.sleep(self._step_delay)
            accepted.status = status
            form = status_form(
                self.info.account_sid,
                sid,
                status,
                error_code,
                from_number=text.from_number or self.info.from_number or DEFAULT_FROM_NUMBER,
                to_number=text.to,
                messaging_service_sid=text.messaging_service_sid,
            )
            try:
                response = await self._post_signed(text.status_callback, form)
            except httpx.HTTPError as error:
                # Twilio does not retry a failed status callback either; the story just stops.
                logger.warning("simulator: status callback %s for %s failed: %r", status, sid, error)
                return
            if response.status_code >= 400:
                logger.warning("simulator: status callback %s for %s answered %s", status, sid, response.status_code)

    async def _post_signed(self, signed_url: str, form: dict[str, str]) -> httpx.Response:
        signature = self._validator.compute_signature(signed_url, form)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1 (Case Inbox simulator)"}
        return await self._webhooks.post(self._target(signed_url), data=form, headers=headers)

    def _target(self, url: str) -> str:
        """Where to send a request for `url`: relative to the webhook client's base when it has one."""
        has_base = bool(str(self._webhooks.base_url))
        if has_base and (url == self._public_url or url.startswith(self._public_url + "/")):
            return url[len(self._public_url) :] or "/"
        return url


def inbound_form(
    account_sid: str, from_number: str, to_number: str, body: str, media: Sequence[tuple[str, str]] = ()
) -> dict[str, str]:
    sid = new_sid("MM" if media else "SM")  # Twilio gives MMS an "MM" SID
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "US",
        "To": to_number,
        "NumSegments": str(max(1, count_segments(body).segments)),  # Twilio says 1 even when empty
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_number,
        "ApiVersion": API_VERSION,
    }
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


def status_form(
    account_sid: str,
    sid: str,
    status: str,
    error_code: int | None,
    *,
    from_number: str,
    to_number: str,
    messaging_service_sid: str | None = None,
) -> dict[str, str]:
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "ApiVersion": API_VERSION,
    }
    if messaging_service_sid:
        form["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form
