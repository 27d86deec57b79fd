"""Outgoing webhooks: events told to the endpoints admins registered, signed per Standard Webhooks.

    event in a unit of work ──same transaction──▶ WebhookDelivery (waiting) ──claim──▶ sending (a lease)
        ──POST──▶ delivered (2xx) │ retrying after 5 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h, 12 h ──▶ failed

A delivery row is written inside the transaction that caused its event (inbox.services.unit_of_work calls
`record_deliveries` just before committing), so a change that rolls back sends nothing and a committed one is
never lost. Workers claim due rows like the outbox claims texts (`SELECT … FOR UPDATE SKIP LOCKED` on
PostgreSQL, a conditional UPDATE everywhere) and POST outside any transaction under a lease; a worker killed
mid-POST leaves its lease to expire and another worker sends the delivery again with the same `webhook-id`.
Delivery is therefore at least once: receivers dedupe by `webhook-id`, as the specification says.

Payloads carry ids and the fields the event is about, never a text's words or a client's name: a receiver
that needs more asks the JSON API with its own token, which checks who may see what.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook
from tortoise.expressions import F, Q
from tortoise.query_utils import Prefetch
from tortoise.transactions import in_transaction

from inbox import clock
from inbox.crypto import SecretBox, SecretUnreadable
from inbox.events import (
    Bus,
)
from inbox.models import (
    DeliveryState,
    Role,
    Staff,
    Task,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from inbox.services import audit, settings_news
from inbox.services.errors import NotFound, Refused, require
from inbox.services.limits import clip
from inbox.services.webhook_recording import EVENT_TYPES

log = logging.getLogger(__name__)

# Waits before each retry; after the last one fails, the delivery fails (about 22 hours in all).
BACKOFF_SECONDS = (5, 30, 120, 600, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
# An endpoint whose every attempt has failed for this long is disabled, and the admins told.
DISABLE_AFTER = timedelta(days=1)
# A POST gives up after this long, and a claim lasts this long (the app passes INBOX_SEND_TIMEOUT_SECONDS and
# the outbox's lease, INBOX_OUTBOX_LEASE_SECONDS).
POST_TIMEOUT_SECONDS = 20.0
LEASE = timedelta(seconds=60)
CANDIDATES = 20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_URL_LENGTH = 2000


# ---------------------------------------------------------------- endpoints


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def url_problem(url: str) -> str | None:
    """Why this URL cannot receive webhooks, in words an admin can act on; None when it can."""
    if not url:
        return "Enter the URL that should receive the events."
    if len(url) > MAX_URL_LENGTH:
        return f"Use a URL of at most {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "This is not a URL: enter one like https://cms.example.org/hooks/case-inbox."
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None  # development and tests: a receiver on this machine, nothing crosses a network
    return "Use an https:// URL (http:// only for 127.0.0.1 or localhost, during development)."


def events_problem(events: Sequence[str]) -> str | None:
    if not events:
        return "Choose at least one event to send."
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        return f"Unknown event types: {', '.join(unknown)}. Choose from: {', '.join(EVENT_TYPES)}."
    return None


async def create_endpoint(
    box: SecretBox, admin: Staff, url: str, events: Sequence[str], bus: Bus | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret: the only time the secret is shown; it is stored encrypted."""
    url = url.strip()
    problems = {"url": url_problem(url), "events": events_problem(events)}
    require({name: words for name, words in problems.items() if words})
    secret = new_secret()
    chosen = [name for name in EVENT_TYPES if name in set(events)]
    async with in_transaction():
        endpoint = await WebhookEndpoint.create(
            url=url, events=chosen, secret_encrypted=box.encrypt(secret), created_by_id=admin.id
        )
        await _audit(admin, endpoint, "created", events=chosen)
    await settings_news.changed(bus, settings_news.ENDPOINTS)
    return endpoint, secret


async def _audit(admin: Staff | None, endpoint: WebhookEndpoint, change: str, **detail: audit.Detail) -> None:
    """Endpoints are settings: who added, enabled, disabled or deleted which (its address without a query
    string, which may carry a receiver's token; never the secret)."""
    where = urlsplit(endpoint.url)
    address = f"{where.scheme}://{where.netloc}{where.path}"
    await audit.record(
        audit.Action.SETTING_CHANGED, admin, endpoint, setting="webhook_endpoint", change=change, url=address, **detail
    )


async def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.get_or_none(id=endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint: it may have been deleted.")
    return endpoint


async def set_enabled(admin: Staff, endpoint_id: int, enabled: bool, bus: Bus | None = None) -> WebhookEndpoint:
    """Enable (its waiting deliveries go out again, its failure clock restarts) or disable an endpoint."""
    endpoint = await get_endpoint(endpoint_id)
    changes: dict[str, Any] = {"enabled": enabled}
    if enabled:
        changes |= {"failing_since": None, "disabled_reason": ""}
    else:
        changes["disabled_reason"] = "Disabled by an admin."
    async with in_transaction():
        await WebhookEndpoint.filter(id=endpoint_id).update(**changes)
        await _audit(admin, endpoint, "enabled" if enabled else "disabled", before={"enabled": endpoint.enabled})
    await settings_news.changed(bus, settings_news.ENDPOINTS)
    await endpoint.refresh_from_db()
    return endpoint


async def delete_endpoint(admin: Staff, endpoint_id: int, bus: Bus | None = None) -> None:
    """The endpoint and its delivery log (nothing more is sent to it)."""
    endpoint = await get_endpoint(endpoint_id)
    async with in_transaction():
        await _audit(admin, endpoint, "deleted")
        if not await WebhookEndpoint.filter(id=endpoint_id).delete():
            raise NotFound("No such webhook endpoint: it may have been deleted.")
    await settings_news.changed(bus, settings_news.ENDPOINTS)


async def list_endpoints() -> list[WebhookEndpoint]:
    return await WebhookEndpoint.all().order_by("id")


async def last_deliveries(endpoint_ids: Sequence[int]) -> dict[int, WebhookDelivery]:
    """Each endpoint's latest delivery, for the list's "last delivery" column."""
    latest: dict[int, WebhookDelivery] = {}
    for endpoint_id in endpoint_ids:
        row = await WebhookDelivery.filter(endpoint_id=endpoint_id).order_by("-id").first()
        if row is not None:
            latest[endpoint_id] = row
    return latest


async def delivery_log(endpoint_id: int, limit: int = 50) -> list[WebhookDelivery]:
    """An endpoint's latest deliveries, newest first, each with its attempts."""
    query = WebhookDelivery.filter(endpoint_id=endpoint_id).order_by("-id").limit(limit)
    return await query.prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.all().order_by("id")))


async def send_again(endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """A person's "Send again": a fresh round of attempts, due now, under the same webhook-id."""
    now = clock.now()
    won = await WebhookDelivery.filter(
        id=delivery_id, endpoint_id=endpoint_id, state__not=DeliveryState.SENDING
    ).update(state=DeliveryState.WAITING, next_attempt_at=now, attempt_count=0, lease_owner=None, lease_expires_at=None)
    if not won:
        if await WebhookDelivery.exists(id=delivery_id, endpoint_id=endpoint_id):
            raise Refused("This delivery is being sent right now; look again in a minute.")
        raise NotFound("No such delivery for this endpoint.")
    return await WebhookDelivery.get(id=delivery_id)


# ---------------------------------------------------------------- recording (inside the unit of work)


# ---------------------------------------------------------------- delivering


@dataclass
class WebhookSender:
    """What delivering needs: the secrets' box, an HTTP client, and whose leases this process's claims are."""

    box: SecretBox
    timeout: float
    worker_id: str = "web"
    lease: timedelta = LEASE
    bus: Bus | None = None  # tells the other processes of an endpoint it disabled
    _client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """Made at the first delivery: its TLS context loads the CA bundle (~30 ms of CPU), and most processes
        (a web process without a worker, an organisation with no endpoint) never deliver."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def build_sender(
    box: SecretBox,
    worker_id: str,
    timeout: float = POST_TIMEOUT_SECONDS,
    lease: timedelta = LEASE,
    bus: Bus | None = None,
) -> WebhookSender:
    # Never shorter than a POST that runs to its timeout: a slow receiver is not taken for a dead worker.
    lease = max(lease, timedelta(seconds=timeout + 5))
    return WebhookSender(box, timeout, worker_id, lease, bus)


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint


def due(now: datetime) -> Q:
    """Deliveries a worker may claim: waiting or retrying and due, or held under a lease that expired."""
    waiting = Q(state__in=[DeliveryState.WAITING, DeliveryState.RETRYING], next_attempt_at__lte=now)
    return waiting | Q(state=DeliveryState.SENDING, lease_expires_at__lt=now)


async def claim_delivery(sender: WebhookSender, now: datetime | None = None) -> ClaimedDelivery | None:
    """The next due delivery, now this worker's under a lease (committed before the POST); None when none is."""
    moment = (now or clock.now()).astimezone(UTC)
    # A disabled endpoint's deliveries wait for it to be enabled again.
    ordered = WebhookDelivery.filter(due(moment), endpoint__enabled=True).order_by("next_attempt_at", "id")
    if WebhookDelivery._meta.db.capabilities.dialect == "postgres":
        async with in_transaction():
            row = await ordered.select_for_update(skip_locked=True, of=("webhook_delivery",)).first()
            if row is None or not await _take(sender, row, moment):
                return None
    else:
        row = None
        for candidate in await ordered.limit(CANDIDATES):
            if await _take(sender, candidate, moment):
                row = candidate
                break
        if row is None:
            return None
    delivery = await WebhookDelivery.get(id=row.id)
    return ClaimedDelivery(delivery, await WebhookEndpoint.get(id=delivery.endpoint_id))


async def _take(sender: WebhookSender, row: WebhookDelivery, now: datetime) -> bool:
    """The conditional UPDATE only one claimant wins."""
    won = await WebhookDelivery.filter(due(now), id=row.id).update(
        state=DeliveryState.SENDING,
        lease_owner=sender.worker_id,
        lease_expires_at=now + sender.lease,
        attempt_count=F("attempt_count") + 1,
    )
    return bool(won)


def signed_headers(secret: str, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (its timestamp is the attempt's, its id the delivery's)."""
    return {
        "content-type": "application/json",
        "user-agent": "CaseInbox-Webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    response_ms: int | None
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(sender: WebhookSender, claimed: ClaimedDelivery, now: datetime) -> Answer:
    """One POST, outside any transaction; its outcome in words (never raises for the receiver's faults)."""
    try:
        secret = sender.box.decrypt(claimed.endpoint.secret_encrypted)
    except SecretUnreadable as exc:
        return Answer(None, None, str(exc))
    delivery = claimed.delivery
    headers = signed_headers(secret, delivery.webhook_id, now, delivery.body)
    started = time.monotonic()
    try:
        response = await sender.client.post(claimed.endpoint.url, content=delivery.body.encode(), headers=headers)
    except httpx.TimeoutException:
        return Answer(None, _ms_since(started), "No answer in time (INBOX_SEND_TIMEOUT_SECONDS).")
    except httpx.HTTPError as exc:
        return Answer(None, _ms_since(started), f"Could not connect: {exc!r}")
    error = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:200]}"
    return Answer(response.status_code, _ms_since(started), error)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def deliver(sender: WebhookSender, claimed: ClaimedDelivery, now: datetime | None = None) -> WebhookDelivery:
    """POST a claimed delivery and record the attempt: delivered, retrying after its backoff, or failed."""
    moment = now or clock.now()
    answer = await post(sender, claimed, moment)
    await record_attempt(sender, claimed, answer, moment)
    return await WebhookDelivery.get(id=claimed.delivery.id)


async def record_attempt(sender: WebhookSender, claimed: ClaimedDelivery, answer: Answer, now: datetime) -> None:
    delivery = claimed.delivery
    ours = Q(id=delivery.id, state=DeliveryState.SENDING, lease_owner=sender.worker_id)
    lease_off: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "last_status_code": answer.status_code}
    async with in_transaction():
        if answer.ok:
            outcome = {"state": DeliveryState.DELIVERED, "next_attempt_at": None, "delivered_at": now, "last_error": ""}
        elif delivery.attempt_count > len(BACKOFF_SECONDS):
            outcome = {"state": DeliveryState.FAILED, "next_attempt_at": None}
        else:
            wait = BACKOFF_SECONDS[delivery.attempt_count - 1]
            outcome = {"state": DeliveryState.RETRYING, "next_attempt_at": now + timedelta(seconds=wait)}
        if not answer.ok:
            outcome["last_error"] = clip(answer.error, WebhookDelivery, "last_error")
        if not await WebhookDelivery.filter(ours).update(**lease_off, **outcome):
            log.warning("Webhook delivery %s was answered after its lease passed on", delivery.id)
            return
        await WebhookAttempt.create(
            delivery_id=delivery.id,
            at=now,
            status_code=answer.status_code,
            response_ms=answer.response_ms,
            error=clip(answer.error, WebhookAttempt, "error"),
            worker=clip(sender.worker_id, WebhookAttempt, "worker"),
        )
        disabled = await _note_endpoint_health(claimed.endpoint.id, answer.ok, now)
    if disabled:  # every process stops recording deliveries for it (after the commit: a unit of work of its own)
        await settings_news.changed(sender.bus, settings_news.ENDPOINTS)


async def _note_endpoint_health(endpoint_id: int, ok: bool, now: datetime) -> bool:
    """A success restarts the failure clock; a day of nothing but failures disables the endpoint (True)."""
    if ok:
        await WebhookEndpoint.filter(id=endpoint_id, failing_since__not_isnull=True).update(failing_since=None)
        return False
    await WebhookEndpoint.filter(id=endpoint_id, failing_since__isnull=True).update(failing_since=now)
    reason = clip(
        f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery failed for a day.",
        WebhookEndpoint,
        "disabled_reason",
    )
    disabled = await WebhookEndpoint.filter(
        id=endpoint_id, enabled=True, failing_since__lte=now - DISABLE_AFTER
    ).update(enabled=False, disabled_reason=reason)
    if disabled:
        endpoint = await WebhookEndpoint.get(id=endpoint_id)
        await _audit(None, endpoint, "disabled after a day of failures")
        await _tell_admins(endpoint, now)
    return bool(disabled)


async def _tell_admins(endpoint: WebhookEndpoint, now: datetime) -> None:
    """Each active admin gets a task (their task list, and their reminders) to look at the endpoint."""
    log.warning("Webhook endpoint %s was disabled after a day of failed deliveries", endpoint.id)
    title = clip(f"Webhook endpoint {endpoint.url} was disabled after a day of failures", Task, "title")
    notes = (
        "Every delivery to it failed for 24 hours. Check the receiver, then enable it again at /admin/webhooks "
        "(its waiting deliveries then go out) and send the failed ones again from its delivery log."
    )
    for admin in await Staff.filter(role=Role.ADMIN, is_active=True):
        await Task.create(title=title, due_at=now, assignee_id=admin.id, notes=notes)


async def deliver_due(sender: WebhookSender, now: datetime | None = None, limit: int | None = None) -> int:
    """Deliver every delivery due now (or at `now`), one claim at a time; how many were tried. Tests and the
    worker's lane drive it."""
    tried = 0
    while limit is None or tried < limit:
        claimed = await claim_delivery(sender, now)
        if claimed is None:
            break
        await deliver(sender, claimed, now)
        tried += 1
    return tried


async def release_leases(sender: WebhookSender) -> int:
    """A stopping worker hands back what it claimed but did not POST: due again at once."""
    return await WebhookDelivery.filter(state=DeliveryState.SENDING, lease_owner=sender.worker_id).update(
        state=DeliveryState.RETRYING, lease_owner=None, lease_expires_at=None, next_attempt_at=clock.now()
    )
