"""Events after commit, by a mechanism: a unit of work is one transaction and the events it causes.

    async with unit_of_work(bus) as uow:
        ...writes...
        uow.publish(SomethingHappened(...))

Events are collected while the transaction runs and handed to the bus once it has committed, in
the order they were published; if it rolls back they are dropped, so no tab ever hears of a row
that does not exist. A unit of work opened inside another joins it (no second transaction, and
its events wait for the outer commit), and a helper deep inside one publishes with
`current_unit().publish(...)` instead of handing lists of events back up through its callers (Zulip's
`send_event_on_commit`, Datasette's pending events).

Just before the commit, the events that outgoing webhooks subscribe to become delivery rows in the same
transaction (inbox.services.webhook_recording): the one place every event passes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

from inbox.events import Bus, Event
from inbox.services.webhook_recording import record_deliveries


class UnitOfWork:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._pending: list[Event] = []

    def publish(self, event: Event) -> None:
        """Announce `event` once the transaction commits (never, if it rolls back)."""
        self._pending.append(event)

    def mark(self) -> int:
        """Where the events published so far end: `withdraw_since` takes back those published after it."""
        return len(self._pending)

    def withdraw_since(self, mark: int) -> list[Event]:
        """The events published after `mark`, taken back (to be published again in the order the caller needs:
        a batch of texts announces each text's events together, as text after text would have)."""
        withdrawn, self._pending = self._pending[mark:], self._pending[:mark]
        return withdrawn

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        await self.bus.publish_all(pending)


_current: ContextVar[UnitOfWork | None] = ContextVar("inbox_unit_of_work", default=None)


@asynccontextmanager
async def unit_of_work(bus: Bus) -> AsyncIterator[UnitOfWork]:
    outer = _current.get()
    if outer is not None:
        yield outer  # joined: its writes and events belong to the outer unit
        return
    if isinstance(connections.get("default"), TransactionalDBClient):
        # Its commit would only release a savepoint: the events would go out before the real commit.
        raise RuntimeError("A unit of work cannot start inside a bare transaction; open the unit of work outside it.")
    uow = UnitOfWork(bus)
    token = _current.set(uow)
    try:
        async with in_transaction():
            yield uow
            # Outgoing webhooks are durable rows written in this very transaction: none for a rollback, none lost.
            await record_deliveries(uow._pending)
    finally:
        _current.reset(token)
    await uow._flush()  # only reached once the transaction has committed


def current_unit() -> UnitOfWork:
    """The unit of work the caller runs in. Publishing outside one is a bug: the event would either
    go out before its rows are committed or never."""
    uow = _current.get()
    if uow is None:
        raise RuntimeError("No unit of work is open: wrap the writes in `async with unit_of_work(bus)`.")
    return uow
