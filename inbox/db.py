"""The database: Tortoise configuration, connection and the built-in migrations."""

from __future__ import annotations

import os

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as run_migrations

from inbox.settings import DEFAULT_DATABASE_URL


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
