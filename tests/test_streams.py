"""Event streams that can be resumed (`Last-Event-ID` on the API stream) and that cost little to keep open.

Real uvicorn, real signed webhooks, the real event log on the test database (SQLite, or PostgreSQL with
INBOX_DATABASE_URL): what a reconnecting API client is sent is compared with what a client of the same reader that
stayed connected was sent live, so replay can show neither more nor less than live delivery does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from starlette.applications import Starlette

from inbox.events import MessageReceived
from inbox.live import Delivery, Tab
from inbox.models import EventLog
from inbox.services import event_log
from inbox.services.staff import create_api_token
from tests.support.events import WAIT_SECONDS
from tests.support.live import bearer, browser, event_stream, signed_in_browser
from tests.support.migrations import migrate_to
from tests.support.postgres import scratch_database
from tests.support.webhooks import text_in

CLIENT_PHONE = "+14045387319"  # the advocate's client
OTHER_PHONE = "+17705550123"  # another advocate's client


def about(message_id: int) -> object:
    return lambda event: event.event == "message.received" and json.loads(event.data)["message_id"] == message_id


async def until_detached(app: Starlette, count: int = 0) -> None:
    """Waits (bounded: a safety net, not a speed claim) until the hub holds `count` tabs."""
    async with asyncio.timeout(WAIT_SECONDS):
        while len(app.state.hub.tabs) != count:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- resuming an API stream


async def test_a_json_client_that_reconnects_is_sent_exactly_what_it_may_see_in_order(
    app, server, twilio, make_staff, make_case
) -> None:
    advocate = await make_staff("advocate")
    other = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    await make_case(phone=OTHER_PHONE, assignee=other)
    token = await create_api_token(advocate.email)

    async with browser(server) as http, event_stream(http, "/api/v1/events", bearer(token)) as stayed:
        async with event_stream(http, "/api/v1/events", bearer(token)) as leaving:
            first = await text_in(twilio, CLIENT_PHONE, "Is my hearing on Monday?")
            seen = await leaving.read_until(about(first.id), lambda e: e.event == "alert.raised")
            last_id = seen[-1].id
        await until_detached(app, 1)

        # While it is away: texts it may see, and one it may not (another advocate's client).
        mine = await text_in(twilio, CLIENT_PHONE, "Which courtroom?")
        hidden = await text_in(twilio, OTHER_PHONE, "This is not yours")
        again = await text_in(twilio, CLIENT_PHONE, "Hello?")

        headers = {**bearer(token), "Last-Event-ID": last_id}
        async with event_stream(http, "/api/v1/events", headers) as back:
            marker = await text_in(twilio, CLIENT_PHONE, "Now?")  # after the replay, live again
            resumed = await back.read_until(about(marker.id))
        live = await stayed.read_until(about(marker.id))

    missed = [e for e in live if int(e.id) > int(last_id)]
    # Exactly what the connected client got, in the same order, with the same ids (the marker included).
    assert [(e.event, e.data, e.id) for e in resumed] == [(e.event, e.data, e.id) for e in missed]
    texts = [json.loads(e.data)["message_id"] for e in resumed if e.event == "message.received"]
    assert texts == [mine.id, again.id, marker.id]
    assert "alert.raised" in [e.event for e in resumed]  # not only texts: every kind it may see
    for event in resumed:
        data = json.loads(event.data)
        assert data.get("message_id") != hidden.id and data.get("conversation_id") != hidden.conversation_id
    ids = [int(e.id) for e in resumed]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_an_id_older_than_what_is_kept_gets_stream_missed_then_live_events(
    app, server, twilio, make_staff, make_case
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    token = await create_api_token(supervisor.email)
    async with browser(server) as http:
        async with event_stream(http, "/api/v1/events", bearer(token)) as stream:
            first = await text_in(twilio, CLIENT_PHONE, "One")
            old_id = (await stream.read_until(about(first.id)))[-1].id
            second = await text_in(twilio, CLIENT_PHONE, "Two")
            await stream.read_until(about(second.id))
        await until_detached(app)
        # Two hours on, the log keeps only its newest event: what followed `old_id` is gone.
        assert await event_log.prune(datetime.now(UTC) + timedelta(hours=2)) > 0
        kept = await EventLog.all().values_list("id", flat=True)
        assert len(kept) == 1 and kept[0] > int(old_id)
        newest = str(kept[0])

        async with event_stream(http, "/api/v1/events", {**bearer(token), "Last-Event-ID": old_id}) as back:
            told = await back.next_event()
            assert told.event == "stream.missed" and json.loads(told.data) == {"type": "stream.missed"}
            assert told.id == newest  # the client's next reconnect asks from here, and is not told again
            later = await text_in(twilio, CLIENT_PHONE, "Three")
            assert (await back.next_event()).event == "message.received"
            assert later.id

        # Up to date: nothing to replay, nothing missed.
        async with event_stream(http, "/api/v1/events", {**bearer(token), "Last-Event-ID": newest}) as current:
            fourth = await text_in(twilio, CLIENT_PHONE, "Four")
            events = await current.read_until(about(fourth.id))
            assert "stream.missed" not in [e.event for e in events]
            assert json.loads(events[0].data)["message_id"] != first.id


async def test_an_id_this_database_never_gave_is_told_missed(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    token = await create_api_token(supervisor.email)
    async with browser(server) as http:
        # Nothing logged yet (a restored database): any id is from elsewhere.
        async with event_stream(http, "/api/v1/events", {**bearer(token), "Last-Event-ID": "99"}) as stream:
            assert (await stream.next_event()).event == "stream.missed"


async def test_a_last_event_id_that_is_not_a_number_is_refused(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    token = await create_api_token(supervisor.email)
    async with browser(server) as http:
        async with asyncio.timeout(WAIT_SECONDS):
            refused = await http.get("/api/v1/events", headers={**bearer(token), "Last-Event-ID": "yesterday"})
    assert refused.status_code == 400
    assert "Last-Event-ID must be the id of an event" in refused.text
    assert not app.state.hub.tabs


async def test_a_pages_stream_ignores_last_event_id_and_sends_no_ids(
    app, server, twilio, make_staff, make_case
) -> None:
    """htmx-ext-sse's EventSource sends back the last id it saw: pages get none, and one sent anyway changes
    nothing (a page re-fetches its panes on reconnect instead)."""
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    async with signed_in_browser(server, supervisor) as http:
        async with event_stream(http, "/events", {"Last-Event-ID": "1"}) as tab:
            message = await text_in(twilio, CLIENT_PHONE, "Hi")
            update = await tab.next_event()
    assert update.event == "update" and f'id="message-{message.id}"' in update.data  # no replay, no "missed"
    assert update.id == ""


# ---------------------------------------------------------------- lean streams


async def test_streams_carry_the_proxy_headers_and_the_shared_heartbeat(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    token = await create_api_token(supervisor.email)
    async with signed_in_browser(server, supervisor) as http:
        for path, headers in (("/events", {}), ("/api/v1/events", bearer(token))):
            async with http.stream("GET", path, headers={"Accept": "text/event-stream", **headers}) as response:
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert response.headers["cache-control"] == "no-store"
                assert response.headers["x-accel-buffering"] == "no"  # nginx would otherwise hold the events
                lines = response.aiter_lines()
                async with asyncio.timeout(WAIT_SECONDS):
                    assert await anext(lines) == "event: stream.open"
                    app.state.hub.beat()  # what the hub's one timer does every PING_SECONDS, for every stream
                    while (line := await anext(lines)) != ": ping":
                        assert line.startswith("data: ") or line == ""
            await until_detached(app)


async def test_a_client_that_goes_away_is_detached_without_waiting_for_a_write(app, server, make_staff) -> None:
    """The connection simply drops (no HTTP close, no event to write): the hub lets go of its tab at once."""
    supervisor = await make_staff("supervisor")
    token = await create_api_token(supervisor.email)
    app.state.hub.ping_seconds = 3600  # no heartbeat write to notice it either
    address = urlsplit(server)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        f"GET /api/v1/events HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    async with asyncio.timeout(WAIT_SECONDS):
        assert b"HTTP/1.1 200" in await reader.readuntil(b"stream.open")
    assert len(app.state.hub.tabs) == 1
    writer.transport.abort()
    await until_detached(app)


async def test_one_delivery_is_shared_by_every_tab_that_shows_the_same_thing(
    app, server, twilio, make_staff, make_case
) -> None:
    advocate = await make_staff("advocate")
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE, assignee=advocate)
    hub = app.state.hub
    pages = [Tab(staff_id=advocate.id, sees_everything=False) for _ in range(3)]
    apis = [Tab(staff_id=supervisor.id, sees_everything=True, kind="json") for _ in range(3)]
    for tab in pages + apis:
        hub.attach(tab)
    try:
        await text_in(twilio, CLIENT_PHONE, "Hello")
        async with asyncio.timeout(WAIT_SECONDS):
            page_updates = [await tab.queue.get() for tab in pages]
            api_events = [await tab.queue.get() for tab in apis]
    finally:
        for tab in pages + apis:
            hub.detach(tab)
    # The same object (so its bytes are encoded once), not equal copies.
    assert all(update is page_updates[0] for update in page_updates)
    assert all(event is api_events[0] for event in api_events)
    assert api_events[0] is not None and api_events[0].seq is not None
    assert api_events[0].frame.startswith(f"event: message.received\nid: {api_events[0].seq}\ndata: {{".encode())


def test_a_frame_splits_its_data_where_eventsource_splits_lines() -> None:
    frame = Delivery("update", "<p>one\r\ntwo\rthree\nfour\u2028still four</p>", 7).frame
    assert frame == (
        "event: update\nid: 7\ndata: <p>one\ndata: two\ndata: three\ndata: four\u2028still four</p>\n\n".encode()
    )
    assert Delivery("refresh", "x").frame == b"event: refresh\ndata: x\n\n"


# ---------------------------------------------------------------- the event log


async def test_the_log_gives_increasing_ids_and_prunes_only_what_is_older_than_an_hour(app) -> None:
    bus = app.state.bus
    async with bus.subscribe() as subscription:
        for n in range(3):
            await bus.publish(MessageReceived(message_id=n, conversation_id=1))
        seqs = [(await subscription.get()).seq for _ in range(3)]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(seqs) and len(set(seqs)) == 3
    assert await event_log.prune() == 0  # nothing is an hour old
    assert await event_log.prune(datetime.now(UTC) + event_log.KEEP + timedelta(minutes=1)) == 2
    assert await EventLog.all().values_list("id", flat=True) == [seqs[-1]]  # the newest is always kept
    replayed = [e async for e in event_log.events_between(0, seqs[-1])]
    assert replayed == [MessageReceived(message_id=2, conversation_id=1)] and replayed[0].seq == seqs[-1]


# ---------------------------------------------------------------- the migration, on both databases

BEFORE = "models.0015_recipient_fillfactor"


async def test_the_event_log_migration_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'old.sqlite3'}"
    await migrate_to(url, BEFORE)
    await migrate_to(url)

    with sqlite3.connect(tmp_path / "old.sqlite3") as db:
        db.execute("INSERT INTO event_log (at, body) VALUES ('2026-01-01', '{}')")
        db.execute("DELETE FROM event_log")
        db.execute("INSERT INTO event_log (at, body) VALUES ('2026-01-01', '{}')")
        # AUTOINCREMENT: an id is never given twice, even after the newest row is deleted.
        assert db.execute("SELECT id FROM event_log").fetchall() == [(2,)]
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'event_log'")}
        assert any(name.startswith("idx_event_log_at") for name in indexes)


async def test_the_event_log_migration_on_postgresql() -> None:
    async def before(url: str) -> None:
        await migrate_to(url, BEFORE)

    async with scratch_database("eventlog", prepare=before) as url:
        await migrate_to(url)
        db = await asyncpg.connect(url)
        try:
            first = await db.fetchval("INSERT INTO event_log (at, body) VALUES (now(), '{}') RETURNING id")
            await db.execute("DELETE FROM event_log")
            second = await db.fetchval("INSERT INTO event_log (at, body) VALUES (now(), '{}') RETURNING id")
            assert second > first
            kind = await db.fetchval(
                "SELECT data_type FROM information_schema.columns WHERE table_name = 'event_log' AND column_name = 'id'"
            )
            assert kind == "bigint"
        finally:
            await db.close()
