"""Prometheus metrics (prometheus-client): what the rest of the code records, in one-line calls, and how
/metrics renders them.

Every name starts `inbox_`. Counters and histograms are recorded where things happen (webhooks by this
module's middleware, texts in the outbox, provider calls around the call, event delivery in the live hub);
the outbox backlog is read from the database when /metrics is scraped, and open streams are set as tabs
come and go.

Several processes (uvicorn --workers, `inbox worker`): each process counts on its own. With
PROMETHEUS_MULTIPROC_DIR set (an empty directory, wiped before the processes start), prometheus-client
keeps every process's values in files there and /metrics, in whichever process answers, adds them up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import generate_latest as _generate
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")

WEBHOOKS = Counter(
    "inbox_webhooks", "Webhooks from Twilio, by kind and outcome (the answer's status).", ["kind", "outcome"]
)
TEXTS_SENT = Counter("inbox_texts_sent", "Texts Twilio accepted from the outbox.")
TEXTS_FAILED = Counter("inbox_texts_failed", "Texts that failed for good (refused by Twilio, or retries spent).")
TEXTS_RETRIED = Counter("inbox_texts_retried", "Attempts to send a text that will be tried again.")
OUTBOX_BACKLOG = Gauge(
    "inbox_outbox_backlog", "Texts due now and not yet accepted by Twilio.", multiprocess_mode="mostrecent"
)
OUTBOX_OLDEST = Gauge(
    "inbox_outbox_oldest_age_seconds",
    "How long the longest-waiting due text has been due.",
    multiprocess_mode="mostrecent",
)
INBOUND_BACKLOG = Gauge(
    "inbox_inbound_backlog",
    "Texts Twilio was answered for and not yet processed (stored, or in SQLite's spool).",
    multiprocess_mode="mostrecent",
)
INBOUND_OLDEST = Gauge(
    "inbox_inbound_oldest_age_seconds",
    "How long ago the oldest of them was received.",
    multiprocess_mode="mostrecent",
)
OPEN_STREAMS = Gauge(
    "inbox_open_streams", "Event streams (tabs and API clients) open now.", multiprocess_mode="livesum"
)
EVENT_DELIVERY = Histogram(
    "inbox_event_delivery_seconds",
    "From an event's publication to its fragments being queued for every open tab, by event type.",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PROVIDER_CALLS = Histogram(
    "inbox_provider_call_seconds",
    "Calls to the SMS provider (Twilio, or the simulator), by operation and outcome.",
    ["operation", "outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)

# ---------------------------------------------------------------- recording


WEBHOOK_KINDS = {
    "/webhooks/twilio/messages": "message",
    "/webhooks/twilio/status": "status",
    "/webhooks/twilio/voice": "voice",
}


def webhook_outcome(status: int) -> str:
    if status < 300:
        return "accepted"
    if status == 403:
        return "forbidden"  # no, or a wrong, signature
    if status == 422:
        return "invalid"
    return "error" if status >= 500 else "refused"


class WebhookMetrics:
    """Counts each Twilio webhook by kind and outcome from the status it was answered with (pure ASGI: the
    routes stay as they are, whatever they become)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = WEBHOOK_KINDS.get(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            WEBHOOKS.labels(kind, webhook_outcome(status)).inc()


def text_attempt(outcome: str) -> None:
    """One attempt's outcome, as the outbox records it (inbox.models.AttemptOutcome's values)."""
    if outcome == "accepted":
        TEXTS_SENT.inc()
    elif outcome == "failed":
        TEXTS_FAILED.inc()
    else:  # retry, unknown: it will be tried (or looked up) again
        TEXTS_RETRIED.inc()


def text_failed() -> None:
    """A text that failed without an attempt at Twilio (it could not be offered at all)."""
    TEXTS_FAILED.inc()


async def provider_call(operation: str, call: Awaitable[T]) -> T:
    """Awaits `call`, timing it: `result = await metrics.provider_call("send", provider.send(text))`."""
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await call
        outcome = "ok"
        return result
    finally:
        PROVIDER_CALLS.labels(operation, outcome).observe(time.perf_counter() - started)


# Set on the event object the bus hands to subscribers: when it was published (wall clock, so a network bus
# can carry it across processes in its envelope).
_PUBLISHED_AT = "_published_at"


def published(event: object, at: float | None = None) -> None:
    """Stamps the event as published now (or `at`, a time.time() another process sent along)."""
    object.__setattr__(event, _PUBLISHED_AT, time.time() if at is None else at)


def published_at(event: object) -> float | None:
    return getattr(event, _PUBLISHED_AT, None)


def delivered(event: object, type_: str, tabs: int) -> None:
    """The live hub has queued what `event` means for its `tabs` open tabs (nothing is timed without tabs)."""
    at = published_at(event)
    if at is not None and tabs:
        EVENT_DELIVERY.labels(type_).observe(max(time.time() - at, 0.0))


def open_streams(count: int) -> None:
    OPEN_STREAMS.set(count)


def outbox_backlog(due: int, oldest_seconds: float) -> None:
    OUTBOX_BACKLOG.set(due)
    OUTBOX_OLDEST.set(oldest_seconds)


def inbound_backlog(waiting: int, oldest_seconds: float) -> None:
    INBOUND_BACKLOG.set(waiting)
    INBOUND_OLDEST.set(oldest_seconds)


# ---------------------------------------------------------------- rendering


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: this process's metrics, or every process's in
    multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return _generate(registry), CONTENT_TYPE_LATEST
    return _generate(REGISTRY), CONTENT_TYPE_LATEST


def process_exited() -> None:
    """In multiprocess mode, a stopping process's live gauges (open streams) stop counting."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
