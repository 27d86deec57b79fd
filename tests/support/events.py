"""The app's event bus, as a test listens to it."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from inbox.events import Event, Subscription

# How long a test waits for something to happen (an event, a stream's next message) before it fails:
# a safety net against a hang, never a claim about speed.
WAIT_SECONDS = 10

E = TypeVar("E", bound=Event)


async def next_event(subscription: Subscription, kind: type[E]) -> E:
    """The next event of this kind (others are passed over)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            event = await subscription.get()
            if isinstance(event, kind):
                return event


async def published(subscription: Subscription) -> list[Event]:
    """Everything published so far (the bus hands events over synchronously)."""
    events: list[Event] = []
    while True:
        try:
            async with asyncio.timeout(0.05):
                events.append(await subscription.get())
        except TimeoutError:
            return events
