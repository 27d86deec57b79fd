"""Event bus benchmark: how long an event takes from `publish` in one process to a subscriber in another.

Two `Bus` instances on one URL stand for two processes (each its own connections). One event is in flight
at a time: publish on the first, wait until the second's subscriber has it (parsed back into an event).
The baseline, measured in the same run against the same server: the bare library doing the same hop
(redis-py PUBLISH heard by a redis-py pub/sub; asyncpg NOTIFY heard by an asyncpg listener), with no bus
around it. Ratio = bus ÷ baseline at p50. Then a burst: EVENTS published back to back, time until the last
is heard (events/s). Redis and PostgreSQL; memory:// (one process, no network) for scale.

    .venv/bin/python bench/bus.py [--events 2000] [--redis redis://127.0.0.1:6379/15]
                                  [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--no-record]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inbox.events import Bus, MessageReceived  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.redis_server import spawn_redis  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

CHANNEL = "inbox_bench"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def hops(count: int, hop: Callable[[int], Awaitable[None]]) -> list[float]:
    times = []
    for n in range(count):
        started = time.perf_counter()
        await hop(n)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def bus_hops(url: str, count: int) -> tuple[list[float], float]:
    first = Bus(url, queue_size=count + 1)
    # In memory there is one process: its own bus is the only one that hears it.
    second = first if url.startswith("memory://") else Bus(url, queue_size=count + 1)
    await first.connect()
    await second.connect()
    try:
        async with second.subscribe() as heard:

            async def hop(n: int) -> None:
                await first.publish(MessageReceived(message_id=n, conversation_id=1, case_ids=[n]))
                await heard.get()

            times = await hops(count, hop)
            started = time.perf_counter()
            for n in range(count):
                await first.publish(MessageReceived(message_id=n, conversation_id=1, case_ids=[n]))
            for _ in range(count):
                await heard.get()
            rate = count / (time.perf_counter() - started)
    finally:
        await first.disconnect()
        await second.disconnect()
    return times, rate


async def redis_baseline(url: str, count: int) -> list[float]:
    publisher, listener = Redis.from_url(url), Redis.from_url(url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(CHANNEL)
    while (await pubsub.get_message(timeout=5) or {}).get("type") != "subscribe":
        pass
    text = MessageReceived(message_id=1, conversation_id=1, case_ids=[1]).to_json()

    async def hop(_: int) -> None:
        await publisher.publish(CHANNEL, text)
        while (await pubsub.get_message(timeout=None) or {}).get("type") != "message":
            pass

    try:
        return await hops(count, hop)
    finally:
        await pubsub.aclose()
        await publisher.aclose()
        await listener.aclose()


async def postgres_baseline(url: str, count: int) -> list[float]:
    publisher, listener = await asyncpg.connect(url), await asyncpg.connect(url)
    queue: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(CHANNEL, lambda *args: queue.put_nowait(args[-1]))
    text = MessageReceived(message_id=1, conversation_id=1, case_ids=[1]).to_json()

    async def hop(_: int) -> None:
        await publisher.execute("SELECT pg_notify($1, $2)", CHANNEL, text)
        await queue.get()

    try:
        return await hops(count, hop)
    finally:
        await publisher.close()
        await listener.close()


def summary(times: list[float]) -> str:
    return f"p50 {statistics.median(times):.3f} ms · p99 {percentile(times, 99):.3f} ms"


async def network_rows(events: int, redis_url: str, pg_url: str) -> list[tuple[str, str]]:
    rows = []
    for name, url, baseline in (
        ("Redis", redis_url, redis_baseline),
        ("PostgreSQL", pg_url, postgres_baseline),
    ):
        # Alternated so a busy moment of the shared machine does not land on one side only.
        bare_a = await baseline(url, events // 2)
        bus, rate = await bus_hops(url, events)
        bare = bare_a + await baseline(url, events // 2)
        ratio = statistics.median(bus) / statistics.median(bare)
        line = f"bus {summary(bus)} · bare library {summary(bare)} · ratio {ratio:.2f} · burst {rate:,.0f} events/s"
        print(f"{name:<25} {line}")
        rows.append((f"{name} (two Bus instances = two processes' connections)", line))
    return rows


async def nothing_to_prepare(_url: str) -> None:
    """LISTEN/NOTIFY needs no tables."""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="the server (no database)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    memory, memory_rate = await bus_hops("memory://", args.events)
    print(f"memory:// (one process)   {summary(memory)} · burst {memory_rate:,.0f} events/s")
    rows = [("memory:// (one process, no network)", f"{summary(memory)} · burst {memory_rate:,.0f} events/s")]
    # A redis-server and a database of the benchmark's own: an app on a shared server would hear these events.
    redis_port = free_port()
    redis_server = spawn_redis(Path(tempfile.mkdtemp()), redis_port)
    await asyncio.sleep(0.5)
    try:
        async with fresh_database(args.postgres, f"inbox_bench_bus_{os.getpid()}", nothing_to_prepare) as pg_url:
            rows += await network_rows(args.events, f"redis://127.0.0.1:{redis_port}/0", pg_url)
    finally:
        redis_server.terminate()
        redis_server.wait()
    if not args.no_record:
        record(rows, args.events)


def record(rows: list[tuple[str, str]], events: int) -> None:
    today = datetime.now(UTC).date().isoformat()
    load = f"{events} events one at a time, then a burst; `bench/bus.py`; 2-core VM shared with other work"
    with (REPO / "bench" / "RESULTS.md").open("a") as results:
        for what, figures in rows:
            results.write(f"| {today} | event bus hop, {what} | {load} | {figures} |\n")


if __name__ == "__main__":
    asyncio.run(main())
