"""Import benchmark: a nightly export of ROWS rows (default 50,000) loaded by `inbox import`'s service.

The files: EVENTS case events (default 5,000: hearings, two default reminders each, so two scheduled texts per
event) and, of the other rows, 40 % clients (each with a mobile; every third okay to text, so a consent ledger
entry per mobile), 40 % cases (one per client, in five offices), 20 % assignments (one staff member of ten per
case) — in a fresh database, SQLite, then PostgreSQL.

Timed: the first import (clients, cases and assignments, then the events file: the two added up are the first
import, target ≤ 30 s), all four files again (every row unchanged: nothing written), and a dry run of them. The
baseline, measured in the same run on the same database: a bare bulk insert (inbox.services.bulk.insert_rows, in
one transaction) of as many client rows, the least any import of that many rows must cost. Ratio = first import ÷
baseline.

    .venv/bin/python bench/import.py [--rows 50000] [--events 5000]
                                     [--postgres postgres://postgres@127.0.0.1:5432] [--skip-postgres]
                                     [--skip-sqlite] [--no-record]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tortoise.transactions import in_transaction  # noqa: E402

from inbox import clock, db  # noqa: E402
from inbox.app import ensure_organisation  # noqa: E402
from inbox.events import Bus  # noqa: E402
from inbox.models import Channel, Staff  # noqa: E402
from inbox.services import bulk  # noqa: E402
from inbox.services.import_files import CsvFile  # noqa: E402
from inbox.services.importing import ImportReport, run_import  # noqa: E402
from inbox.services.staff import create_staff  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.sqlite import fresh_sqlite_database  # noqa: E402

TARGET_SECONDS = 30.0
STAFF = 10


def export(rows: int, events: int) -> tuple[list[CsvFile], list[CsvFile]]:
    """The nightly export of `rows` rows: clients, cases and assignments, and an events file of `events` rows on
    the first cases."""
    clients = (rows - events) * 2 // 5
    assignments = rows - events - 2 * clients
    lines = ["external_id,name,mobile,okay_to_text,preferred_language"]
    lines += [
        f"CL-{n},Client {n},+1404{5000000 + n:07d},{'true' if n % 3 == 0 else 'false'},{'es' if n % 7 == 0 else 'en'}"
        for n in range(clients)
    ]
    cases = ["external_id,number,title,client_external_id,legal_problem,office,opened_on,closed_on"]
    cases += [
        f"CA-{n},2026-{n:06d},Case {n},CL-{n},Housing,Office {n % 5},2026-0{1 + n % 9}-15," for n in range(clients)
    ]
    people = ["case_external_id,staff_email,primary,start,end"]
    people += [f"CA-{n},staff{n % STAFF}@example.org,true,2026-10-01," for n in range(assignments)]
    happening = ["external_id,case_external_id,kind,title,starts_at,place"]
    happening += [
        f"EV-{n},CA-{n},hearing,Hearing {n},2027-06-0{1 + n % 9}T09:30:00-04:00,Courtroom 4B" for n in range(events)
    ]

    def file(name: str, text: list[str]) -> CsvFile:
        return CsvFile(name, ("\n".join(text) + "\n").encode())

    main = [file("clients.csv", lines), file("cases.csv", cases), file("assignments.csv", people)]
    return main, [file("events.csv", happening)]


async def baseline(rows: int) -> float:
    """A bare bulk insert of `rows` client rows in one transaction (then removed again)."""
    now = clock.now()
    values = [(f"Baseline {n}", f"BL-{n}", "en", now) for n in range(rows)]
    started = time.perf_counter()
    async with in_transaction():
        await bulk.insert_rows(
            "client",
            {"name": "text", "external_id": "text", "preferred_language": "text", "created_at": "timestamptz"},
            values,
        )
    elapsed = time.perf_counter() - started
    await bulk.execute("DELETE FROM client WHERE external_id LIKE ?", ["BL-%"])
    return elapsed


@dataclass
class Figures:
    backend: str
    rows: int
    events: int
    main: float  # clients, cases and assignments
    events_seconds: float
    again: float
    dry: float
    base: float
    report: ImportReport
    cpu: float  # this process's CPU seconds over the first import (the machine is shared: wall time drifts)
    load: str

    @property
    def first(self) -> float:
        return self.main + self.events_seconds


async def timed(bus: Bus, files: list[CsvFile], staff: Staff, dry_run: bool = False) -> tuple[float, ImportReport]:
    started = time.perf_counter()
    report = await run_import(bus, files, dry_run=dry_run, staff=staff)
    return time.perf_counter() - started, report


async def run_on(backend: str, database: AbstractAsyncContextManager[str], rows: int, events: int) -> Figures:
    async with database as url:
        await db.connect(url)
        bus = Bus("memory://")
        await bus.connect()
        try:
            await ensure_organisation()
            await Channel.create(label="Bench", account_sid="AC" + "0" * 32, from_number="+14045550100")
            admin, _ = await create_staff(email="admin@example.org", name="Admin", role="admin", password="x" * 12)
            for n in range(STAFF):
                await create_staff(email=f"staff{n}@example.org", name=f"Staff {n}", role="advocate", password="x" * 12)
            main, event_files = export(rows, events)
            base = await baseline(rows)
            cpu = time.process_time()
            first, report = await timed(bus, main, admin)
            events_seconds, events_report = await timed(bus, event_files, admin) if events else (0.0, report)
            cpu = time.process_time() - cpu
            report.tallies |= events_report.tallies
            again, repeat = await timed(bus, main + event_files, admin)
            assert repeat.changes == 0, repeat.lines()
            dry, _ = await timed(bus, main + event_files, admin, dry_run=True)
        finally:
            await bus.disconnect()
            await db.disconnect()
    load = os.getloadavg()
    return Figures(backend, rows, events, first, events_seconds, again, dry, base, report, cpu, f"{load[0]:.1f}")


def line(f: Figures) -> str:
    verdict = "meets" if f.first <= TARGET_SECONDS else "misses"
    per_event = f" ({1000 * f.events_seconds / f.events:.2f} ms each)" if f.events else ""
    return (
        f"| {date.today().isoformat()} | CSV import ({f.backend}) | {f.rows:,} rows: {' · '.join(f.report.lines())}; "
        f"`bench/import.py`; 2-core VM shared with other work, load average {f.load} | first import {f.first:.2f} s "
        f"({verdict} the {TARGET_SECONDS:.0f} s target; CPU {f.cpu:.2f} s): clients, cases and assignments "
        f"{f.main:.2f} s + {f.events:,} events with their reminders {f.events_seconds:.2f} s{per_event} · again "
        f"(all unchanged) {f.again:.2f} s · dry run {f.dry:.2f} s · baseline (bare bulk insert of as many client "
        f"rows) {f.base:.2f} s · ratio {f.first / f.base:.1f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to bench/RESULTS.md")
    args = parser.parse_args()
    results: list[Figures] = []
    if not args.skip_sqlite:
        results.append(await run_on("SQLite", fresh_sqlite_database(), args.rows, args.events))
        print(line(results[-1]), flush=True)
    if not args.skip_postgres:
        database = fresh_database(args.postgres, f"bench_import_{datetime.now(UTC):%H%M%S}")
        results.append(await run_on("PostgreSQL", database, args.rows, args.events))
        print(line(results[-1]), flush=True)
    if not args.no_record:
        with (REPO / "bench" / "RESULTS.md").open("a") as recorded:
            for figures in results:
                recorded.write(line(figures) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
