"""The spool (inbox.services.spool): on SQLite a burst's webhooks are made durable in a file of their own.

- Twilio hears back while another process holds the database's one writer (its unit of work): the texts
  wait in the spool, and once the writer is free they are moved, processed, and shown in the order sent;
- rows a process left spooled when it died are moved and processed when the next one starts;
- a move repeated after a crash between its copy and its delete copies nothing twice, while Twilio's own
  retry of a text (a later delivery of the same MessageSid) stays a row of its own.

SQLite only by nature: PostgreSQL's writers do not wait for each other, and it has no spool.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from inbox import clock, db
from inbox.models import Message, WebhookPayload
from inbox.services import spool
from inbox.services.spool import Spool, spooled
from inbox.settings import Settings
from tests.support import database
from tests.support.apps import asgi_client, running
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, MakeCase
from tests.support.webhooks import INBOUND, inbound_params, numbered_sid, signed_post_args

pytestmark = pytest.mark.skipif(
    not database.database_url(Path()).startswith("sqlite"), reason="SQLite's one writer: PostgreSQL has no spool"
)

BURST = 20
WAIT_SECONDS = 30.0  # bounds a hang on a shared machine; it measures nothing


def database_file(settings: Settings) -> str:
    return settings.database_url.removeprefix("sqlite://")


@contextmanager
def writer_held(settings: Settings) -> Iterator[None]:
    """Another process's unit of work: SQLite's one writer is taken for the block."""
    with closing(sqlite3.connect(database_file(settings), isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")


def spooled_count(settings: Settings) -> int:
    with closing(sqlite3.connect(spool.spool_path(database_file(settings)))) as connection:
        return int(connection.execute("SELECT count(*) FROM spool").fetchone()[0])


def stored_count(settings: Settings) -> int:
    """Read as another process would (this one's connection is busy waiting for the writer)."""
    with closing(sqlite3.connect(database_file(settings))) as connection:
        return int(connection.execute("SELECT count(*) FROM webhook_payload").fetchone()[0])


async def post_all(client: httpx.AsyncClient, posts: list[dict[str, object]]) -> list[asyncio.Task[httpx.Response]]:
    tasks = []
    for args in posts:  # in order, each on its way before the next: the order Twilio sent them
        tasks.append(asyncio.create_task(client.post(**args)))  # type: ignore[arg-type]
        await asyncio.sleep(0)
    return tasks


async def test_texts_are_acknowledged_while_another_process_holds_the_writer_and_shown_in_order(
    app: Starlette, make_case: MakeCase, settings: Settings
) -> None:
    await make_case(MARIA)
    sids = [numbered_sid(n) for n in range(BURST + 1)]
    posts = [signed_post_args(INBOUND, inbound_params(sid, MARIA, f"Text {n}")) for n, sid in enumerate(sids)]
    async with asgi_client(app) as client:
        # A first text alone: its answer waits for its processing, as in a quiet inbox (and the channels are read).
        assert (await client.post(**posts[0])).status_code == 200  # type: ignore[arg-type]
        assert await Message.filter(provider_sid=sids[0]).exists()
        tasks: list[asyncio.Task[httpx.Response]] = []
        try:
            with writer_held(settings):
                tasks = await post_all(client, posts[1:])
                # The first found nothing else in flight: it is stored and processed before its answer, so it
                # waits for the writer. The others are answered from the spool meanwhile.
                done, _ = await asyncio.wait(tasks[1:], timeout=WAIT_SECONDS)
                assert [task.result().status_code for task in tasks[1:] if task in done] == [200] * (BURST - 1)
                assert not tasks[0].done()
                assert spooled_count(settings) == BURST - 1
                assert stored_count(settings) == 1  # the first text's: none of the burst has reached the database
            answers = await asyncio.gather(*tasks)
        finally:  # a failure above leaves none waiting (the test ends instead of hanging)
            for task in tasks:
                task.cancel()
        assert [answer.status_code for answer in answers] == [200] * BURST
        await app.state.ingest.drained()
    bodies = await Message.filter(provider_sid__in=sids).order_by("id").values_list("body", flat=True)
    assert bodies == [f"Text {n}" for n in range(BURST + 1)]
    assert spooled_count(settings) == 0
    assert await WebhookPayload.filter(kind="message", processed_at=None).count() == 0


async def test_texts_a_dead_process_left_spooled_are_processed_when_the_next_starts(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    sids = [numbered_sid(n) for n in range(5)]
    await db.connect(settings.database_url)
    try:
        left = Spool(spool.spool_path(database_file(settings)))
        rows = [spooled(inbound_params(sid, MARIA, f"Spooled {n}"), None, MARIA) for n, sid in enumerate(sids)]
        await left.append(rows, clock.now() - timedelta(seconds=1))
        await left.close()  # and the process is gone before its mover ran
        assert not await WebhookPayload.exists()
    finally:
        await db.disconnect()
    async with running(settings, fake_twilio) as app:
        await app.state.ingest.drained()
        bodies = await Message.filter(provider_sid__in=sids).order_by("id").values_list("body", flat=True)
        assert bodies == [f"Spooled {n}" for n in range(5)]
        assert spooled_count(settings) == 0


async def test_a_move_repeated_after_a_crash_copies_nothing_twice_and_twilios_retry_stays_its_own(
    settings: Settings,
) -> None:
    await db.connect(settings.database_url)
    try:
        path = spool.spool_path(database_file(settings))
        spooling = Spool(path)
        received = clock.now()
        rows = [spooled(inbound_params(numbered_sid(n), MARIA, f"Text {n}"), None, MARIA) for n in range(3)]
        await spooling.append(rows, received)
        # A process that copied the rows and died before deleting them from the spool: the copy, then no delete.
        with closing(sqlite3.connect(path)) as connection:
            left = [row[1:] for row in connection.execute("SELECT * FROM spool ORDER BY id").fetchall()]
        assert await spool._copy_into_database(left) == 3
        # Twilio retries the first text (it had no answer in time): the same MessageSid, received later.
        await spooling.append(rows[:1], received + timedelta(seconds=15))
        assert await spooling.move() == 1  # the retry only
        assert await spooling.move() == 0
        assert spooled_count(settings) == 0
        sids = await WebhookPayload.all().order_by("id").values_list("provider_sid", flat=True)
        assert sids == [numbered_sid(0), numbered_sid(1), numbered_sid(2), numbered_sid(0)]
        await spooling.close()
    finally:
        await database.wipe()
        await db.disconnect()


async def test_without_a_usable_spool_the_database_stores_the_burst(
    settings: Settings, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    path = spool.spool_path(database_file(settings))
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    path.mkdir()  # where the spool's file should be: SQLite cannot open it (as a full disk or a read-only folder)
    sids = [numbered_sid(n) for n in range(BURST)]
    posts = [signed_post_args(INBOUND, inbound_params(sid, MARIA, f"Text {n}")) for n, sid in enumerate(sids)]
    try:
        async with running(settings, fake_twilio) as app, asgi_client(app) as client:
            answers = await asyncio.gather(*(client.post(**args) for args in posts))  # type: ignore[arg-type]
            assert [answer.status_code for answer in answers] == [200] * BURST
            await app.state.ingest.drained()
            stored = await Message.filter(provider_sid__in=sids).values_list("provider_sid", flat=True)
            assert sorted(stored) == sorted(sids)
    finally:
        path.rmdir()
    # Said once, not for every group of the burst: the database stores them for a while before the spool is tried again.
    assert caplog.text.count("Could not spool inbound webhooks") == 1
