"""The test database: migrated once per run, emptied after every test."""

from __future__ import annotations

import os
from pathlib import Path

from tortoise import Tortoise

from inbox import db


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
