"""The test database: migrated once per run, emptied after every test."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

from tortoise import Tortoise

from inbox import db
from inbox.services import spool


def database_url(tmp_dir: Path) -> str:
    """PostgreSQL when INBOX_DATABASE_URL says so (CI's second pass), else a fresh SQLite file."""
    return os.environ.get("INBOX_DATABASE_URL") or f"sqlite://{tmp_dir / 'inbox-test.sqlite3'}"


async def prepare(url: str) -> None:
    await db.migrate(url)
    await db.connect(url)
    try:
        await wipe()
    finally:
        await db.disconnect()


async def wipe() -> None:
    """Delete every row (not the schema): cheap enough to run after each test on both backends."""
    connection = Tortoise.get_connection("default")
    tables = [model._meta.db_table for model in Tortoise.apps.get_models_iterable()]  # type: ignore[union-attr]
    if connection.capabilities.dialect == "postgres":
        quoted = ", ".join(f'"{table}"' for table in tables)
        await connection.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        return
    await connection.execute_script("PRAGMA foreign_keys = OFF")
    for table in tables:
        await connection.execute_script(f'DELETE FROM "{table}"')
    await connection.execute_script("PRAGMA foreign_keys = ON")
    empty_spool()


def empty_spool() -> None:
    """What a test's processes spooled and never moved (one killed mid-burst) would be moved by the next test's."""
    database_file = spool.database_file()
    if database_file is None or not spool.spool_path(database_file).is_file():
        return
    with closing(sqlite3.connect(spool.spool_path(database_file), isolation_level=None)) as connection:
        connection.execute(spool.SCHEMA)
        connection.execute("DELETE FROM spool")


@asynccontextmanager
async def connection_broken() -> AsyncIterator[None]:
    """The app's database connection closed under it, as when the database is briefly unreachable:
    every query fails until the block ends, and the first one after it connects again.

    Tortoise keeps an open connection (SQLite) or pool (PostgreSQL) and reconnects only when it holds
    none, so the real one is closed and left in place, then dropped.
    """
    client = Tortoise.get_connection("default")
    if client.capabilities.dialect == "postgres":
        await client._pool.close()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            client._pool = None  # type: ignore[attr-defined]
    else:
        await client._connection.close()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            client._connection = None  # type: ignore[attr-defined]
