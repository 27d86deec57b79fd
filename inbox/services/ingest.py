"""Fast ingest: Twilio's inbound webhook is acknowledged once it is stored, and processed right after.

The route verifies the signature and calls `Ingest.accept`. Webhooks that arrive together are stored
together (one multi-row INSERT, one commit: a group commit), and each is answered once its row is
durable — nothing acknowledged can be lost. Processing (conversation, message, links, alerts, consent
and its replies, events: `inbound.receive_stored`) runs after, in the same process:

- inline, before the answer, when nothing else is waiting (a quiet inbox: the text is processed by the
  time Twilio hears back, as it always was, and a test can look at the database at once);
- in batches by one background task when webhooks come in bursts (each batch read in one query, each
  text its own unit of work, so the stores of the next webhooks never wait long for SQLite's writer);
- on start-up, and every RECOVER_SECONDS, for stored webhooks no process finished (a crash, kill -9).

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

from inbox import clock
from inbox.models import WebhookPayload
from inbox.services import inbound, messaging, outbox
from inbox.services.messaging import Outbox

log = logging.getLogger(__name__)

STORE_BATCH = 200  # webhooks stored by one INSERT at most
PROCESS_BATCH = 50  # stored texts read at once by the background task
RECOVER_SECONDS = 60.0  # stored texts no process finished are taken up again once this old
STOP_SECONDS = 10.0  # a stopping process finishes its queue for at most this long


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
    stored: asyncio.Future[int]


class Ingest:
    """One per process: stores verified inbound webhooks in groups and processes them in the background."""

    def __init__(self, outbox_: Outbox, now: Callable[[], datetime] = clock.now) -> None:
        """`now`: the moment a text is judged by (office hours, a survey's window); stored and recovered
        rows are always timed by the real clock."""
        self.outbox = outbox_
        self.now = now
        self._to_store: list[_Waiting] = []
        self._storing: asyncio.Task[None] | None = None
        self._to_process: list[int] = []
        self._processing: asyncio.Task[None] | None = None
        self._inline = 0  # texts being processed before their own answer
        self._follow_ups: set[asyncio.Task[None]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = False

    # ------------------------------------------------------------ the webhook

    async def accept(self, params: Mapping[str, str], idempotency_token: str | None) -> FollowUps:
        """Stores the verified webhook durably; processes it now when nothing waits (returning what
        to do after the answer), else queues it for the background and returns nothing to do."""
        payload_id = await self._store(dict(params), idempotency_token)
        if not self._to_process and self._processing is None and self._inline == 0:
            self._inline += 1
            self._idle.clear()
            try:
                return await self._process_batch([payload_id])
            finally:
                self._inline -= 1
                self._wake()
        self._to_process.append(payload_id)
        self._wake()
        return FollowUps()

    async def _store(self, params: dict[str, str], token: str | None) -> int:
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
                    ids = await store_payloads([(w.params, w.token) for w in group], clock.now())
                except BaseException as exc:  # every webhook of the group is answered 500: Twilio sends it again
                    for waiting in group:
                        if not waiting.stored.done():
                            waiting.stored.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiting, payload_id in zip(group, ids, strict=True):
                    waiting.stored.set_result(payload_id)
        finally:
            self._storing = None

    # ------------------------------------------------------------ the background

    def _wake(self) -> None:
        if self._stopped:
            return
        if self._to_process and self._processing is None and self._inline == 0:
            self._idle.clear()
            self._processing = asyncio.create_task(self._process_waiting(), name="ingest-process")
        elif not self._to_process and self._processing is None and self._inline == 0 and not self._follow_ups:
            self._idle.set()

    async def _process_waiting(self) -> None:
        try:
            while self._to_process:
                batch, self._to_process = self._to_process[:PROCESS_BATCH], self._to_process[PROCESS_BATCH:]
                self._follow_up(await self._process_batch(batch))
        finally:
            self._processing = None
            self._wake()

    async def _process_batch(self, payload_ids: list[int]) -> FollowUps:
        """The stored texts, read in one query and processed one unit of work each: a text that fails
        stays unprocessed (its error noted) for the recovery to try again. One transaction per text, not
        per batch: on SQLite a transaction holds the one writer, and the next webhooks' stores wait for it."""
        follow_ups = FollowUps()
        try:
            payloads = await WebhookPayload.filter(id__in=payload_ids, processed_at=None).order_by("id")
        except Exception:  # the database itself failed: the rows stay stored and unprocessed for the recovery
            log.exception("Reading inbound webhooks %s failed; they are tried again later", payload_ids)
            return follow_ups
        for payload in payloads:
            try:
                received = await inbound.receive_stored(self.outbox, payload, at=self.now())
            except Exception as exc:
                log.exception("Processing inbound webhook %s failed; it is tried again later", payload.id)
                with suppress(Exception):
                    await WebhookPayload.filter(id=payload.id).update(error=f"processing failed: {exc!r}"[:500])
                continue
            if received.channel_id is not None:
                follow_ups.add(received, received.channel_id)
        return follow_ups

    def _follow_up(self, follow_ups: FollowUps) -> None:
        if follow_ups:
            task = asyncio.create_task(run_follow_ups(self.outbox, follow_ups), name="ingest-follow-ups")
            self._follow_ups.add(task)
            task.add_done_callback(self._follow_up_done)

    def _follow_up_done(self, task: asyncio.Task[None]) -> None:
        self._follow_ups.discard(task)
        self._wake()

    # ------------------------------------------------------------ start, stop, recover

    async def start(self) -> None:
        """Takes up what an earlier run stored and did not process, then keeps looking now and then."""
        await self.recover(before=clock.now())  # everything stored before this process began
        self._recovering = asyncio.create_task(self._recover_forever(), name="ingest-recover")

    async def _recover_forever(self) -> None:
        while True:
            await asyncio.sleep(RECOVER_SECONDS)
            await self.recover(before=clock.now() - timedelta(seconds=RECOVER_SECONDS))

    async def recover(self, before: datetime) -> int:
        """Queues stored texts received before `before` that nobody processed; how many."""
        try:
            ids = await unprocessed_texts(before)
        except Exception:
            log.exception("Could not look for unprocessed inbound webhooks")
            return 0
        queued = set(self._to_process)
        fresh = [payload_id for payload_id in ids if payload_id not in queued]
        if fresh:
            log.info("Processing %d inbound webhooks stored but not processed", len(fresh))
            self._to_process.extend(fresh)
            self._wake()
        return len(fresh)

    async def drained(self) -> None:
        """Returns once every stored text is processed and its follow-ups have run (tests, shutdown)."""
        while True:
            await self._idle.wait()
            if self._storing is None and not self._to_process and self._processing is None and not self._follow_ups:
                return
            self._idle.clear()
            self._wake()

    async def stop(self) -> None:
        """Finishes what is queued (what is not finished in STOP_SECONDS is recovered at the next start)."""
        if self._recovering is not None:
            self._recovering.cancel()
            with suppress(asyncio.CancelledError):
                await self._recovering
        with suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), STOP_SECONDS)
        # What is still queued stays stored and unprocessed: the next start takes it up.
        self._stopped = True
        for task in (self._processing, *self._follow_ups):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task


async def run_follow_ups(outbox_: Outbox, follow_ups: FollowUps) -> None:
    """Our answers, then the attachments: after Twilio has its answer, never within its 15 seconds."""
    try:
        if follow_ups.replies:
            await outbox.send_all_now(outbox_, follow_ups.replies)
        for channel_id, message_id in follow_ups.media:
            await inbound.fetch_media_by_channel_id(outbox_, channel_id, message_id)
    except Exception:  # the outbox's worker retries what was not handed over; a media fetch is retried on view
        log.exception("Following up inbound texts failed")


async def store_payloads(forms: list[tuple[dict[str, str], str | None]], now: datetime) -> list[int]:
    """Webhooks stored in one INSERT (one commit); their ids in order."""
    fields = WebhookPayload._meta.fields_map
    rows = [
        (
            "message",
            messaging.storable_sid(params.get("MessageSid") or params.get("SmsSid")),
            fields["params"].to_db_value(params, WebhookPayload),
            messaging.storable_token(token),
            now,
        )
        for params, token in forms
    ]
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    placeholders = []
    for n in range(len(rows)):
        if postgres:
            placeholders.append("(" + ", ".join(f"${5 * n + k}" for k in range(1, 6)) + ")")
        else:
            placeholders.append("(?, ?, ?, ?, ?)")
    sql = (
        "INSERT INTO webhook_payload (kind, provider_sid, params, idempotency_token, received_at) VALUES "
        + ", ".join(placeholders)
        + " RETURNING id"
    )
    values = [value for row in rows for value in row]
    # execute_query_dict: asyncpg's execute_query answers an INSERT with its row count only, not RETURNING's rows.
    returned = await connection.execute_query_dict(sql, values)
    ids = [int(row["id"]) for row in returned]
    if len(ids) != len(rows):
        raise RuntimeError(f"Stored {len(rows)} webhooks but got {len(ids)} ids back")
    return sorted(ids)  # one statement's ids rise in the order of its rows on both databases


async def unprocessed_texts(before: datetime) -> list[int]:
    payloads = WebhookPayload.filter(kind="message", processed_at=None, received_at__lt=before)
    return [int(row["id"]) for row in await payloads.order_by("id").values("id")]
