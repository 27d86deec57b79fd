"""Bulk writes for bulk texts: rows inserted by PostgreSQL's COPY or SQLite's multi-row INSERTs.

Tortoise's bulk_create builds a model object per row, which alone costs about a second for 10,000 texts
(bench/campaigns.py's baseline); the rows here are plain tuples of what the columns hold (enum values,
datetimes: both drivers store them as Tortoise does — SQLite through the adapters Tortoise registers)."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]  # ships no type information (a dependency of Tortoise's)
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.queryset import ValuesListQuery
from tortoise.transactions import in_transaction

BATCH = 10_000  # rows per PostgreSQL statement


def _sqlite_parameters() -> int:
    """Parameters per SQLite statement: the linked library's limit (32,766 by default since 3.32, 999 before; some
    builds allow 250,000), at most 32,766 — statements of a few thousand rows already pay nothing per statement."""
    probe = sqlite3.connect(":memory:")
    try:
        return min(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 32_766)
    finally:
        probe.close()


SQLITE_PARAMETERS = _sqlite_parameters()


class _Pauses:
    """How many `collector_paused` blocks are open (coroutines interleave them), and whether the collector was on."""

    open = 0
    was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a bulk write runs. Its 10,000s of rows (tuples, records) outlive
    the young generations' collections and so set off a *full* collection of the process's heap mid-write (a few
    hundredths of a CPU second, 0.25–0.87 s of wall time on a loaded VM, in a 10,000-text campaign's start); with
    the collector off they die
    young, freed by reference counting when the write is done, and count towards no collection. Nothing cyclic is
    kept meanwhile that a later collection would not still find."""
    if _Pauses.open == 0:
        _Pauses.was_enabled = gc.isenabled()
        gc.disable()
    _Pauses.open += 1
    try:
        yield
    finally:
        _Pauses.open -= 1
        if _Pauses.open == 0 and _Pauses.was_enabled:
            gc.enable()


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
    table: str,
    columns: dict[str, str],
    rows: list[tuple[Any, ...]],
    on_conflict_nothing: bool = False,
) -> bool:
    """`columns`: name → its PostgreSQL type. PostgreSQL gets COPY inside a transaction (see `_copy`), else one
    statement over `unnest` of one array per column (its executemany, a round of binding per row, took about as
    long as Tortoise); SQLite a few INSERTs of many rows each (`_insert_values`). Answers whether every row is known
    to be in (False: with `on_conflict_nothing`, some may have been left out for a row already there)."""
    if not rows:
        return True
    names = ", ".join(columns)
    tail = " ON CONFLICT DO NOTHING" if on_conflict_nothing else ""
    if db().capabilities.dialect == "postgres" and _in_transaction():
        if not on_conflict_nothing:
            await _copy(table, list(columns), rows)
            return True
        try:  # COPY has no ON CONFLICT: tried in a savepoint, the statement below only when a row is already there
            async with in_transaction():
                await _copy(table, list(columns), rows)
            return True
        except IntegrityError:
            pass
    if db().capabilities.dialect == "postgres":
        arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(columns.values(), start=1))
        statement = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){tail}"
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            await db().execute_query(statement, [list(column) for column in zip(*chunk, strict=True)])
        return not on_conflict_nothing
    before = await _changes() if on_conflict_nothing else 0
    await _insert_values(table, names, len(columns), tail, rows)
    return not on_conflict_nothing or await _changes() - before == len(rows)


async def _insert_values(table: str, names: str, width: int, tail: str, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: a few INSERTs of many rows each (`VALUES (…), (…), …`, as many as its parameter limit allows), not an
    executemany of one row each. A table with a trigger pays a statement journal per statement run: message's
    full-text trigger made an executemany of 10,000 texts ~0.7 s, the same rows in four statements ~0.1 s."""
    per = max(1, SQLITE_PARAMETERS // width)
    one = "(" + ", ".join("?" for _ in range(width)) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        values = [value for row in chunk for value in row]
        await db().execute_query(f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(chunk))}{tail}", values)


async def _changes() -> int:
    """SQLite's count of rows this connection has written (a unit of work holds the connection throughout). It counts
    rows that triggers write too: `insert_rows`' answer with `on_conflict_nothing` holds for tables without insert
    triggers (conversation, its one use, has none)."""
    return int((await fetch("SELECT total_changes()", []))[0][0])


async def reserve_ids(table: str, count: int) -> list[int]:
    """`count` new primary keys of `table`, for rows then inserted with their ids: COPY cannot return ids, and
    reading them back by a marker column cost a query per table (~30 ms for 10,000 threads on PostgreSQL).
    PostgreSQL draws them from the table's sequence (other sessions may draw between them: they need not be
    consecutive). SQLite: only inside a transaction that has already written — it then holds the database's
    write lock, so no other writer can take the ids after the highest one (AUTOINCREMENT's `sqlite_sequence`)."""
    if count <= 0:
        return []
    if db().capabilities.dialect == "postgres":
        # The sequence looked up once: pg_get_serial_sequence per row took 10,000 ids from ~4 ms to ~30 ms.
        sequence = (await fetch("SELECT pg_get_serial_sequence(?, 'id')", [table]))[0][0]
        drawn = await fetch("SELECT array_agg(nextval(?::regclass)) FROM generate_series(1, ?)", [sequence, count])
        return list(drawn[0][0])
    (highest,) = (
        await fetch(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            f"coalesce((SELECT max(id) FROM {table}), 0))",
            [table],
        )
    )[0]
    return list(range(int(highest) + 1, int(highest) + 1 + count))


def _in_transaction() -> bool:
    return isinstance(db(), TransactionalDBClient)


async def _copy(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY … FROM STDIN (binary) on the transaction's own asyncpg connection, so the rows commit or roll back with
    the rest of the unit of work. About a quarter faster than INSERT … unnest (no arrays built and checked per value);
    the rest of an insert is the server's own per-row work (foreign-key checks, indexes).
    Only inside a transaction: outside one, the pool could hand COPY a connection of its own (autocommitted).
    COPY has no ON CONFLICT, and cannot return ids (callers read them back by a marker column, e.g. campaign_id).
    Its errors are raised as Tortoise's, like every other statement's."""
    async with db().acquire_connection() as connection:
        try:
            await connection.copy_records_to_table(table, records=rows, columns=columns)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(exc) from exc
        except (asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError) as exc:
            raise OperationalError(exc) from exc


async def execute(statement: str, values: list[Any]) -> None:
    await db().execute_query(sql(statement), values)


async def update_rows(table: str, columns: dict[str, str], rows: list[tuple[Any, ...]]) -> None:
    """Rows updated by primary key: each row is (the new values of `columns`…, id). PostgreSQL joins an
    `unnest` of arrays (one statement); SQLite runs an executemany (its joined UPDATEs were far slower)."""
    if not rows:
        return
    if db().capabilities.dialect == "postgres":
        names = [*columns, "id"]
        kinds = [*columns.values(), "int"]
        arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(kinds, start=1))
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        statement = f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) WHERE {table}.id = v.id"
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            await db().execute_query(statement, [list(column) for column in zip(*chunk, strict=True)])
        return
    sets = ", ".join(f"{name} = ?" for name in columns)
    await db().execute_many(f"UPDATE {table} SET {sets} WHERE id = ?", rows)  # type: ignore[arg-type]  # tuples do


async def fetch(statement: str, values: list[Any]) -> list[Sequence[Any]]:
    """Rows (they unpack like tuples) of what the columns hold: for reads of 10,000 rows, Tortoise's `values_list`
    converts every value in Python (datetimes parsed) — most of the time of reading them. Only for plain
    columns (ids, text, numbers)."""
    _, rows = await db().execute_query(sql(statement), values)
    # asyncpg's records and sqlite3's rows unpack like tuples: copying 10,000 into tuples cost 60 ms.
    return cast(list[Sequence[Any]], list(rows))


async def fetch_values(query: ValuesListQuery[Any]) -> list[Sequence[Any]]:
    """A `values_list` query's rows as `fetch` returns them: Tortoise writes the SQL (filters, joins, subqueries),
    the driver's values are kept as they come (enum columns as their text, booleans as SQLite's 0/1). On
    PostgreSQL, Tortoise's conversion of 10,000 rows took several times as long as the query itself."""
    statement = query.sql()  # also makes the query, so its parameters are ready (Tortoise's own _execute does so)
    _, values = query.query.get_parameterized_sql()
    _, rows = await db().execute_query(statement, list(values))
    return cast(list[Sequence[Any]], list(rows))
