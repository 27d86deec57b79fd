"""The outbox worker: hands due texts to Twilio (inbox.services.outbox decides what may go and how),
retries attachment downloads, and POSTs outgoing webhooks (inbox.services.outgoing_webhooks).

Any number of workers may run — `inbox worker` processes and the one inside `inbox serve` — because
every text is claimed under a lease in the database. A worker runs a few lanes at once, so one slow
number (a send that waits for its timeout) never holds up the others. On SIGTERM it stops claiming,
lets the calls in flight finish, and hands back what it still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from inbox import clock
from inbox.services import operations, outgoing_webhooks
from inbox.services.confirmations import alert_unconfirmed_hearings
from inbox.services.media import fetch_due_media
from inbox.services.messaging import Outbox
from inbox.services.outbox import Claimed, Idle, claim_next, deliver, release_leases
from inbox.services.outgoing_webhooks import WebhookSender

log = logging.getLogger(__name__)

# How often an idle lane looks for due work (a hand-sent text does not wait for it: it is sent at once).
POLL_SECONDS = 1.0
# The shortest sleep while a paced channel frees up: below it, waking costs more than it saves.
SHORTEST_NAP = 0.002
# How often the worker looks for hearings 48 hours ahead still waiting for the client's C.
CHECK_SECONDS = 60.0
# How often a worker records that it is alive (/readyz wants a heartbeat within three of these).
HEARTBEAT_SECONDS = 10.0
# Deliveries of outgoing webhooks POSTed at once (one slow receiver does not hold up the others).
WEBHOOK_LANES = 2
# How long a stopping worker waits for its calls in flight (Twilio's timeout is shorter).
STOP_GRACE_SECONDS = 30.0


async def send_due(outbox: Outbox, now: datetime | None = None, limit: int | None = None) -> int:
    """Hand over every text due now (or at `now`), one claim at a time, until none is left that may go
    now; the number handed over (or tried). Tests and benchmarks drive the outbox with it."""
    handed = 0
    while limit is None or handed < limit:
        claimed = await claim_next(outbox, now=now)
        if not isinstance(claimed, Claimed):
            break
        await deliver(outbox, claimed)
        handed += 1
    return handed


async def fetch_due(outbox: Outbox) -> int:
    """Attachments whose download failed (or whose process died mid-download), when their retry is due."""
    return await fetch_due_media(outbox.provider, outbox.media_dir, outbox.bus)


async def check_due(outbox: Outbox, now: datetime | None = None) -> int:
    """The periodic checks: alerts for unconfirmed hearings 48 hours ahead (raised once each)."""
    return await alert_unconfirmed_hearings(outbox.bus, now or clock.now())


class OutboxWorker:
    def __init__(
        self,
        outbox: Outbox,
        lanes: int = 4,
        poll: float = POLL_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.outbox = outbox
        self.webhooks = webhooks
        self.lanes = max(lanes, 1)
        self.poll = poll
        self.heartbeat = heartbeat
        self.handed_over = 0
        self._stopping = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now (new texts were put in the outbox)."""
        self._wake.set()

    async def run(self) -> None:
        """Until `stop()`: the lanes, and the attachment retries beside them."""
        lanes = [asyncio.create_task(self._lane(n), name=f"outbox-lane-{n}") for n in range(self.lanes)]
        media = asyncio.create_task(self._media(), name="outbox-media")
        checks = asyncio.create_task(self._checks(), name="outbox-checks")
        beating = asyncio.create_task(self._beat(), name="outbox-heartbeat")
        hooks = [asyncio.create_task(self._webhooks(), name=f"webhook-lane-{n}") for n in range(self._hook_lanes)]
        try:
            await asyncio.gather(*lanes, *hooks)
        finally:
            for task in (*lanes, *hooks, media, checks, beating):
                task.cancel()
            await asyncio.gather(*lanes, *hooks, media, checks, beating, return_exceptions=True)
            with contextlib.suppress(Exception):
                await operations.forget(self.outbox.worker_id)
            with contextlib.suppress(Exception):
                released = await release_leases(self.outbox)
                if released:
                    log.info("Handed back %d claimed texts on stopping", released)
            if self.webhooks is not None:
                with contextlib.suppress(Exception):
                    await outgoing_webhooks.release_leases(self.webhooks)

    @property
    def _hook_lanes(self) -> int:
        return WEBHOOK_LANES if self.webhooks is not None else 0

    def stop(self) -> None:
        """Stop claiming; each lane ends once its call in flight has finished."""
        self._stopping = True
        self._wake.set()

    async def _lane(self, number: int) -> None:
        while not self._stopping:
            try:
                outcome = await claim_next(self.outbox)
                if isinstance(outcome, Claimed):
                    # Shielded: a stop (or a cancelled task) lets the call to Twilio finish and be recorded.
                    await asyncio.shield(deliver(self.outbox, outcome))
                    self.handed_over += 1
                    continue
                await self._rest(outcome)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the outbox running; the failure is in the log
                log.exception("Outbox lane %d failed a round", number)
                await self._rest(Idle())

    async def _rest(self, idle: Idle) -> None:
        timeout = self.poll
        if idle.until is not None:
            timeout = min(max((idle.until - clock.now()).total_seconds(), SHORTEST_NAP), self.poll)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        if not self._stopping:
            self._wake.clear()

    async def _media(self) -> None:
        while not self._stopping:
            try:
                await fetch_due(self.outbox)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The outbox worker failed a round of attachment downloads")
            await asyncio.sleep(self.poll)

    async def _beat(self) -> None:
        """The heartbeat /readyz reads: first at once, so a worker that has just started counts."""
        started = clock.now()
        while not self._stopping:
            try:
                await operations.beat(self.outbox.worker_id, clock.now(), started)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: /readyz says so; the beats resume with it
                log.warning("The outbox worker could not record its heartbeat", exc_info=True)
            await asyncio.sleep(self.heartbeat)

    async def _webhooks(self) -> None:
        """Outgoing webhooks: claim and POST due deliveries until none is left, then rest a poll."""
        assert self.webhooks is not None
        while not self._stopping:
            try:
                claimed = await outgoing_webhooks.claim_delivery(self.webhooks)
                if claimed is not None:
                    # Shielded like a text's send: a stop lets the POST finish and be recorded.
                    await asyncio.shield(outgoing_webhooks.deliver(self.webhooks, claimed))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The outbox worker failed a round of webhook deliveries")
            await asyncio.sleep(self.poll)

    async def _checks(self) -> None:
        # Every worker runs them: each alert is raised once however many look (see alert_unconfirmed_hearings).
        while not self._stopping:
            try:
                await check_due(self.outbox)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The outbox worker failed a round of periodic checks")
            await asyncio.sleep(max(self.poll, CHECK_SECONDS))


async def stop_gracefully(worker: OutboxWorker, task: asyncio.Task[None], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop claiming, give the calls in flight `grace` seconds, then cancel what is left."""
    worker.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
