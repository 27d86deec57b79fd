"""Events: small past-tense records carrying ids (never HTML), and the bus that fans them out.

The bus is chosen by URL like encode's `broadcaster`: `memory://` in one process, `redis://` or
`postgres://` across many (inbox.bus_transports). Events travel as JSON even in memory, so every
event is proven to cross a network bus. Each subscriber has its own bounded queue: a slow
reader loses its own events (and is told so), never anyone else's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from inbox import metrics
from inbox.bus_transports import transport_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    # The event's id, given when it is published (the event log's row): increasing, unique across processes. It
    # travels with the event on the bus and becomes the `id:` line of API streams; None before publishing.
    seq: int | None = field(default=None, kw_only=True, compare=False)

    def to_json(self) -> str:
        return json.dumps({"type": self.name, **values_of(self)})


def values_of(event: Event) -> dict[str, Any]:
    """An event's fields by name. Events are flat records (ids, words, lists of ids): no need for `asdict`'s deep
    copy, which was a tenth of a batch of inbound texts' processing (two events a text)."""
    return {item.name: getattr(event, item.name) for item in fields(event)}


@dataclass(frozen=True)
class MessageReceived(Event):
    """A client's text arrived."""

    name: ClassVar[str] = "message.received"
    message_id: int
    conversation_id: int
    provider_sid: str | None = None
    case_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MessageSent(Event):
    """Staff sent (or scheduled) a text."""

    name: ClassVar[str] = "message.sent"
    message_id: int
    conversation_id: int
    provider_sid: str | None = None
    case_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MessageStatusChanged(Event):
    """A text moved along queued → sent → delivered, or failed."""

    name: ClassVar[str] = "message.status"
    message_id: int
    conversation_id: int
    status: str
    provider_sid: str | None = None
    error_code: int | None = None
    case_ids: list[int] = field(default_factory=list)
    campaign_id: int | None = None  # one recipient's text of a bulk message: its campaign's progress moved
    # The text was waiting for its time and has just left the schedule: handed to sending, or canceled.
    from_schedule: bool = False


@dataclass(frozen=True)
class CampaignProgressed(Event):
    """A campaign was started, paused, resumed, cancelled or finished (its texts' own steps are
    `message.status` events naming the campaign)."""

    name: ClassVar[str] = "campaign.progress"
    campaign_id: int


@dataclass(frozen=True)
class ConversationRead(Event):
    """One staff member read a conversation up to its latest message."""

    name: ClassVar[str] = "conversation.read"
    conversation_id: int
    staff_id: int


@dataclass(frozen=True)
class ConsentChanged(Event):
    """A number's okay-to-text state changed."""

    name: ClassVar[str] = "consent.changed"
    phone: str
    okay_to_text: bool
    opted_out: bool
    conversation_ids: list[int] = field(default_factory=list)
    message_id: int | None = None
    consent_event_ids: list[int] = field(default_factory=list)  # the ledger rows of this change


@dataclass(frozen=True)
class AlertRaised(Event):
    """A client's text on a case is waiting for its assignees: a new alert, or one more text counted on the
    open alert of its conversation and case (the same alert_id; message_id is the latest text)."""

    name: ClassVar[str] = "alert.raised"
    alert_id: int
    case_id: int
    message_id: int
    count: int = 1  # the texts now waiting on the alert


@dataclass(frozen=True)
class AlertDismissed(Event):
    """Someone dismissed an alert (or answered the client): it is gone for everyone."""

    name: ClassVar[str] = "alert.dismissed"
    alert_id: int
    case_id: int
    message_id: int


@dataclass(frozen=True)
class MessageLinksChanged(Event):
    """A text was filed on, or taken off, a case by hand."""

    name: ClassVar[str] = "message.links"
    message_id: int
    conversation_id: int
    case_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MediaChanged(Event):
    """An attachment was stored, refused, or failed to download."""

    name: ClassVar[str] = "message.media"
    message_id: int
    conversation_id: int
    media_id: int
    status: str


@dataclass(frozen=True)
class CaseEventChanged(Event):
    """A case's hearing, appointment, meeting or deadline was added, updated or cancelled, or the client
    confirmed it by text (`change`: added, updated, cancelled, confirmed)."""

    name: ClassVar[str] = "case_event.changed"
    event_id: int
    case_id: int
    change: str


@dataclass(frozen=True)
class SessionEnded(Event):
    """A staff member signed out: streams opened by that session must stop."""

    name: ClassVar[str] = "session.ended"
    session_id: str


@dataclass(frozen=True)
class SessionsEnded(Event):
    """Some of one staff member's sessions ended at once (sign out everywhere, a password change,
    deactivation, expiry): the streams they opened must stop; with every_stream, their API streams too."""

    name: ClassVar[str] = "sessions.ended"
    staff_id: int
    session_ids: list[str] = field(default_factory=list)
    every_stream: bool = False


@dataclass(frozen=True)
class SurveyAnswered(Event):
    """A client's reply was counted against a survey (a campaign that asks a question)."""

    name: ClassVar[str] = "survey.answered"
    campaign_id: int
    recipient_id: int
    message_id: int


@dataclass(frozen=True)
class SettingsChanged(Event):
    """An administrator changed what every process keeps a copy of: "channels" or "organisation"."""

    name: ClassVar[str] = "settings.changed"
    what: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        MessageReceived,
        MessageSent,
        MessageStatusChanged,
        CampaignProgressed,
        ConversationRead,
        ConsentChanged,
        AlertRaised,
        AlertDismissed,
        MessageLinksChanged,
        MediaChanged,
        CaseEventChanged,
        SessionEnded,
        SessionsEnded,
        SurveyAnswered,
        SettingsChanged,
    )
}


def event_from_json(text: str) -> Event:
    return event_from_wire(text)[0]


# The bus's envelope carries when the event was published (wall clock), so /metrics' delivery latency is timed from
# publication in whichever process published it, not from when this one heard it.
PUBLISHED_AT = "published_at"


def wire_text(event: Event, published_at: float) -> str:
    """The event as the bus carries it: its JSON and when it was published."""
    return json.dumps({"type": event.name, PUBLISHED_AT: published_at, **values_of(event)})


def event_from_wire(text: str) -> tuple[Event, float | None]:
    """The event and when it was published (None: not said, as in the event log's bodies)."""
    data = json.loads(text)
    cls = EVENT_TYPES[data.pop("type")]
    published_at = data.pop(PUBLISHED_AT, None)
    return cls(**data), float(published_at) if isinstance(published_at, int | float) else None


class Lagged(Event):
    """Told to a subscriber whose queue overflowed: it missed events and must catch up."""

    name: ClassVar[str] = "bus.lagged"


LAGGED = Lagged()


class BusReconnected(Event):
    """Told to every subscriber when a network bus is back after a drop: what was published meanwhile
    never arrived, so whoever shows anything must catch up."""

    name: ClassVar[str] = "bus.reconnected"


RECONNECTED = BusReconnected()
RECONNECTED_TEXT = RECONNECTED.to_json()  # sent by a process whose earlier publication was dropped


class Subscription:
    """One subscriber's bounded queue of events."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop_all_for_lagged()

    def _drop_all_for_lagged(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(LAGGED)

    async def get(self) -> Event:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


# Gives a published event its id (the app's is services.event_log.record): the event, with `seq` set.
Journal = Callable[[Event], Awaitable[Event]]
# The same for several events at once, in order (services.event_log.record_all: one INSERT for a unit of work's).
JournalAll = Callable[[list[Event]], Awaitable[list[Event]]]


class Bus:
    """Publish events; every subscriber gets each one. The URL picks the transport (inbox.bus_transports):
    `memory://` serves one process, `redis://` and `postgres://` many.

    Given a journal, each event is logged before it is sent, and carries its id (`seq`) to every subscriber."""

    def __init__(
        self,
        url: str = "memory://",
        queue_size: int = 1000,
        journal: Journal | None = None,
        journal_all: JournalAll | None = None,
    ) -> None:
        self.url = url
        self.queue_size = queue_size
        self.journal = journal
        self.journal_all = journal_all
        self._subscriptions: set[Subscription] = set()
        self._dropped = False  # a publication could not be handed to the bus's server
        self.transport = transport_for(url, self._heard, self._reconnected)

    async def connect(self) -> None:
        """Returns once the transport listens (a network bus: the server confirmed the subscription)."""
        await self.transport.connect()

    async def disconnect(self) -> None:
        await self.transport.disconnect()
        self._subscriptions.clear()

    async def ready(self) -> bool:
        """Whether events published here reach every subscriber (/readyz asks). Memory always does; a
        network transport (redis://, postgres://) is ready while its listener is subscribed and its last
        publication reached the server (False while it reconnects)."""
        return bool(getattr(self.transport, "listening", True)) and not self._dropped

    async def publish(self, event: Event) -> None:
        published_at = time.time()  # the delivery latency (/metrics) counts the event log's INSERT too
        if self.journal is not None:
            try:
                event = await self.journal(event)
            except Exception:  # the database briefly away: live tabs still get it, only without an id to resume from
                log.exception("Could not log %s; it is sent without an id", event.name)
        await self._send(event, published_at)

    async def publish_all(self, events: list[Event]) -> None:
        """Several events, in order (a unit of work's): logged together when the journal can (one INSERT)."""
        if len(events) < 2 or (self.journal is not None and self.journal_all is None):
            for event in events:
                await self.publish(event)
            return
        published_at = time.time()
        if self.journal_all is not None:
            try:
                events = await self.journal_all(events)
            except Exception:  # as in `publish`: sent without ids
                log.exception("Could not log %d events; they are sent without ids", len(events))
        await self._send_all(events, published_at)

    async def _send(self, event: Event, published_at: float) -> None:
        await self._send_all([event], published_at)

    async def _send_all(self, events: list[Event], published_at: float) -> None:
        # JSON even in memory, so every event is proven to cross a network bus; a network bus brings this
        # process's own events back too (one path for all). Handed over together: one round trip to Redis.
        if self._dropped:  # an earlier event never left this process: first, everyone catches up
            self._dropped = not await self.transport.publish(RECONNECTED_TEXT)
        if not await self.transport.publish_many([wire_text(event, published_at) for event in events]):
            # Logged by the transport; the caller's work stands. This process's tabs catch up now, the
            # others once the bus carries anything again (or their own listener reconnects).
            self._dropped = True
            self._offer(RECONNECTED)

    def _heard(self, text: str) -> None:
        if text == RECONNECTED_TEXT:
            self._offer(RECONNECTED)
            return
        try:
            received, published_at = event_from_wire(text)
        except (ValueError, KeyError, TypeError):  # another version's event, or garbage on the channel
            log.exception("Could not read an event from the bus; the tabs catch up")
            received = RECONNECTED
        else:
            # Timed from its publication (the publisher's clock: processes on other machines need NTP), or from
            # when this process heard it if the publisher did not say.
            metrics.published(received, published_at)
        self._offer(received)

    def _reconnected(self) -> None:
        self._offer(RECONNECTED)

    def _offer(self, event: Event) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription(self.queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)


def describe(event: Event) -> dict[str, Any]:
    """The event as the JSON API shows it (its id is the stream's `id:` line)."""
    shown = values_of(event)
    del shown["seq"]
    return {"type": event.name, **shown}
