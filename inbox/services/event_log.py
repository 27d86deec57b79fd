"""The event log: every published event gets its id here, and an API stream that reconnects with `Last-Event-ID`
is sent what it missed from here.

The id is the `event_log` row's, drawn from the database's own sequence (SQLite's AUTOINCREMENT never reuses an
id, PostgreSQL's BIGSERIAL): unique and increasing across every process that shares the database, with no
coordination of their own. Rows are kept at least `KEEP` (an hour), pruned by every process's hub now and then;
the newest row is always kept, so a reader can tell "nothing happened" from "what happened was pruned".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from inbox.events import Event, event_from_json
from inbox.models import EventLog
from inbox.services import bulk

KEEP = timedelta(hours=1)
# One replay reads at most this many rows at a time (a client away for an hour of a busy office).
PAGE = 500


async def record(event: Event) -> Event:
    """The event, logged, with its id."""
    row = await EventLog.create(at=datetime.now(UTC), body=event.to_json())
    return replace(event, seq=row.id)


async def record_all(events: list[Event]) -> list[Event]:
    """The events, logged by one INSERT, with their ids in order (one statement's ids rise with its rows)."""
    at = datetime.now(UTC)
    rows = ", ".join("(?, ?)" for _ in events)
    values: list[object] = [value for event in events for value in (at, event.to_json())]
    # execute_query_dict: asyncpg's execute_query answers an INSERT with its row count only, not RETURNING's rows.
    statement = bulk.sql(f"INSERT INTO event_log (at, body) VALUES {rows} RETURNING id")
    ids = sorted(int(row["id"]) for row in await bulk.db().execute_query_dict(statement, values))
    if len(ids) != len(events):
        raise RuntimeError(f"Logged {len(events)} events but got {len(ids)} ids back")
    return [replace(event, seq=seq) for event, seq in zip(events, ids, strict=True)]


@dataclass(frozen=True)
class Backlog:
    """What a reader who last saw `after` has to be sent: the logged events up to `upto` (the newest id when the
    reader subscribed), or, when some of them are no longer kept (or the id is not one we gave), `missed`."""

    after: int
    upto: int
    missed: bool


async def backlog(after: int) -> Backlog:
    """Read once the reader is subscribed: events up to the newest id now are replayed, later ones come live."""
    oldest, newest = await _end_id("id"), await _end_id("-id")
    if oldest is None or newest is None:  # nothing logged: only a reset database can have given an id
        return Backlog(after, after, missed=after > 0)
    # An id past the newest was not given by this database; one before the oldest kept has lost what followed
    # it (a gap in the sequence can make this say so needlessly: the client re-fetches, nothing is lost).
    missed = after > newest or after < oldest - 1
    return Backlog(after, newest, missed)


async def _end_id(order: str) -> int | None:
    row = await EventLog.all().order_by(order).only("id").first()
    return None if row is None else row.id


async def events_between(after: int, upto: int) -> AsyncIterator[Event]:
    """The logged events with after < id ≤ upto, oldest first, each with its id; read a page at a time."""
    while True:
        rows = await EventLog.filter(id__gt=after, id__lte=upto).order_by("id").limit(PAGE).values_list("id", "body")
        for row_id, body in rows:
            yield replace(event_from_json(body), seq=row_id)
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


async def prune(now: datetime | None = None) -> int:
    """Forget events older than KEEP, always keeping the newest; how many went."""
    cutoff = (now or datetime.now(UTC)) - KEEP
    newest = await _end_id("-id")
    if newest is None:
        return 0
    return await EventLog.filter(at__lt=cutoff, id__lt=newest).delete()
