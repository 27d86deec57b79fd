"""Fast ingest: Twilio's inbound webhook is acknowledged once it is stored, and processed right after.

The route verifies the signature and calls `Ingest.accept`. Webhooks that arrive together are stored
together (one multi-row INSERT, one commit: a group commit), and each is answered once its row is
durable — nothing acknowledged can be lost. On SQLite, those left to the processor are stored in the spool,
a file with a writer of its own, and moved into the database right after (inbox.services.spool). Processing
(conversation, message, links, alerts, consent and its replies, events: `inbound.receive_stored_many`, a
claimed batch in one unit of work) runs after:

- inline, before the answer, when no other webhook is in flight in this process (a quiet inbox: the text
  is processed by the time Twilio hears back, as it always was, and a test can look at the database at once);
- else by a processor that claims stored texts in batches (`claim_texts`: a lease in `claimed_until`,
  `FOR UPDATE SKIP LOCKED` on PostgreSQL, one UPDATE … RETURNING on SQLite). Where it runs: in the web
  process when that is the only process (`inbox serve`, or an event bus in memory: a worker's events
  would never reach this process's tabs); in `inbox worker` when the web runs with `--no-worker` on a
  network bus — then a burst's storing and processing use two cores, and the web only stores and answers;
- stored texts nobody finished (a crash, kill -9: their lease runs out, or they were never claimed) are
  claimed again; a process takes over every unfinished text received before it started at once.

A text is processed at most once however often it is tried: `Message.provider_sid` is unique, and a
second try of the same MessageSid is recorded as a duplicate (Twilio's own retries come the same way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise import connections

from inbox import clock, db
from inbox.models import WebhookPayload
from inbox.services import inbound, messaging, outbox, spool
from inbox.services.messaging import Outbox
from inbox.services.spool import ORPHAN_SECONDS, Spool, spool_path, spooled

log = logging.getLogger(__name__)

STORE_BATCH = 200  # webhooks stored by one INSERT at most
# Stored texts claimed at once, at most. A batch's statements do not grow with its texts, so a bigger batch is
# cheaper a text: on SQLite 0.96 ms a text in batches of 10, 0.24 in 100, 0.19 in 200 (NOTES.md). SQLite's web
# stores no longer wait for a batch's writer under load (the spool), so its batches need not be short either.
PROCESS_BATCH = 200
# Free texts a claim looks at, oldest first, per text it takes (those behind a text of their sender being processed
# are passed over): when all are (one sender's long backlog behind a dead process's lease), the rest wait for it.
CLAIM_SCAN_FACTOR = 4
SENDER_LENGTH = 64  # webhook_payload.sender
LEASE_SECONDS = 60.0  # a claimed text not finished in this time is claimed again (its process died)
RECOVER_SECONDS = 60.0  # a web process that leaves processing to workers still takes up texts this old
# How often an idle web process looks for texts it was not told about (another process's expired lease): its
# own are announced to it at once, and a poll is a statement in every page's query count (the tests count them).
POLL_SECONDS = 60.0
WORKER_POLL_SECONDS = 0.05  # a worker is never told (another process stored them): it looks this often
SPOOL_RETRY_SECONDS = 30  # a spool that failed is not tried again for this long (the database stores meanwhile)
MOVE_RETRY_SECONDS = 1.0  # a failed move of spooled rows is tried again this soon (they stay durable meanwhile)
STOP_SECONDS = 10.0  # a stopping process finishes its claimed texts for at most this long


@dataclass
class FollowUps:
    """What is left once a text is processed: our answers to hand over and attachments to download."""

    replies: list[int] = field(default_factory=list)
    media: list[tuple[int, int]] = field(default_factory=list)  # (channel id, message id)

    def add(self, received: inbound.Received, channel_id: int) -> None:
        self.replies.extend(received.replies)
        if received.message is not None and received.fetch_media:
            self.media.append((channel_id, received.message.id))

    def __bool__(self) -> bool:
        return bool(self.replies or self.media)


@dataclass
class _Waiting:
    params: dict[str, str]
    token: str | None
    stored: asyncio.Future[None]


class Ingest:
    """One per process: stores verified inbound webhooks in groups; processes stored texts by claiming them.

    `processes`: whether this process processes texts it did not process inline (the web's only process,
    a worker); False for a web process whose workers do it — it then only takes up texts left
    RECOVER_SECONDS (no worker running)."""

    def __init__(
        self,
        outbox_: Outbox,
        now: Callable[[], datetime] = clock.now,
        *,
        processes: bool = True,
        poll: float = POLL_SECONDS,
    ) -> None:
        """`now`: the moment a text is judged by (office hours, a survey's window); stored rows and leases
        are always timed by the real clock."""
        self.outbox = outbox_
        self.now = now
        self.processes = processes
        self.poll = poll
        self._to_store: list[_Waiting] = []
        self._storing: asyncio.Task[None] | None = None
        self._accepting = 0  # webhooks in flight in this process
        self._inline = 0  # texts being processed before their own answer
        self._left = 0  # texts stored and left to the processor, ever (the inline path compares)
        self._follow_ups: set[asyncio.Task[None]] = set()
        self._processor: asyncio.Task[None] | None = None
        self._looking = False  # the processor is claiming or processing
        self._woken = asyncio.Event()
        self._woken.set()  # the first round takes over what earlier runs left
        self._changed = asyncio.Event()  # set whenever this process may have become quiet (drained waits on it)
        self._started_at: datetime | None = None
        self._spool: Spool | None = None  # SQLite's, once started (inbox.services.spool)
        self._to_move = asyncio.Event()  # this process spooled rows the mover has not moved yet
        self._moving = False
        self._mover: asyncio.Task[None] | None = None
        self._spool_retry_at = 0.0  # the loop's time: after the spool failed, the database stores until then

    # ------------------------------------------------------------ the webhook

    async def accept(self, params: Mapping[str, str], idempotency_token: str | None) -> FollowUps:
        """Stores the verified webhook durably; processes it now when no other webhook is in flight (returning
        what to do after the answer), else leaves it to the processor and returns nothing to do."""
        # Never while texts this process spooled wait to be moved: one may be this sender's last, and the
        # inline one would get the lower id (the thread would show the two swapped).
        inline = self._accepting == 0 and self._inline == 0 and not self._spool_waiting()
        self._accepting += 1
        try:
            if not inline:
                await self._store(dict(params), idempotency_token)
                self._left += 1
                if self.processes:
                    self._woken.set()
                return FollowUps()
            # Texts left to the processor from now on (while this one is stored, too) may be this sender's next.
            left_before = self._left
            # Alone (nothing else is in flight), in the database, claimed by this process until the lease ends.
            lease = clock.now() + timedelta(seconds=LEASE_SECONDS)
            (payload_id,) = await store_payloads([(dict(params), idempotency_token)], clock.now(), [lease])
            self._inline += 1
            try:
                return await self._process_claimed([payload_id])
            finally:
                self._inline -= 1
                # Texts left meanwhile may be the sender's next ones, which no claim takes before this one is
                # done (claim_texts): look again. Not otherwise: a claim is a statement of its own.
                if self.processes and self._left != left_before:
                    self._woken.set()
        finally:
            self._accepting -= 1
            self._changed.set()

    async def _store(self, params: dict[str, str], token: str | None) -> None:
        """Durable once this returns: stored with the webhooks that came with it (in the spool on SQLite)."""
        waiting = _Waiting(params, token, asyncio.get_running_loop().create_future())
        self._to_store.append(waiting)
        if self._storing is None:
            self._storing = asyncio.create_task(self._store_waiting(), name="ingest-store")
        return await waiting.stored

    async def _store_waiting(self) -> None:
        try:
            while self._to_store:
                group, self._to_store = self._to_store[:STORE_BATCH], self._to_store[STORE_BATCH:]
                try:
                    await self._store_group(group)
                except BaseException as exc:  # every webhook of the group is answered 500: Twilio sends it again
                    for waiting in group:
                        if not waiting.stored.done():
                            waiting.stored.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiting in group:
                    waiting.stored.set_result(None)
        finally:
            self._storing = None
            self._changed.set()

    async def _store_group(self, group: list[_Waiting]) -> None:
        """The group's rows, durable: on SQLite in the spool, whose writer no unit of work ever holds; on
        PostgreSQL in the database."""
        now = clock.now()
        loop = asyncio.get_running_loop()
        if self._spool is not None and loop.time() >= self._spool_retry_at:
            try:
                await self._spool.append([spooled(w.params, w.token, sender_of(w.params)) for w in group], now)
            except Exception:  # the spool is a shortcut: without it (a full disk, its file unwritable) the database
                log.exception("Could not spool inbound webhooks; the database stores them for %ds", SPOOL_RETRY_SECONDS)
                self._spool_retry_at = loop.time() + SPOOL_RETRY_SECONDS
            else:
                self._to_move.set()
                return
        await store_payloads([(w.params, w.token) for w in group], now)

    async def spooled(self) -> tuple[int, datetime | None]:
        """Texts answered and still in the spool (every process's), and when the oldest was received."""
        return (0, None) if self._spool is None else await self._spool.waiting()

    def _spool_waiting(self) -> bool:
        return self._to_move.is_set() or self._moving

    async def _move_spooled(self) -> None:
        """Moves what this process spooled into the database as soon as it can, and wakes the processor."""
        assert self._spool is not None
        while True:
            await self._to_move.wait()
            self._to_move.clear()
            self._moving = True
            try:
                while await self._spool.move():
                    if self.processes:
                        self._woken.set()
            except Exception:  # the rows stay spooled, durable: tried again shortly
                log.exception("Moving spooled inbound webhooks into the database failed; tried again")
                await asyncio.sleep(MOVE_RETRY_SECONDS)
                self._to_move.set()
            finally:
                self._moving = False
                self._changed.set()

    # ------------------------------------------------------------ the processor

    async def _process_claimed(self, payload_ids: list[int]) -> FollowUps:
        """Claimed texts, read in one query and processed as one batch: one unit of work (whose statements do
        not grow with the texts: inbound.record_inbound_many). On SQLite its transaction holds the one writer;
        the web's stores under load go to the spool meanwhile (inbox.services.spool). PostgreSQL no longer splits a
        claim into lanes on several connections: the worker is CPU-bound, and lanes of batches measured slower
        (bench/RESULTS.md, branch batch)."""
        follow_ups = FollowUps()
        try:
            payloads = await WebhookPayload.filter(id__in=payload_ids, processed_at=None).order_by("id")
        except Exception:  # the database itself failed: the rows stay stored and unprocessed for the recovery
            log.exception("Reading inbound webhooks %s failed; they are tried again later", payload_ids)
            return follow_ups
        await self._process_batch(payloads, follow_ups)
        return follow_ups

    async def _process_batch(self, payloads: list[WebhookPayload], follow_ups: FollowUps) -> None:
        """One unit of work for the texts; if it fails (a repeat racing in from another process), each is tried
        alone: one that fails again stays unprocessed (its error noted) and is claimed again when its lease
        runs out."""
        if len(payloads) > 1:
            try:
                received = await inbound.receive_stored_many(self.outbox, payloads, at=self.now())
            except Exception:
                log.warning(
                    "Processing %d inbound webhooks together failed; each is tried alone", len(payloads), exc_info=True
                )
                # Those the failed batch finished anyway (refused, no channel any more) are not tried again.
                ids = [payload.id for payload in payloads]
                payloads = await WebhookPayload.filter(id__in=ids, processed_at=None).order_by("id")
            else:
                for done in received:
                    if done.channel_id is not None:
                        follow_ups.add(done, done.channel_id)
                return
        for payload in payloads:
            await self._process_one(payload, follow_ups)

    async def _process_one(self, payload: WebhookPayload, follow_ups: FollowUps) -> None:
        try:
            received = await inbound.receive_stored(self.outbox, payload, at=self.now())
        except Exception as exc:
            log.exception("Processing inbound webhook %s failed; it is tried again later", payload.id)
            with suppress(Exception):
                await WebhookPayload.filter(id=payload.id).update(error=f"processing failed: {exc!r}"[:500])
            return
        if received.channel_id is not None:
            follow_ups.add(received, received.channel_id)

    async def _run(self) -> None:
        """Claims and processes batches until none is left, then waits to be woken (or `poll`)."""
        assert self._started_at is not None
        # First, when this process processes: everything unfinished from before it started, leased or not.
        taking_over = self.processes
        while True:
            self._woken.clear()
            self._looking = True
            try:
                await self._sweep_spool(taking_over)
                ids = await self._claim(taking_over)
                if ids:
                    self._follow_up(await self._process_claimed(ids))
                    continue
                taking_over = False
            except Exception:
                log.exception("Could not claim stored inbound webhooks")
            finally:
                self._looking = False
                self._changed.set()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.poll)

    async def _sweep_spool(self, taking_over: bool) -> None:
        """Moves spooled rows a dead process left (all spooled before this process started, on its first round);
        younger ones are their own process's mover's."""
        if self._spool is None:
            return
        assert self._started_at is not None
        before = self._started_at if taking_over else clock.now() - timedelta(seconds=ORPHAN_SECONDS)
        try:
            while await self._spool.move(received_before=before):
                pass
        except Exception:  # what is in the database is still claimed and processed
            log.exception("Could not move what another process left in the spool; tried again at the next look")

    async def _claim(self, taking_over: bool) -> list[int]:
        now = clock.now()
        assert self._started_at is not None
        if self.processes:
            received_before = None
        else:  # workers process them; this process takes up only what they have left for long
            received_before = now - timedelta(seconds=RECOVER_SECONDS)
        return await claim_texts(
            PROCESS_BATCH,
            now,
            lease_until=now + timedelta(seconds=LEASE_SECONDS),
            received_before=received_before,
            take_over_before=self._started_at if taking_over else None,
        )

    def _follow_up(self, follow_ups: FollowUps) -> None:
        if follow_ups:
            task = asyncio.create_task(run_follow_ups(self.outbox, follow_ups), name="ingest-follow-ups")
            self._follow_ups.add(task)
            task.add_done_callback(self._followed_up)

    def _followed_up(self, task: asyncio.Task[None]) -> None:
        self._follow_ups.discard(task)
        self._changed.set()

    # ------------------------------------------------------------ start, stop

    async def start(self) -> None:
        """Starts the processor; its first rounds take over what earlier runs stored and did not process."""
        self._started_at = clock.now()
        database_file = spool.database_file()
        if database_file is not None:
            self._spool = Spool(spool_path(database_file))
            self._mover = asyncio.create_task(self._move_spooled(), name="ingest-move-spooled")
        self._processor = asyncio.create_task(self._run(), name="ingest-process")

    def _quiet(self) -> bool:
        return (
            self._storing is None
            and self._accepting == 0
            and not self._looking
            and not self._woken.is_set()
            and not self._follow_ups
            and not self._spool_waiting()
        )

    async def drained(self) -> None:
        """Returns once every text this process stored or claimed is processed and its follow-ups have run
        (tests, shutdown); with `processes`, also once a claim found nothing left."""
        while True:
            self._changed.clear()
            if self._quiet():
                return
            await self._changed.wait()

    async def stop(self) -> None:
        """Finishes what is claimed (what is not finished in STOP_SECONDS is taken over at the next start)."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), STOP_SECONDS)
        for task in (self._processor, self._mover, *self._follow_ups):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._processor = self._mover = None
        if self._spool is not None:
            await self._spool.close()


async def run_follow_ups(outbox_: Outbox, follow_ups: FollowUps) -> None:
    """Our answers, then the attachments: after Twilio has its answer, never within its 15 seconds."""
    try:
        if follow_ups.replies:
            await outbox.send_all_now(outbox_, follow_ups.replies)
        for channel_id, message_id in follow_ups.media:
            await inbound.fetch_media_by_channel_id(outbox_, channel_id, message_id)
    except Exception:  # the outbox's worker retries what was not handed over; a media fetch is retried on view
        log.exception("Following up inbound texts failed")


def _postgres() -> bool:
    return bool(connections.get("default").capabilities.dialect == "postgres")


def _placeholders(postgres: bool, start: int, count: int) -> str:
    """`count` placeholders numbered from `start` ($n on PostgreSQL, ? on SQLite), comma-separated."""
    return ", ".join(f"${start + k}" if postgres else "?" for k in range(count))


async def store_payloads(
    forms: list[tuple[dict[str, str], str | None]], now: datetime, leases: list[datetime | None] | None = None
) -> list[int]:
    """Webhooks stored in one INSERT (one commit); their ids in order. `leases`: each row's claim (a text
    its own process processes before answering), None for a text left to the processor."""
    fields = WebhookPayload._meta.fields_map
    claims = leases if leases is not None else [None] * len(forms)
    rows = [
        (
            "message",
            messaging.storable_sid(params.get("MessageSid") or params.get("SmsSid")),
            fields["params"].to_db_value(params, WebhookPayload),
            messaging.storable_token(token),
            now,
            claim,
            sender_of(params),
        )
        for (params, token), claim in zip(forms, claims, strict=True)
    ]
    postgres = _postgres()
    width = 7
    values_sql = ", ".join(f"({_placeholders(postgres, width * n + 1, width)})" for n in range(len(rows)))
    sql = (
        "INSERT INTO webhook_payload (kind, provider_sid, params, idempotency_token, received_at, claimed_until, "
        f"sender) VALUES {values_sql} RETURNING id"
    )
    values = [value for row in rows for value in row]
    # Its rows, not a count (asyncpg's execute_query answers an INSERT with its row count only); on SQLite the
    # writer is taken as soon as a worker's unit of work lets go of it.
    returned = await db.write_returning(sql, values)
    ids = [int(row["id"]) for row in returned]
    if len(ids) != len(rows):
        raise RuntimeError(f"Stored {len(rows)} webhooks but got {len(ids)} ids back")
    return sorted(ids)  # one statement's ids rise in the order of its rows on both databases


def sender_of(params: Mapping[str, str]) -> str | None:
    """The number a text came from, as the claim compares it (clipped to the column; None when absent)."""
    sender = params.get("From")
    return sender[:SENDER_LENGTH] if sender else None


async def claim_texts(
    limit: int,
    now: datetime,
    lease_until: datetime,
    received_before: datetime | None = None,
    take_over_before: datetime | None = None,
) -> list[int]:
    """Claims up to `limit` stored texts nobody finished and nobody holds (never claimed, or the lease ran
    out), oldest first, until `lease_until`; their ids. `received_before`: only texts stored before then.
    `take_over_before`: also texts stored before then whatever their lease (a restarted process's own).

    One statement: on PostgreSQL the candidates are locked `FOR UPDATE SKIP LOCKED`, so claimers never
    wait for nor take each other's; on SQLite the UPDATE holds the one writer, so two never both win."""
    postgres = _postgres()
    params: list[object] = []

    def mark(value: object) -> str:  # placeholders in the order they appear in the statement
        params.append(value)
        return f"${len(params)}" if postgres else "?"

    lease = mark(lease_until)
    free = f"claimed_until IS NULL OR claimed_until < {mark(now)}"
    if take_over_before is not None:
        free += f" OR received_at < {mark(take_over_before)}"
    conditions = ["processed_at IS NULL", "kind = 'message'", f"({free})"]
    if received_before is not None:
        conditions.append(f"received_at < {mark(received_before)}")
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    # The oldest free texts first (CLAIM_SCAN_FACTOR per text wanted), then the in-flight check on those only:
    # asked in one go, PostgreSQL's planner (its statistics a burst behind) checked every unprocessed text and
    # sorted them — 1.9 s a claim with a backlog of 30,000. The in-flight index (0025) holds only texts being
    # processed: each check reads an entry or two.
    candidates = (
        f"SELECT id, sender FROM webhook_payload WHERE {' AND '.join(conditions)} ORDER BY id "
        f"LIMIT {mark(limit * CLAIM_SCAN_FACTOR)}{lock}"
    )
    # Never past an earlier text of the same sender that another process is processing now (the web process's
    # inline one): the later one would get the lower id, and the thread would show the two swapped.
    in_flight = (
        "NOT EXISTS (SELECT 1 FROM webhook_payload AS earlier WHERE earlier.processed_at IS NULL "
        "AND earlier.claimed_until IS NOT NULL AND earlier.sender = candidate.sender AND earlier.id < candidate.id "
        f"AND earlier.claimed_until >= {mark(now)})"
    )
    sql = (
        f"UPDATE webhook_payload SET claimed_until = {lease} WHERE id IN (SELECT id FROM ({candidates}) AS candidate "
        f"WHERE {in_flight} ORDER BY id LIMIT {mark(limit)}) RETURNING id"
    )
    returned = await connections.get("default").execute_query_dict(sql, params)
    return sorted(int(row["id"]) for row in returned)
