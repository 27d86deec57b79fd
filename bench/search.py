"""Search benchmark: the inbox's search over MESSAGES messages (default 100,000) in 2,000 conversations, with
the full-text index (FTS5 on SQLite, GIN tsvector on PostgreSQL), against a LIKE baseline in the same run.

Each figure is the median of ROUNDS calls of `conversations.inbox_rows(supervisor, "all", q)` — the whole list
a supervisor's search builds (visibility, the search query, rows, names, unread counts), not the SQL alone.
The baseline is the same call with the message-text part of the query replaced by the scan a search without
the index needs: `LOWER(body) LIKE '%word%'` for every word (names, numbers and case numbers are matched
alike in both). Ratio = baseline ÷ indexed.

The texts: 14 words each from a vocabulary of 2,000 words; "courtroom" is in 0.1 % of them (a rare word),
"hearing" in 10 % (a common one), "courthouse" in 1 % (so the prefix "court" finds two words).

    .venv/bin/python bench/search.py [--messages 100000] [--postgres postgres://postgres@127.0.0.1:5432]
                                     [--skip-postgres] [--no-record]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' PostgreSQL helper

from tortoise import Tortoise  # noqa: E402

from inbox import db  # noqa: E402
from inbox.services import conversations, search  # noqa: E402
from inbox.services.staff import create_staff  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.sqlite import fresh_sqlite_database  # noqa: E402

CONVERSATIONS = 2000
WORDS_PER_TEXT = 14
ROUNDS = 7
QUERIES = [("courtroom", "a rare word"), ("hearing", "a common word"), ("court", "a prefix"), ("Client 1234", "a name")]


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(2000)]


def text(rng: random.Random, words: list[str]) -> str:
    chosen = rng.choices(words, k=WORDS_PER_TEXT)
    roll = rng.random()
    if roll < 0.001:
        chosen[rng.randrange(WORDS_PER_TEXT)] = "courtroom"
    elif roll < 0.011:
        chosen[rng.randrange(WORDS_PER_TEXT)] = "courthouse"
    if rng.random() < 0.10:
        chosen[rng.randrange(WORDS_PER_TEXT)] = "hearing"
    return " ".join(chosen).capitalize() + "?"


async def fill(messages: int) -> None:
    """A channel, CONVERSATIONS conversations (every other one a client's number), `messages` texts, written
    with plain INSERTs in batches (on SQLite the index's triggers run for each, as in use)."""
    connection = Tortoise.get_connection("default")
    postgres = connection.capabilities.dialect == "postgres"

    def marks(n: int) -> str:
        return ", ".join(f"${i}" if postgres else "?" for i in range(1, n + 1))

    rng = random.Random(10)
    words = vocabulary(rng)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await connection.execute_query(
        "INSERT INTO channel (label, account_sid, is_simulator, throughput, help_text, twilio_handles_opt_out,"
        " auto_reply_mode, auto_reply_text, office_hours, time_zone, call_response, created_at)"
        f" VALUES ('x', 'AC1', FALSE, 1, 'h', TRUE, 'off', '', '{{}}', 'UTC', 'c', {marks(1)})",
        [start],
    )
    phones = [f"+1404{5000000 + n:07d}" for n in range(CONVERSATIONS)]
    per = messages // CONVERSATIONS
    await connection.execute_many(
        "INSERT INTO conversation (channel_id, phone, last_message_preview, last_message_at, last_direction,"
        f" created_at) VALUES (1, {marks(5)})",
        [[p, "…", start + timedelta(minutes=n * per + per - 1), "inbound", start] for n, p in enumerate(phones)],
    )
    await connection.execute_many(
        f"INSERT INTO client (name, created_at) VALUES ({marks(2)})",
        [[f"Client {n}", start] for n in range(0, CONVERSATIONS, 2)],
    )
    await connection.execute_many(
        f"INSERT INTO client_phone (client_id, number, kind, okay_to_text, opted_out, created_at) VALUES ({marks(6)})",
        [[n // 2 + 1, phones[n], "mobile", True, False, start] for n in range(0, CONVERSATIONS, 2)],
    )
    rows = []
    for n in range(messages):
        conversation = n // per if n // per < CONVERSATIONS else CONVERSATIONS - 1
        at = start + timedelta(minutes=n)
        rows.append(
            [conversation + 1, "inbound", phones[conversation], "+15005550006", text(rng, words), "received", at, at]
        )
    insert = (
        "INSERT INTO message (conversation_id, direction, from_number, to_number, body, status, segments, encoding,"
        f" attempt_count, outcome_unknown, created_at, updated_at) VALUES ({marks(6)}, 1, 'GSM-7', 0, FALSE,"
        f" {', '.join(f'${i}' if postgres else '?' for i in (7, 8))})"
    )
    for first in range(0, len(rows), 5000):
        await connection.execute_many(insert, rows[first : first + 5000])
    if postgres:
        await connection.execute_script("ANALYZE")


def like_hits(terms: search.Terms, params: search._Params) -> str:
    """The baseline: every text read and matched with LIKE, word by word."""
    likes = " AND ".join(f"LOWER(body) LIKE {params.add('%' + word + '%')}" for word in terms.words)
    return f"SELECT conversation_id, MAX(id) AS message_id FROM message WHERE {likes} GROUP BY conversation_id"


async def timed(q: str, staff: object) -> tuple[float, int]:
    """Median milliseconds of ROUNDS searches (after one to warm up) and the rows found."""
    rows = await conversations.inbox_rows(staff, "all", q)  # type: ignore[arg-type]
    times = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        await conversations.inbox_rows(staff, "all", q)  # type: ignore[arg-type]
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), len(rows)


async def measure(url: str, backend: str, messages: int) -> list[str]:
    await db.connect(url)
    try:
        began = time.perf_counter()
        await fill(messages)
        print(f"{backend}: {messages} texts written in {time.perf_counter() - began:.1f} s", flush=True)
        supervisor, _ = await create_staff(email="sam@example.org", name="Sam", role="supervisor", password="x" * 12)
        lines = []
        indexed_hits: Callable[[search.Terms, search._Params], str] = search._text_hits
        for q, what in QUERIES:
            indexed, found = await timed(q, supervisor)
            search._text_hits = like_hits  # type: ignore[assignment]
            try:
                baseline, found_by_like = await timed(q, supervisor)
            finally:
                search._text_hits = indexed_hits  # type: ignore[assignment]
            line = (
                f"| {datetime.now(UTC):%Y-%m-%d} | search ({backend}, `inbox_rows` of a supervisor) | "
                f"{messages:,} texts in {CONVERSATIONS:,} conversations, q = “{q}” ({what}); `bench/search.py`; "
                f"2-core VM shared with other work | {indexed:.1f} ms indexed ({found} rows) · LIKE baseline "
                f"{baseline:.1f} ms ({found_by_like} rows) · ratio {baseline / indexed:.1f}× |"
            )
            print(line, flush=True)
            lines.append(line)
        return lines
    finally:
        await db.disconnect()


async def run(messages: int, postgres: str | None) -> list[str]:
    lines = []
    async with fresh_sqlite_database() as url:
        lines += await measure(url, "SQLite FTS5", messages)
    if postgres:
        async with fresh_database(postgres, f"inbox_bench_search_{os.getpid()}") as url:
            lines += await measure(url, "PostgreSQL GIN", messages)
    return lines


def record(lines: list[str]) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    with path.open("a") as out:
        out.writelines(line + "\n" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--postgres", default=os.environ.get("INBOX_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    lines = asyncio.run(run(args.messages, None if args.skip_postgres else args.postgres.rstrip("/")))
    if not args.no_record:
        record(lines)


if __name__ == "__main__":
    main()
