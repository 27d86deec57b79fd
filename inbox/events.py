"""Events: small past-tense records carrying ids (never HTML), and the bus that fans them out.

The bus is chosen by URL like encode's `broadcaster` (`memory://` in one process). Events travel
as JSON even in memory, so a network backend (redis://, postgres://) can be dropped in later
without changing publishers or subscribers. Each subscriber has its own bounded queue: a slow
reader loses its own events (and is told so), never anyone else's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"

    def to_json(self) -> str:
        return json.dumps({"type": self.name, **asdict(self)})


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
    data = json.loads(text)
    cls = EVENT_TYPES[data.pop("type")]
    return cls(**data)


class Lagged(Event):
    """Told to a subscriber whose queue overflowed: it missed events and must catch up."""

    name: ClassVar[str] = "bus.lagged"


LAGGED = Lagged()


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


class Bus:
    """Publish events; every subscriber gets each one. `memory://` serves one process."""

    def __init__(self, url: str = "memory://", queue_size: int = 1000) -> None:
        if not url.startswith("memory://"):
            raise ValueError(f"INBOX_BROADCAST_URL={url!r} is not supported yet: only memory:// (one process).")
        self.url = url
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()

    async def connect(self) -> None:
        """Nothing to connect in memory; network backends open their connections here."""

    async def disconnect(self) -> None:
        self._subscriptions.clear()

    async def publish(self, event: Event) -> None:
        # Round-trip through JSON even in memory so every event is proven to cross a network bus.
        received = event_from_json(event.to_json())
        for subscription in list(self._subscriptions):
            subscription.offer(received)

    async def publish_all(self, events: list[Event]) -> None:
        for event in events:
            await self.publish(event)

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
    """The event as the JSON API shows it."""
    return {"type": event.name, **asdict(event)}
