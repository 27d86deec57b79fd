"""The database: Tortoise configuration, connection and the built-in migrations."""

from __future__ import annotations

import os

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as run_migrations

from inbox.settings import DEFAULT_DATABASE_URL


def tortoise_config(database_url: str) -> dict[str, object]:
    return {
        "connections": {"default": database_url},
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
