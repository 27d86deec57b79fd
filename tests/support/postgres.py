"""A scratch PostgreSQL database for a test that needs PostgreSQL whichever pass the suite is in (the
outbox's SKIP LOCKED claiming across processes exists only there)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

from inbox import db

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"


def postgres_server(suffix: str) -> tuple[str, str]:
    """The server to make the scratch database on, and its name: the suite's own server in the
    PostgreSQL pass, else INBOX_TEST_POSTGRES_URL (the local one by default). The name carries the
    process id, so helpers running the suite side by side do not share it."""
    suite = os.environ.get("INBOX_DATABASE_URL", "")
    if suite.startswith("postgres"):
        server, name = suite.rsplit("/", 1)
        return server, f"{name}_{suffix}"
    server = os.environ.get("INBOX_TEST_POSTGRES_URL", LOCAL_POSTGRES).rstrip("/")
    return server, f"inbox_{suffix}_{os.getpid()}"


@asynccontextmanager
async def fresh_database(
    server: str, name: str, prepare: Callable[[str], Awaitable[None]] = db.migrate
) -> AsyncIterator[str]:
    """A new database `name` on `server` (its URL), made ready by `prepare` (migrated to the newest by
    default), dropped afterwards. For tests and benchmarks alike."""
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{server}/{name}"
        await prepare(url)
        try:
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(suffix: str, prepare: Callable[[str], Awaitable[None]] = db.migrate) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test (see fresh_database). Fails the test with a clear
    message when PostgreSQL is not running: it is required, never skipped."""
    server, name = postgres_server(suffix)
    try:
        await (await asyncpg.connect(f"{server}/postgres")).close()
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {server} ({exc}): start it, or set INBOX_TEST_POSTGRES_URL")
    async with fresh_database(server, name, prepare) as url:
        yield url
