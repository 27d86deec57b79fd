"""Outgoing webhooks: what finding the endpoints costs a unit of work, read from the database every time (as before
settings_cache kept them) against this process's copy (settings_cache.webhook_subscribers).

Every unit of work whose events include one endpoints may take (a text received, a status, a consent change, an
alert) looks the enabled endpoints up before it commits. Timed: UNITS units of work (default 2,000), each one
empty transaction publishing one `message.status` event, with two endpoints enabled that take only
`alert.raised` (so no delivery row is written: the look-up alone is measured), read each time (the copy forgotten
before every unit) and then from the copy; SQLite, then PostgreSQL. Wall time and this process's CPU time; the
ratio is the copy's time ÷ the database's.

    .venv/bin/python bench/webhook_endpoints.py [--units 2000] [--postgres postgres://postgres@127.0.0.1:5432]
                                                [--skip-postgres] [--no-record]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inbox import db  # noqa: E402
from inbox.app import ensure_organisation  # noqa: E402
from inbox.crypto import SecretBox  # noqa: E402
from inbox.events import Bus, MessageStatusChanged  # noqa: E402
from inbox.models import WebhookDelivery  # noqa: E402
from inbox.services import outgoing_webhooks, settings_cache  # noqa: E402
from inbox.services.staff import create_staff  # noqa: E402
from inbox.services.unit_of_work import unit_of_work  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.sqlite import fresh_sqlite_database  # noqa: E402


async def units(bus: Bus, count: int, cached: bool) -> tuple[float, float]:
    """`count` units of work publishing one status event each: (wall seconds, CPU seconds)."""
    event = MessageStatusChanged(message_id=1, conversation_id=1, status="delivered")
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        if not cached:
            settings_cache.forget(settings_cache.ENDPOINTS)
        async with unit_of_work(bus) as uow:
            uow.publish(event)
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_on(backend: str, database: AbstractAsyncContextManager[str], count: int) -> str:
    async with database as url:
        await db.connect(url)
        bus = Bus("memory://")
        await bus.connect()
        try:
            await ensure_organisation()
            admin, _ = await create_staff(email="admin@example.org", name="Admin", role="admin", password="x" * 12)
            box = SecretBox("bench-secret-key-" + "x" * 32)
            for n in range(2):
                await outgoing_webhooks.create_endpoint(box, admin, f"https://cms{n}.example.org/h", ["alert.raised"])
            await units(bus, 100, cached=False)  # warm up: statements prepared, caches filled
            read_wall, read_cpu = await units(bus, count, cached=False)
            copy_wall, copy_cpu = await units(bus, count, cached=True)
            assert not await WebhookDelivery.exists()
        finally:
            await bus.disconnect()
            await db.disconnect()
    load = os.getloadavg()[0]
    return (
        f"| {date.today().isoformat()} | Webhook endpoints per unit of work ({backend}) | {count:,} units of work, "
        f"one `message.status` event each, 2 endpoints enabled (neither takes it); `bench/webhook_endpoints.py`; "
        f"2-core VM shared with other work, load average {load:.1f} | read every time "
        f"{1000 * read_wall / count:.3f} ms per unit (CPU {1000 * read_cpu / count:.3f} ms) · this process's copy "
        f"{1000 * copy_wall / count:.3f} ms (CPU {1000 * copy_cpu / count:.3f} ms) · "
        f"ratio {copy_wall / read_wall:.2f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=2_000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to bench/RESULTS.md")
    args = parser.parse_args()
    lines = [await run_on("SQLite", fresh_sqlite_database(), args.units)]
    print(lines[-1], flush=True)
    if not args.skip_postgres:
        database = fresh_database(args.postgres, f"bench_endpoints_{datetime.now(UTC):%H%M%S}")
        lines.append(await run_on("PostgreSQL", database, args.units))
        print(lines[-1], flush=True)
    if not args.no_record:
        with (REPO / "bench" / "RESULTS.md").open("a") as recorded:
            recorded.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    asyncio.run(main())
