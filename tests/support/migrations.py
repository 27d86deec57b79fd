"""Migrating a scratch database to a chosen migration, as `inbox migrate` does (tests of what a migration does
to rows that were there before it)."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.migrations.api import migrate

from inbox.db import tortoise_config


async def migrate_to(url: str, target: str | None = None) -> None:
    """Applies the migrations up to `target` ("models.0009_…"; None: all) to the database at `url`."""
    try:
        await migrate(config=tortoise_config(url), target=target)
    finally:
        await Tortoise.close_connections()
