"""The spool (SQLite only): a burst's inbound texts made durable without waiting for the database's one writer.

SQLite lets one connection write at a time. When the web process stored a burst's webhooks in the database
itself, each group store waited for `inbox worker`'s units of work to let go of the writer (a batch of texts
holds it ~15–40 ms): Twilio's answers waited too (bench/ingest.py: 0.26× a bare endpoint acknowledged). A second
SQLite file has a writer of its own: the web process appends each group there (one INSERT, one commit with
its fsync: synchronous=FULL, as the database) and answers; a mover in the same process then copies the spooled
rows into `webhook_payload` and deletes them from the spool, where the processors claim them as before.

Nothing acknowledged is lost: a row leaves the spool only after its copy in the database has committed. A
process that dies between the two leaves rows that are copied again; the copy skips a row already there
(the same MessageSid received at the same instant: Twilio's own retries arrive later and stay rows of their own,
recorded as duplicates when processed). Rows a dead process left are swept by any process that starts, and
by a processor's polls once they are ORPHAN_SECONDS old (younger ones are their own process's to move).

The file sits beside the database (`<database>-spool`, like SQLite's own `-wal` and `-shm`): every process
that shares the database shares it. PostgreSQL's writers do not wait for each other: it has no spool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite
from tortoise import connections

from inbox import db
from inbox.models import WebhookPayload
from inbox.services import messaging

log = logging.getLogger(__name__)

SUFFIX = "-spool"
MOVE_BATCH = 500  # spooled rows copied by one statement at most (6 parameters each: well under SQLite's limit)
ORPHAN_SECONDS = 5.0  # spooled rows this old were left by a process that died before moving them
BUSY_TIMEOUT_MS = 5000  # another web process's append, or a mover's delete, holds the spool's writer briefly

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, provider_sid TEXT, params TEXT NOT NULL, "
    "idempotency_token TEXT, received_at TEXT NOT NULL, sender TEXT)"
)


@dataclass(frozen=True)
class Spooled:
    """One verified inbound webhook, as `webhook_payload` will hold it."""

    provider_sid: str | None
    params: str  # the JSON text the params column holds
    idempotency_token: str | None
    sender: str | None


def spooled(params: Mapping[str, str], token: str | None, sender: str | None) -> Spooled:
    encoded = WebhookPayload._meta.fields_map["params"].to_db_value(dict(params), WebhookPayload)
    return Spooled(
        messaging.storable_sid(params.get("MessageSid") or params.get("SmsSid")),
        str(encoded),
        messaging.storable_token(token),
        sender,
    )


def stored_time(moment: datetime) -> str:
    """A time as `webhook_payload.received_at` holds it on SQLite (what sqlite3's datetime adapter writes for
    `store_payloads`): the copy compares it, and text order is time order."""
    return moment.isoformat(sep=" ")


def spool_path(database_file: str) -> Path:
    return Path(f"{database_file}{SUFFIX}")


def database_file() -> str | None:
    """The SQLite database's file, or None when there is no spool to have (PostgreSQL, an in-memory SQLite)."""
    client = connections.get("default")
    if client.capabilities.dialect != "sqlite":
        return None
    filename = str(getattr(client, "filename", ""))
    return None if filename in ("", ":memory:") or filename.startswith("file::memory:") else filename


class Spool:
    """The spool file, on a connection of its own (its own aiosqlite thread: appends never queue behind the
    database's statements)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> aiosqlite.Connection:
        async with self._opening:
            if self._connection is None:
                connection = await aiosqlite.connect(self.path, isolation_level=None)
                try:
                    for pragma in ("journal_mode = WAL", "synchronous = FULL", f"busy_timeout = {BUSY_TIMEOUT_MS}"):
                        await connection.execute(f"PRAGMA {pragma}")
                    await connection.execute(SCHEMA)
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
            return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def append(self, rows: list[Spooled], received_at: datetime) -> None:
        """The rows, durable once this returns (one INSERT, one commit)."""
        connection = await self._open()
        placeholders = ", ".join("(?, ?, ?, ?, ?)" for _ in rows)
        values: list[object] = []
        for row in rows:
            values += [row.provider_sid, row.params, row.idempotency_token, stored_time(received_at), row.sender]
        await connection.execute(
            f"INSERT INTO spool (provider_sid, params, idempotency_token, received_at, sender) VALUES {placeholders}",
            values,
        )

    async def waiting(self) -> tuple[int, datetime | None]:
        """How many rows wait to be moved, and when the oldest was received (None: none)."""
        connection = await self._open()
        ((count, oldest),) = await connection.execute_fetchall("SELECT count(*), min(received_at) FROM spool")
        return int(count), None if oldest is None else datetime.fromisoformat(str(oldest))

    async def move(self, received_before: datetime | None = None) -> int:
        """Copies the oldest spooled rows (only those received before `received_before`, when given) into
        `webhook_payload`, then deletes them from the spool; the rows copied (0: none left)."""
        connection = await self._open()
        values: list[object] = [] if received_before is None else [stored_time(received_before)]
        condition = "" if received_before is None else "WHERE received_at < ?"
        rows = list(
            await connection.execute_fetchall(
                "SELECT id, provider_sid, params, idempotency_token, received_at, sender FROM spool "
                f"{condition} ORDER BY id LIMIT {MOVE_BATCH}",
                values,
            )
        )
        if not rows:
            return 0
        copied = await _copy_into_database([tuple(row)[1:] for row in rows])
        # Only now: a process killed before this line leaves the rows spooled, and the next copy skips them.
        ids = [row[0] for row in rows]
        await connection.execute(f"DELETE FROM spool WHERE id IN ({', '.join('?' for _ in ids)})", ids)
        return copied


async def _copy_into_database(rows: list[tuple[object, ...]]) -> int:
    """Spooled rows inserted into `webhook_payload` in their order, skipping any already copied; how many were
    inserted. One statement: on SQLite, it waits for the writer as the web's own stores do."""
    placeholders = ", ".join("(?, ?, ?, ?, ?, ?)" for _ in rows)
    values: list[object] = []
    for number, row in enumerate(rows):
        values += [number, *row]
    sql = (
        f"WITH spooled (n, provider_sid, params, idempotency_token, received_at, sender) AS (VALUES {placeholders}) "
        "INSERT INTO webhook_payload (kind, provider_sid, params, idempotency_token, received_at, sender) "
        "SELECT 'message', s.provider_sid, s.params, s.idempotency_token, s.received_at, s.sender FROM spooled AS s "
        "WHERE NOT EXISTS (SELECT 1 FROM webhook_payload AS w WHERE w.provider_sid IS s.provider_sid "
        "AND w.received_at = s.received_at AND w.kind = 'message') ORDER BY s.n RETURNING id"
    )
    return len(await db.write_returning(sql, values))
