"""The database: Tortoise configuration, connection and the built-in migrations."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from typing import Any

import aiosqlite
from tortoise import Tortoise, connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as run_migrations

from inbox.settings import DEFAULT_DATABASE_URL

# A write that finds SQLite's one writer taken tries again this often, for at most WRITER_WAIT_SECONDS (SQLite's
# own busy timeout, as aiosqlite sets it).
WRITER_POLL_SECONDS = 0.001
WRITER_WAIT_SECONDS = 5.0
_busy_timeouts: weakref.WeakKeyDictionary[aiosqlite.Connection, int] = weakref.WeakKeyDictionary()


async def _keep_session(connection: object) -> None:
    """asyncpg's pool resets a connection each time it is given back (`SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`), and Tortoise gives it back after every statement outside a transaction: a
    second round trip per query. Nothing here leaves session state on a pooled connection (no SET, advisory
    lock, cursor or LISTEN: the event bus listens on a connection of its own), so there is nothing to reset;
    an open transaction is still rolled back by asyncpg before this is called."""


def connection_of(database_url: str) -> str | dict[str, object]:
    """The URL as Tortoise reads it, with asyncpg's pool told to skip its reset on PostgreSQL."""
    if not database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return database_url
    expanded = expand_db_url(database_url)
    credentials = dict(expanded["credentials"])
    credentials["reset"] = _keep_session
    return {**expanded, "credentials": credentials}


def tortoise_config(database_url: str) -> dict[str, object]:
    return {
        "connections": {"default": connection_of(database_url)},
        "apps": {
            "models": {
                "models": ["inbox.models"],
                "default_connection": "default",
                "migrations": "inbox.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# Read by `tortoise makemigrations` (see [tool.tortoise] in pyproject.toml).
TORTOISE_ORM = tortoise_config(os.environ.get("INBOX_DATABASE_URL", DEFAULT_DATABASE_URL))


async def migrate(database_url: str) -> None:
    """Apply every committed migration; safe to run on an up-to-date database."""
    try:
        await run_migrations(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def connect(database_url: str) -> None:
    # Tortoise caches each model's INSERT and DELETE statements by connection name and table, not by
    # dialect: a process that connects to SQLite and then to PostgreSQL (the tests, the benchmarks)
    # would send SQLite's `?` placeholders to PostgreSQL. Connecting starts from an empty cache.
    EXECUTOR_CACHE.clear()
    # Global fallback: the lifespan runs in one task and every request in another, and
    # Tortoise 1.x keeps its context in a contextvar that requests would not inherit.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def disconnect() -> None:
    await Tortoise.close_connections()


async def write_returning(sql: str, values: list[Any]) -> list[dict[str, Any]]:
    """One writing statement outside any transaction, its RETURNING rows; on SQLite it takes the writer as
    soon as it is free.

    SQLite's busy handler waits for a writer held by another process (`inbox worker`) by sleeping 1, 2, 5,
    10, 15, 20, 25, 25, 25, 50, 50, 100, 100… ms: the other process, which writes unit after unit, takes it
    again in the gaps, and a waiting statement waited up to half a second under load (bench/ingest.py: p99
    482 ms, 0.09× a bare endpoint). Here the statement runs with no busy timeout and is tried again every
    WRITER_POLL_SECONDS instead. Nothing else of this process uses its one connection meanwhile: Tortoise's
    lock on it is held throughout, as during a transaction."""
    client = connections.get("default")
    if client.capabilities.dialect != "sqlite" or isinstance(client, TransactionalDBClient):
        return list(await client.execute_query_dict(sql, values))
    loop = asyncio.get_running_loop()
    async with client.acquire_connection() as connection:
        if connection not in _busy_timeouts:  # read once: each statement is a hop to aiosqlite's thread and back
            (_busy_timeouts[connection],) = (await connection.execute_fetchall("PRAGMA busy_timeout"))[0]
        busy_timeout = _busy_timeouts[connection]
        await connection.execute_fetchall("PRAGMA busy_timeout = 0")
        try:
            deadline = loop.time() + WRITER_WAIT_SECONDS
            while True:
                try:
                    return list(map(dict, await connection.execute_fetchall(sql, values)))
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() > deadline:
                        raise
                await asyncio.sleep(WRITER_POLL_SECONDS)
        finally:
            await connection.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout)}")
