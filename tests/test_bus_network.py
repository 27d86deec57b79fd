"""Network event buses (issue 11): Redis pub/sub and PostgreSQL LISTEN/NOTIFY carry events between
processes, survive their server going away, and let several `inbox serve` processes serve one live inbox.

Everything is real: a redis-server of the test's own (restarted at will), the local PostgreSQL (its
listener connection cut with pg_terminate_backend), the app under uvicorn with real event streams, signed
webhooks, and `inbox serve` run as separate processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from inbox import metrics
from inbox.bus_transports import LISTENER_NAME, EventTooLarge, PostgresTransport, RedisTransport
from inbox.cli import web_processes
from inbox.events import RECONNECTED, Bus, BusReconnected, Event, MessageReceived, Subscription
from inbox.services.staff import create_api_token
from inbox.settings import Settings, load_settings
from tests.support.cli import run_inbox
from tests.support.events import WAIT_SECONDS, next_event
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import bearer, browser, event_stream, shows_bubble, signed_in_browser
from tests.support.postgres import scratch_database
from tests.support.redis_server import RedisServer
from tests.support.servers import inbox_serving, output
from tests.support.staff import MakeStaff
from tests.support.webhooks import text_in
from tests.support.workers import worker_env

CLIENT_PHONE = "+14045387319"
# The promise: after the bus's server comes back, every tab is live again within this.
LIVE_AGAIN_SECONDS = 5


def received(n: int) -> MessageReceived:
    return MessageReceived(message_id=n, conversation_id=1)


async def heard(subscription: Subscription, count: int) -> list[Event]:
    async with asyncio.timeout(WAIT_SECONDS):
        return [await subscription.get() for _ in range(count)]


# ---------------------------------------------------------------- the servers


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def nothing_to_prepare(_url: str) -> None:
    """The bus needs no tables: LISTEN/NOTIFY works in an empty database."""


@pytest.fixture
async def postgres_bus_url() -> AsyncIterator[str]:
    """A database of the test's own, so no one else's notifications reach it."""
    async with scratch_database("bus", prepare=nothing_to_prepare) as url:
        yield url


@dataclass
class NetworkBus:
    """The bus under test: its URL, and how to take its server away and back."""

    url: str
    redis: RedisServer | None = None

    async def outage(self) -> None:
        """A Redis restarted, or PostgreSQL's listener connections cut (pg_terminate_backend)."""
        if self.redis is not None:
            self.redis.stop()
            await self.redis.start()
            return
        admin = await asyncpg.connect(self.url)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                LISTENER_NAME,
            )
        finally:
            await admin.close()
        assert cut >= 1, "no listener connection found"


@pytest.fixture(params=["redis", "postgres"])
def bus(request: pytest.FixtureRequest) -> NetworkBus:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return NetworkBus(server.url, server)
    return NetworkBus(str(request.getfixturevalue("postgres_bus_url")))


@asynccontextmanager
async def connected(*urls: str) -> AsyncIterator[list[Bus]]:
    buses = [Bus(url) for url in urls]
    try:
        for bus in buses:
            await bus.connect()
        yield buses
    finally:
        for bus in buses:
            await bus.disconnect()


# ---------------------------------------------------------------- the bus itself


async def test_two_processes_hear_every_event_in_order_their_own_too(bus: NetworkBus) -> None:
    async with connected(bus.url, bus.url) as (first, second):
        kind = RedisTransport if bus.redis else PostgresTransport
        assert isinstance(first.transport, kind)
        async with first.subscribe() as heard_by_first, second.subscribe() as heard_by_second:
            events = [received(n) for n in range(1, 21)]
            # Published at once after connect(): nothing may be lost to a subscription still being set up.
            for event in events[:10]:
                await first.publish(event)
            await second.publish_all(events[10:])
            assert await heard(heard_by_first, 20) == events
            assert await heard(heard_by_second, 20) == events


async def test_the_publication_time_travels_with_the_event(redis_server: RedisServer) -> None:
    async def slow_journal(event: Event) -> Event:  # the event log's INSERT, on a slow database
        await asyncio.sleep(0.2)
        return event

    async with connected(redis_server.url, redis_server.url) as (publisher, listener):
        publisher.journal = slow_journal
        async with listener.subscribe() as subscription:
            before = time.time()
            await publisher.publish(received(1))
            (event,) = await heard(subscription, 1)
            # The publisher's moment (before its journal), not when the listener heard it: /metrics times delivery
            # from publication.
            published_at = metrics.published_at(event)
            assert published_at is not None and before <= published_at < before + 0.1


async def test_a_publisher_hears_its_events_only_through_the_network(redis_server: RedisServer) -> None:
    async with connected(redis_server.url) as (bus,):
        async with bus.subscribe() as subscription:
            # Straight onto the channel, as another process would: the bus hears it like its own.
            raw = Redis.from_url(redis_server.url)
            try:
                await raw.publish("inbox_events:0", received(7).to_json())
            finally:
                await raw.aclose()
            assert await heard(subscription, 1) == [received(7)]


async def test_two_redis_databases_do_not_hear_each_other(redis_server: RedisServer) -> None:
    """Pub/sub channels are server-wide: two deployments on databases 0 and 1 of one Redis stay apart."""
    other_database = redis_server.url.removesuffix("/0") + "/1"
    async with connected(redis_server.url, other_database) as (ours, theirs):
        async with ours.subscribe() as heard_by_us, theirs.subscribe() as heard_by_them:
            await theirs.publish(received(1))
            await ours.publish(received(2))
            assert await heard(heard_by_us, 1) == [received(2)]
            assert await heard(heard_by_them, 1) == [received(1)]


async def test_an_event_too_large_for_notify_fails_loudly_and_reaches_no_one(postgres_bus_url: str) -> None:
    async with connected(postgres_bus_url) as (bus,):
        async with bus.subscribe() as subscription:
            with pytest.raises(EventTooLarge, match="8000"):
                await bus.publish(MessageReceived(message_id=1, conversation_id=1, provider_sid="x" * 8000))
            await bus.publish(received(2))  # the next one travels, and is the first heard
            assert await heard(subscription, 1) == [received(2)]


async def test_redis_restarted_the_bus_comes_back_and_says_so(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with connected(redis_server.url, redis_server.url) as (publishing, other):
        async with publishing.subscribe() as own, other.subscribe() as elsewhere:
            redis_server.stop()
            # Publishing while the bus is down costs the caller nothing but a log line, and this process's
            # own tabs are told to catch up at once.
            with caplog.at_level(logging.ERROR, logger="inbox.bus_transports"):
                await publishing.publish(received(1))
            assert "dropped" in caplog.text
            assert await heard(own, 1) == [RECONNECTED]
            assert not await publishing.ready()  # /readyz names the bus while its server is away

            await redis_server.start()
            async with asyncio.timeout(LIVE_AGAIN_SECONDS):
                assert await own.get() is RECONNECTED  # each listener back, and saying so
                assert await elsewhere.get() is RECONNECTED
            # The next publication first tells every process that one was dropped, then travels.
            await publishing.publish(received(2))
            assert await heard(own, 2) == [RECONNECTED, received(2)]
            assert await heard(elsewhere, 2) == [RECONNECTED, received(2)]
            await publishing.publish(received(3))  # once said, not again
            assert await heard(elsewhere, 1) == [received(3)]
            assert await publishing.ready() and await other.ready()


async def test_a_unit_of_works_events_go_together_and_if_lost_are_caught_up_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with connected(redis_server.url, redis_server.url) as (publishing, other):
        async with publishing.subscribe() as own, other.subscribe() as elsewhere:
            redis_server.stop()
            with caplog.at_level(logging.ERROR, logger="inbox.bus_transports"):
                await publishing.publish_all([received(1), received(2), received(3)])
            assert caplog.text.count("Could not publish 3 events") == 1  # one pipeline, one failure
            assert await heard(own, 1) == [RECONNECTED]

            await redis_server.start()
            async with asyncio.timeout(LIVE_AGAIN_SECONDS):
                assert await own.get() is RECONNECTED
                assert await elsewhere.get() is RECONNECTED
            await publishing.publish_all([received(4), received(5)])
            assert await heard(elsewhere, 3) == [RECONNECTED, received(4), received(5)]
            assert await heard(own, 3) == [RECONNECTED, received(4), received(5)]


async def test_a_redis_that_stops_answering_without_a_word_is_noticed(redis_server: RedisServer) -> None:
    """A dead network closes nothing: the listener PINGs when it hears nothing, and reconnects when no
    answer comes (a stopped redis-server keeps its sockets open and says nothing)."""
    async with connected(redis_server.url) as (bus,):
        transport = bus.transport
        assert isinstance(transport, RedisTransport)
        transport.health_seconds = 0.2  # the setting is 5 s
        async with bus.subscribe() as subscription:
            await asyncio.sleep(1)  # quiet: PINGs answered, nothing mistaken for a loss
            assert transport.losses == 0
            redis_server.pause()
            try:
                async with asyncio.timeout(WAIT_SECONDS):
                    while transport.losses == 0:
                        await asyncio.sleep(0.05)
            finally:
                redis_server.resume()
            async with asyncio.timeout(LIVE_AGAIN_SECONDS):
                assert await subscription.get() is RECONNECTED
            await bus.publish(received(4))
            assert await heard(subscription, 1) == [received(4)]


async def test_postgres_listener_cut_the_bus_comes_back_and_says_so(postgres_bus_url: str) -> None:
    async with connected(postgres_bus_url, postgres_bus_url) as (listening, publishing):
        async with listening.subscribe() as subscription:
            await NetworkBus(postgres_bus_url).outage()
            async with asyncio.timeout(LIVE_AGAIN_SECONDS):
                assert isinstance(await next_event(subscription, BusReconnected), BusReconnected)
            await publishing.publish(received(3))
            assert await next_event(subscription, MessageReceived) == received(3)


# ---------------------------------------------------------------- open tabs through an outage


@pytest.fixture
def settings(settings: Settings, bus: NetworkBus) -> Settings:
    return settings.with_changes(broadcast_url=bus.url)


async def test_every_open_tab_catches_up_after_the_bus_comes_back(
    bus: NetworkBus,
    server: str,
    twilio: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case,
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    token = await create_api_token(supervisor.email)
    async with (
        signed_in_browser(server, supervisor) as http,
        event_stream(http, "/events") as page,
        browser(server) as integrator,
        event_stream(integrator, "/api/v1/events", bearer(token)) as api,
    ):
        before = await text_in(twilio, CLIENT_PHONE, "Is my hearing still on?")
        await page.read_until(shows_bubble(before), lambda e: 'id="alert-badge"' in e.data)
        await api.read_until(lambda e: e.event == "alert.raised")

        await bus.outage()
        async with asyncio.timeout(LIVE_AGAIN_SECONDS):
            refresh = await page.next_event()
            missed = await api.next_event()
        assert refresh.event == "refresh"
        assert missed.event == "stream.missed" and json.loads(missed.data) == {"type": "stream.missed"}

        # Live again: the next text reaches both tabs through the bus.
        after = await text_in(twilio, CLIENT_PHONE, "Hello?")
        await page.read_until(shows_bubble(after))
        await api.read_until(lambda e: e.event == "message.received" and json.loads(e.data)["message_id"] == after.id)


# ---------------------------------------------------------------- several processes


@pytest.mark.parametrize("bus", ["redis"], indirect=True)
async def test_a_tab_on_one_process_sees_a_text_that_arrived_through_another(
    app, settings: Settings, fake_twilio: FakeTwilio, make_staff: MakeStaff, make_case, tmp_path: Path
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    env = worker_env(settings, fake_twilio.base_url, INBOX_BROADCAST_URL=settings.broadcast_url)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(inbox_serving(tmp_path / "one", env))
        two = await stack.enter_async_context(inbox_serving(tmp_path / "two", env))
        http = await stack.enter_async_context(signed_in_browser(one, supervisor))
        page = await stack.enter_async_context(event_stream(http, "/events"))
        twilio = await stack.enter_async_context(browser(two))

        message = await text_in(twilio, CLIENT_PHONE, "Arrived through the other process")
        await page.read_until(shows_bubble(message))


@pytest.mark.parametrize("bus", ["redis"], indirect=True)
async def test_two_processes_behind_one_port_serve_one_live_inbox(
    app, settings: Settings, fake_twilio: FakeTwilio, make_staff: MakeStaff, make_case, tmp_path: Path
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    env = worker_env(settings, fake_twilio.base_url, INBOX_BROADCAST_URL=settings.broadcast_url)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(inbox_serving(tmp_path / "both", env, "--workers", "2"))
        # Several tabs, each its own connection: the kernel hands them to either process.
        pages = []
        for _ in range(4):
            http = await stack.enter_async_context(signed_in_browser(url, supervisor))
            pages.append(await stack.enter_async_context(event_stream(http, "/events")))
        twilio = await stack.enter_async_context(browser(url))
        for n in range(2):
            message = await text_in(twilio, CLIENT_PHONE, f"Text {n} through the shared port")
            for page in pages:
                await page.read_until(shows_bubble(message))
    log = output(next((tmp_path / "both").glob("serve-*.log")))
    assert log.count("Started server process") == 2, log


@pytest.mark.parametrize(
    ("bus", "rate_limit", "named"),
    [
        ("memory://", "", "INBOX_BROADCAST_URL"),
        ("postgres://postgres@127.0.0.1:5432/postgres", "", "INBOX_RATE_LIMIT_URL"),
    ],
)
def test_several_web_processes_are_refused_without_shared_state(
    workdir: Path, bus: str, rate_limit: str, named: str
) -> None:
    env = {"INBOX_BROADCAST_URL": bus, **({"INBOX_RATE_LIMIT_URL": rate_limit} if rate_limit else {})}
    result = run_inbox(workdir, "serve", "--workers", "2", env=env)
    assert result.returncode != 0
    assert named in result.stderr and "--workers 2" in result.stderr, result.stderr


def test_a_redis_bus_counts_failed_sign_ins_in_the_same_redis_unless_told_otherwise() -> None:
    shared = load_settings({"INBOX_BROADCAST_URL": "redis://cache:6379/1", "INBOX_SECRET_KEY": "k" * 40})
    assert shared.rate_limit_url == "redis://cache:6379/1"
    own = load_settings(
        {
            "INBOX_BROADCAST_URL": "redis://cache:6379/1",
            "INBOX_RATE_LIMIT_URL": "redis://other:6379/2",
            "INBOX_SECRET_KEY": "k" * 40,
        }
    )
    assert own.rate_limit_url == "redis://other:6379/2"
    assert load_settings({"INBOX_SECRET_KEY": "k" * 40}).rate_limit_url == "memory://"


def test_workers_auto_is_one_per_cpu_only_when_the_processes_can_share(capsys: pytest.CaptureFixture[str]) -> None:
    key = {"INBOX_SECRET_KEY": "k" * 40}
    assert web_processes(load_settings(key), "auto") == 1
    assert "INBOX_BROADCAST_URL" in capsys.readouterr().out
    assert web_processes(load_settings({**key, "INBOX_BROADCAST_URL": "redis://cache:6379/0"}), "auto") == (
        os.cpu_count() or 1
    )
    postgres_only = load_settings({**key, "INBOX_BROADCAST_URL": "postgres://db/inbox"})
    assert web_processes(postgres_only, "auto") == 1
    assert "INBOX_RATE_LIMIT_URL" in capsys.readouterr().out
    assert web_processes(postgres_only, "3") == 3  # asked for: refused later, with the reason
    with pytest.raises(SystemExit, match="number or auto"):
        web_processes(postgres_only, "many")
