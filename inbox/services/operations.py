"""What operators ask of a running installation: is it ready (database, bus, a live worker), how far
behind are the outbox and the processing of received texts, and the heartbeats workers record so that the
answer can be known."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise import Tortoise

from inbox.events import Bus
from inbox.models import Message, WebhookPayload, WorkerHeartbeat
from inbox.services.outbox import IN_THE_OUTBOX

log = logging.getLogger(__name__)

# One check may take this long before it counts as failed: a load balancer must get an answer.
CHECK_TIMEOUT_SECONDS = 2.0
# A heartbeat counts as fresh within this many intervals (one missed beat is not a dead worker).
FRESH_BEATS = 3
# Rows of workers that stopped without saying so are removed once this old.
FORGET_AFTER = timedelta(days=1)
CHECKS = ("database", "bus", "worker")


# ---------------------------------------------------------------- heartbeats


async def beat(worker: str, now: datetime, started_at: datetime) -> None:
    """This worker is alive at `now`; long-dead workers' rows go at the same time."""
    if not await WorkerHeartbeat.filter(worker=worker).update(beat_at=now):
        await WorkerHeartbeat.create(worker=worker, beat_at=now, started_at=started_at)
    await WorkerHeartbeat.filter(beat_at__lt=now - FORGET_AFTER).delete()


async def forget(worker: str) -> None:
    """A worker that stops cleanly says so at once, rather than leave /readyz to notice in 3 beats."""
    await WorkerHeartbeat.filter(worker=worker).delete()


async def latest_beat() -> datetime | None:
    row = await WorkerHeartbeat.all().order_by("-beat_at").first()
    return row.beat_at if row is not None else None


# ---------------------------------------------------------------- readiness


@dataclass
class Readiness:
    """Each check's verdict in words (never an exception's text: it may name a host or a user)."""

    checks: dict[str, str] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.failing

    def passed(self, name: str, words: str = "ok") -> None:
        self.checks[name] = words

    def failed(self, name: str, words: str) -> None:
        self.checks[name] = words
        self.failing.append(name)


async def readiness(bus: Bus, now: datetime, heartbeat_seconds: float, only: tuple[str, ...] = CHECKS) -> Readiness:
    """The database answers, the bus is reachable and some worker beat within 3 intervals (each as asked)."""
    result = Readiness()
    database_up = await _database_answers()
    if "database" in only:
        if database_up:
            result.passed("database")
        else:
            result.failed("database", f"did not answer within {CHECK_TIMEOUT_SECONDS:g} s")
    if "bus" in only:
        if await _bus_ready(bus):
            result.passed("bus")
        else:
            result.failed("bus", "not reachable")
    if "worker" in only:
        if not database_up:  # its heartbeat is in the database: unknown, and the database is named already
            result.failed("worker", "unknown while the database does not answer")
        else:
            await _check_worker(result, now, heartbeat_seconds)
    return result


async def _database_answers() -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await Tortoise.get_connection("default").execute_query("SELECT 1")
        return True
    except Exception:
        log.warning("Readiness: the database did not answer", exc_info=True)
        return False


async def _bus_ready(bus: Bus) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await bus.ready()
    except Exception:
        log.warning("Readiness: the event bus is not reachable", exc_info=True)
        return False


async def _check_worker(result: Readiness, now: datetime, heartbeat_seconds: float) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            last = await latest_beat()
    except Exception:
        log.warning("Readiness: could not read the workers' heartbeats", exc_info=True)
        result.failed("worker", "heartbeats could not be read")
        return
    if last is None:
        result.failed("worker", "no outbox worker has run (start `inbox worker`, or `inbox serve` with its worker)")
    elif now - last > timedelta(seconds=FRESH_BEATS * heartbeat_seconds):
        result.failed("worker", f"no outbox worker heartbeat since {last.isoformat()}")
    else:
        result.passed("worker")


# ---------------------------------------------------------------- the outbox, as metrics see it


@dataclass(frozen=True)
class Backlog:
    due: int  # texts due now and not yet handed to Twilio (waiting, retrying, or being sent)
    oldest_seconds: float  # how long the longest-waiting of them has been due (0 when none)


async def outbox_backlog(now: datetime) -> Backlog:
    """Two indexed reads: the count of due texts, and the earliest due time."""
    due = Message.filter(outbox_state__in=list(IN_THE_OUTBOX), next_attempt_at__lte=now)
    count = await due.count()
    if not count:
        return Backlog(0, 0.0)
    earliest = await due.order_by("next_attempt_at").only("id", "next_attempt_at").first()
    if earliest is None or earliest.next_attempt_at is None:  # sent on between the two reads
        return Backlog(count, 0.0)
    return Backlog(count, max((now - earliest.next_attempt_at).total_seconds(), 0.0))


# ---------------------------------------------------------------- received texts not yet processed


@dataclass(frozen=True)
class InboundBacklog:
    waiting: int  # texts answered and not yet processed
    oldest_seconds: float  # how long ago the oldest of them was received (0 when none)


async def inbound_backlog(now: datetime, spooled: tuple[int, datetime | None]) -> InboundBacklog:
    """Texts Twilio was answered for and nobody has processed yet: unprocessed inbound webhooks (the unprocessed-row
    index: a count and the lowest id), plus `spooled`, what SQLite's spool holds (count, oldest received). A
    processor keeping up shows a few; a growing number says the workers are behind (or none runs)."""
    waiting = WebhookPayload.filter(kind="message", processed_at=None)
    count = await waiting.count()
    oldest = spooled[1]
    if count:
        first = await waiting.order_by("id").only("id", "received_at").first()
        if first is not None and (oldest is None or first.received_at < oldest):
            oldest = first.received_at
    if oldest is None:
        return InboundBacklog(count + spooled[0], 0.0)
    return InboundBacklog(count + spooled[0], max((now - oldest).total_seconds(), 0.0))
