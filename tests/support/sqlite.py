"""A scratch SQLite database, the counterpart of tests/support/postgres.py's `fresh_database`: for benchmarks."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from inbox import db


@asynccontextmanager
async def fresh_sqlite_database() -> AsyncIterator[str]:
    """A new SQLite database in a temporary directory, migrated to the newest; its URL. Deleted afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        await db.migrate(url)
        yield url
