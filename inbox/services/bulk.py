"""Bulk writes for bulk texts: rows inserted by the driver's executemany, in either database's parameter style.

Tortoise's bulk_create builds a model object per row, which alone costs about a second for 10,000 texts
(bench/campaigns.py's baseline); the rows here are plain tuples of what the columns hold (enum values,
datetimes: both drivers store them as Tortoise does — SQLite through the adapters Tortoise registers)."""

from __future__ import annotations

from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

BATCH = 10_000  # rows per executemany


def db() -> BaseDBAsyncClient:
    """The connection in use: the current transaction's, inside one."""
    connection: BaseDBAsyncClient = connections.get("default")
    return connection


def sql(statement: str) -> str:
    """`?` parameters as the database's driver writes them (asyncpg numbers them)."""
    if db().capabilities.dialect != "postgres":
        return statement
    parts = statement.split("?")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, start=1))


async def insert_rows(
    table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], on_conflict_nothing: bool = False
) -> None:
    if not rows:
        return
    marks = ", ".join("?" for _ in columns)
    tail = " ON CONFLICT DO NOTHING" if on_conflict_nothing else ""
    statement = sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){tail}")
    for start in range(0, len(rows), BATCH):
        await db().execute_many(statement, [list(row) for row in rows[start : start + BATCH]])


async def execute(statement: str, values: list[Any]) -> None:
    await db().execute_query(sql(statement), values)


async def execute_many(statement: str, rows: list[list[Any]]) -> None:
    if rows:
        await db().execute_many(sql(statement), rows)
