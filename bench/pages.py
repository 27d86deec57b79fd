"""Page benchmark: every main page at scale, its p50/p95 and its query count.

A fresh database — SQLite, then PostgreSQL (a scratch database, dropped after) — is filled by direct SQL in
seconds: CONVERSATIONS conversations (default 10,000) of PER texts each (100,000 messages), one client with one
mobile and one case per conversation, 50 staff (47 advocates, 2 supervisors, 1 admin), each case assigned to one
advocate, every outbound text with its delivery timeline, every inbound one linked to its case with a case note,
an open alert on every fifth conversation (2,000), the advocate's read marks on half their threads. Then the real
app (its lifespan, httpx's ASGI transport, signed in as an advocate and as a supervisor like a browser) serves each
page ROUNDS times: p50 and p95 in milliseconds, and the database queries one request took — counted again on a
small data set (SMALL conversations) to show the count does not grow with the data. Target: p95 ≤ 30 ms.

    .venv/bin/python bench/pages.py [--conversations 10000] [--small 200] [--rounds 40] [--label after]
                                    [--postgres postgres://postgres@127.0.0.1:5432] [--skip-postgres]
                                    [--skip-sqlite] [--no-record]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tortoise import Tortoise  # noqa: E402

from inbox.app import create_app  # noqa: E402
from inbox.models import Channel  # noqa: E402
from inbox.services.staff import create_api_token, hash_password  # noqa: E402
from inbox.settings import Secret, Settings  # noqa: E402
from tests.support.config import PUBLIC_URL  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.sqlite import fresh_sqlite_database  # noqa: E402
from tests.support.staff import post_sign_in  # noqa: E402

TARGET_MS = 30.0
PER = 10  # texts per conversation
ADVOCATES, SUPERVISORS, ADMINS = 47, 2, 1
OFFICES = 5
ALERT_EVERY = 5  # an open alert on every fifth conversation
PASSWORD = "bench-password-123"
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    advocate_email: str
    supervisor_email: str
    conversation_id: int  # one of the advocate's, with texts, a case and an alert
    case_id: int
    message_id: int


class QueryCounter(logging.Handler):
    """Counts the statements Tortoise logs (its db_client logger at DEBUG: one record per statement)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def seed(conversations: int) -> Seeded:
    """The data set, by plain INSERTs in batches with explicit ids (sequences moved on after, on PostgreSQL)."""
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"

    def marks(n: int) -> str:
        return ", ".join(f"${i}" if postgres else "?" for i in range(1, n + 1))

    async def base(table: str) -> int:
        rows = await connection.execute_query_dict(f'SELECT MAX(id) AS top FROM "{table}"')
        return int(rows[0]["top"] or 0)

    async def insert(table: str, columns: str, rows: list[list[Any]]) -> None:
        names = ", ".join(f'"{c.strip()}"' for c in columns.split(","))
        sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks(len(columns.split(",")))})'
        for first in range(0, len(rows), 5000):
            await connection.execute_many(sql, rows[first : first + 5000])

    channel = await Channel.all().order_by("id").first()
    assert channel is not None
    today = date.today()
    office0 = await base("office")
    await insert("office", "id, name", [[office0 + n + 1, f"Bench office {n}"] for n in range(OFFICES)])
    staff0 = await base("staff")
    hashed = await hash_password(PASSWORD)
    roles = ["advocate"] * ADVOCATES + ["supervisor"] * SUPERVISORS + ["admin"] * ADMINS
    await insert(
        "staff",
        "id, email, name, role, password_hash, is_active, created_at, office_id, staff_reminders",
        [
            [
                staff0 + n + 1,
                f"staff{n}@bench.example",
                f"Staff {n} Person",
                role,
                hashed,
                True,
                START,
                office0 + n % OFFICES + 1,
                True,
            ]
            for n, role in enumerate(roles)
        ],
    )
    advocate = lambda i: staff0 + i % ADVOCATES + 1  # noqa: E731 — conversation i's advocate
    client0, phone0, case0 = await base("client"), await base("client_phone"), await base("case")
    conv0, msg0 = await base("conversation"), await base("message")
    phones = [f"+1404{2000000 + i:07d}" for i in range(conversations)]
    await insert(
        "client", "id, name, created_at", [[client0 + i + 1, f"Client {i} Person", START] for i in range(conversations)]
    )
    await insert(
        "client_phone",
        "id, client_id, number, kind, okay_to_text, opted_out, created_at",
        [[phone0 + i + 1, client0 + i + 1, phones[i], "mobile", True, False, START] for i in range(conversations)],
    )
    await insert(
        "case",
        "id, number, title, legal_problem, opened_on, created_at, client_id, office_id",
        [
            [
                case0 + i + 1,
                f"B-{i:06d}",
                "Eviction",
                "Housing",
                today,
                START,
                client0 + i + 1,
                office0 + i % OFFICES + 1,
            ]
            for i in range(conversations)
        ],
    )
    await insert(
        "assignment",
        "primary, start, created_at, case_id, staff_id",
        [[True, today, START, case0 + i + 1, advocate(i)] for i in range(conversations)],
    )
    # Conversation i's texts at minutes i, i + N, i + 2N…: the conversations interleave in time.
    at = lambda i, k: START + timedelta(minutes=k * conversations + i)  # noqa: E731
    await insert(
        "conversation",
        "id, channel_id, phone, last_message_at, last_message_preview, last_direction, created_at",
        [
            [
                conv0 + i + 1,
                channel.id,
                phones[i],
                at(i, PER - 1),
                "Bench text",
                "outbound" if PER % 2 == 0 else "inbound",
                START,
            ]
            for i in range(conversations)
        ],
    )
    messages, events, links, notes, alerts, assignees, reads = [], [], [], [], [], [], []
    alert0 = await base("alert")
    for i in range(conversations):
        for k in range(PER):
            mid = msg0 + i * PER + k + 1
            when = at(i, k)
            inbound = k % 2 == 0
            frm, to = (
                (phones[i], channel.from_number or "+15005550006")
                if inbound
                else (channel.from_number or "+15005550006", phones[i])
            )
            messages.append(
                [
                    mid,
                    conv0 + i + 1,
                    "inbound" if inbound else "outbound",
                    frm,
                    to,
                    f"Bench text {k} in thread {i}",
                    "received" if inbound else "delivered",
                    1,
                    "GSM-7",
                    0,
                    False,
                    when,
                    when,
                    None if inbound else advocate(i),
                    case0 + i + 1,
                ]
            )
            if inbound:
                links.append([mid, case0 + i + 1, "client_phone", when])
                notes.append([case0 + i + 1, mid, "Client", f"Text: Bench text {k}", when, when])
            else:
                events.append([mid, "sent", when])
                events.append([mid, "delivered", when])
        if i % ALERT_EVERY == 0:
            alert_id = alert0 + len(alerts) + 1
            last_inbound = msg0 + i * PER + (PER - 2 if PER % 2 == 0 else PER - 1) + 1
            alerts.append([alert_id, at(i, PER - 2), case0 + i + 1, last_inbound, 1])
            assignees.append([alert_id, advocate(i)])
        if i % (2 * ADVOCATES) == 0:  # half of the first advocate's threads read to the end
            reads.append([advocate(i), conv0 + i + 1, msg0 + i * PER + PER])
    await insert(
        "message",
        "id, conversation_id, direction, from_number, to_number, body, status, segments, encoding, attempt_count,"
        " outcome_unknown, created_at, updated_at, sent_by_id, case_id",
        messages,
    )
    await insert("message_status_event", "message_id, status, at", events)
    await insert("message_link", "message_id, case_id, reason, created_at", links)
    await insert("case_note", "case_id, message_id, author, body, at, created_at", notes)
    await insert("alert", "id, created_at, case_id, message_id, text_count", alerts)
    await insert("alert_assignee", "alert_id, staff_id", assignees)
    await insert("conversation_read", "staff_id, conversation_id, last_read_message_id", reads)
    await insert(
        "consent_event",
        "number, okay_to_text, opted_out, source, detail, at, client_phone_id",
        [[phones[i], True, False, "import", "imported", START, phone0 + i + 1] for i in range(conversations)],
    )
    if postgres:
        for table in ("office", "staff", "client", "client_phone", "case", "conversation", "message", "alert"):
            await connection.execute_script(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT MAX(id) FROM \"{table}\"))"
            )
        await connection.execute_script("ANALYZE")
    return Seeded(
        advocate_email="staff0@bench.example",
        supervisor_email=f"staff{ADVOCATES}@bench.example",
        conversation_id=conv0 + 1,
        case_id=case0 + 1,
        message_id=msg0 + PER,
    )


def bench_settings(url: str, workdir: Path) -> Settings:
    """The app with its built-in simulator for a provider and no worker: only pages are served."""
    return Settings(
        database_url=url,
        public_url=PUBLIC_URL,
        secret_key=Secret("bench-secret-key-" + "x" * 32),
        media_dir=workdir / "media",
        data_dir=workdir / "data",
        migrate_on_start=False,
        run_worker=False,
    )


def pages(seeded: Seeded) -> list[tuple[str, str, str]]:
    """(who, name, path): the pages an advocate and a supervisor open most, and the API's message."""
    c, case, m = seeded.conversation_id, seeded.case_id, seeded.message_id
    return [
        ("advocate", "inbox", "/"),
        ("advocate", "inbox, unread", "/?filter=unread"),
        ("advocate", "conversation", f"/conversations/{c}"),
        ("advocate", "thread pane", f"/conversations/{c}/thread"),
        ("advocate", "conversation list", "/conversations"),
        ("advocate", "alerts (own)", "/alerts"),
        ("advocate", "alert badge", "/alerts/badge"),
        ("advocate", "home alerts block", "/alerts/block"),
        ("advocate", "case page", f"/cases/{case}"),
        ("advocate", "cases", "/cases"),
        ("advocate", "queue", "/queue"),
        ("supervisor", "inbox", "/"),
        ("supervisor", "conversation", f"/conversations/{c}"),
        ("supervisor", "/alerts", "/alerts"),
        ("supervisor", "alerts dashboard fragment", "/alerts/dashboard"),
        ("supervisor", "unmatched section", "/alerts/unmatched"),
        ("supervisor", "case page", f"/cases/{case}"),
        ("api", "API message", f"/api/v1/messages/{m}"),
        ("api", "API alerts", "/api/v1/alerts"),
    ]


@dataclass(frozen=True)
class Timing:
    who: str
    name: str
    path: str
    p50: float
    p95: float
    queries: int
    size: int  # bytes of the answer
    cpu: float  # this process's CPU time per request, median (ms): the figure least moved by a busy machine


async def signed_in(app: Any, email: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
    response = await post_sign_in(http, email, PASSWORD)
    assert response.status_code == 303, response.text
    return http


async def measure(url: str, conversations: int, rounds: int, workdir: Path) -> list[Timing]:
    app = create_app(bench_settings(url, workdir))
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        seeded = await seed(conversations)
        print(f"  seeded {conversations:,} conversations in {time.perf_counter() - started:.1f} s", flush=True)
        token = await create_api_token(seeded.supervisor_email)
        clients = {
            "advocate": await signed_in(app, seeded.advocate_email),
            "supervisor": await signed_in(app, seeded.supervisor_email),
            "api": httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=PUBLIC_URL,
                headers={"Authorization": f"Bearer {token}"},
            ),
        }
        counter = QueryCounter()
        logger = logging.getLogger("tortoise.db_client")
        results = []
        for who, name, path in pages(seeded):
            http = clients[who]
            response = await http.get(path)  # warm: templates compiled, caches filled
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
            logger.addHandler(counter)
            logger.setLevel(logging.DEBUG)
            counter.count = 0
            await http.get(path)
            queries = counter.count
            logger.removeHandler(counter)
            logger.setLevel(logging.WARNING)
            times, cpu = [], []
            for _ in range(rounds):
                began, began_cpu = time.perf_counter(), time.process_time()
                await http.get(path)
                times.append((time.perf_counter() - began) * 1000)
                cpu.append((time.process_time() - began_cpu) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results.append(
                Timing(
                    who,
                    name,
                    path,
                    statistics.median(times),
                    p95,
                    queries,
                    len(response.content),
                    statistics.median(cpu),
                )
            )
        for http in clients.values():
            await http.aclose()
    return results


def databases(args: argparse.Namespace) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if not args.skip_sqlite:
        found.append(("SQLite", fresh_sqlite_database))
    if not args.skip_postgres:
        found.append(("PostgreSQL", lambda: fresh_database(args.postgres.rstrip("/"), f"bench_pages_{os.getpid()}")))
    return found


async def run(args: argparse.Namespace) -> list[str]:
    lines = []
    for backend, database in databases(args):
        by_size: dict[int, list[Timing]] = {}
        for size, rounds in ((args.small, 3), (args.conversations, args.rounds)):
            print(f"{backend}: {size:,} conversations", flush=True)
            database_cm: AbstractAsyncContextManager[str] = database()
            async with database_cm as url:
                with tempfile.TemporaryDirectory() as tmp:
                    by_size[size] = await measure(url, size, rounds, Path(tmp))
        small, large = by_size[args.small], by_size[args.conversations]
        lines.append(
            f"| {backend} | page | p50 ms | p95 ms | CPU ms | queries at {args.conversations:,} |"
            f" at {args.small:,} | KB |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for few, many in zip(small, large, strict=True):
            flag = "" if many.p95 <= TARGET_MS else " ✗"
            lines.append(
                f"| {many.who} | {many.name} (`{many.path}`) | {many.p50:.1f} | {many.p95:.1f}{flag} | {many.cpu:.1f} |"
                f" {many.queries} |"
                f" {few.queries} | {many.size / 1024:.0f} |"
            )
        for line in lines[-len(large) - 2 :]:
            print(line)
    return lines


def record(label: str, args: argparse.Namespace, lines: list[str]) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"\n## Pages at scale — {label} ({stamp}, 2-core machine shared with other sessions)\n\n"
        f"`bench/pages.py`: {args.conversations:,} conversations × {PER} texts, {ADVOCATES + SUPERVISORS + ADMINS}"
        f" staff, {args.conversations // ALERT_EVERY:,} open alerts; {args.rounds} requests per page through the app"
        f" (ASGI, signed in); target p95 ≤ {TARGET_MS:.0f} ms (✗ = missed). Queries: one request's statements.\n\n"
    )
    with (REPO / "bench" / "RESULTS.md").open("a") as results:
        results.write(header + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--label", default="measured")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    lines = asyncio.run(run(args))
    if not args.no_record:
        record(args.label, args, lines)


if __name__ == "__main__":
    main()
