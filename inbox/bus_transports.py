"""How the bus's texts travel: in memory (one process), through Redis pub/sub, or PostgreSQL LISTEN/NOTIFY.

A transport carries opaque strings; it never parses them (what is inside is `inbox.events`' business).
Each network transport listens on a connection of its own and reports ready only once the server has
confirmed the subscription, so nothing published after start-up is lost (encode/broadcaster 0.3.1 starts
listening before SUBSCRIBE completes). Every process hears its own publications back through the network:
one path for every event.

When the listening connection drops, the transport reconnects with capped, jittered backoff, and once it
listens again it calls `on_reconnect`: whatever was published meanwhile is gone, so the bus tells every open
tab to catch up. A publication that cannot reach the server is logged and dropped (publish answers False),
never raised to the caller, whose database work has already committed: queueing it would hold events in one
process's memory for a server that may be gone for minutes, while the catch-up re-reads the database, which
has everything. The bus then tells its own tabs to catch up at once, and every process's with its next
publication.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type information
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

OnText = Callable[[str], None]
OnReconnect = Callable[[], None]

CHANNEL = "inbox_events"
# A listener that hears nothing cannot tell a quiet channel from a dead connection (a dropped network
# sends no FIN): it asks the server after this long without a word.
HEALTH_SECONDS = 5.0


def redis_channel(url: str) -> str:
    """The Redis channel of this URL's database. Pub/sub channels are server-wide, whatever the database
    number: naming the number keeps two deployments on one Redis (redis://…/0 and redis://…/1) apart."""
    path = urlsplit(url).path.strip("/")
    return f"{CHANNEL}:{path or '0'}"


class Transport(Protocol):
    url: str

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def publish(self, text: str) -> bool:
        """Hands the text to the server (or, in memory, to this process); False when it could not (logged)."""
        ...

    async def publish_many(self, texts: list[str]) -> bool:
        """The texts in order, as `publish` each; False when any could not be handed over (logged)."""
        ...


class EventTooLarge(ValueError):
    """A text longer than the transport carries (PostgreSQL's NOTIFY takes under 8000 bytes)."""


class Backoff:
    """Capped exponential backoff with full jitter: many processes reconnecting at once spread out."""

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * 2**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def redacted(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class MemoryTransport:
    """One process: a publication is heard at once, by this process only."""

    def __init__(self, url: str, on_text: OnText, on_reconnect: OnReconnect) -> None:
        self.url = url
        self._on_text = on_text

    async def connect(self) -> None:
        """Nothing to connect in memory."""

    async def disconnect(self) -> None:
        """Nothing to close in memory."""

    async def publish(self, text: str) -> bool:
        self._on_text(text)
        return True

    async def publish_many(self, texts: list[str]) -> bool:
        for text in texts:
            self._on_text(text)
        return True


class ListeningTransport(ABC):
    """The listening half shared by the network transports: a task that listens until the connection
    drops, then reconnects with backoff and reports the reconnection."""

    kind = "bus"

    @abstractmethod
    async def publish(self, text: str) -> bool: ...

    async def publish_many(self, texts: list[str]) -> bool:
        """Each in turn, stopping at the first that cannot leave (the tabs then catch up on all of them); a
        transport that can hand them over at once does (Redis: a pipeline)."""
        for text in texts:
            if not await self.publish(text):
                return False
        return True

    def __init__(self, url: str, on_text: OnText, on_reconnect: OnReconnect) -> None:
        self.url = url
        self._on_text = on_text
        self._on_reconnect = on_reconnect
        self._listening: asyncio.Task[None] | None = None
        self.backoff = Backoff()
        self.reconnects = 0  # how many times the listener came back (tests and logs)
        self.losses = 0  # how many times it noticed its connection gone
        self.health_seconds = HEALTH_SECONDS
        self.listening = False  # subscribed and not known to be lost: /readyz asks (Bus.ready)

    async def connect(self) -> None:
        try:
            await self._listen_confirmed()  # a server that is down at start-up is an error the operator sees
        except BaseException:
            await self._close_listener()
            raise
        self.listening = True
        self._listening = asyncio.create_task(self._listen_forever(), name=f"{self.kind}-listener")

    async def disconnect(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with suppress(asyncio.CancelledError):
                await self._listening
        await self._close_listener()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection, whatever the library calls it
                self.losses += 1
                log.warning("The %s listener lost %s (%s); reconnecting", self.kind, redacted(self.url), exc)
            self.listening = False
            await self._close_listener()
            await self._reconnect()

    async def _reconnect(self) -> None:
        self.backoff.reset()
        while True:
            await asyncio.sleep(self.backoff.next_delay())
            try:
                await self._listen_confirmed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("The %s at %s is not back yet (%s)", self.kind, redacted(self.url), exc)
                await self._close_listener()
                continue
            self.reconnects += 1
            self.listening = True
            log.warning("The %s listener is back on %s; open tabs catch up", self.kind, redacted(self.url))
            self._on_reconnect()
            return

    @abstractmethod
    async def _listen_confirmed(self) -> None:
        """Opens the listening connection; returns once the server has confirmed the subscription."""

    @abstractmethod
    async def _listen(self) -> None:
        """Hands every text heard to on_text; returns or raises when the connection is gone."""

    @abstractmethod
    async def _close_listener(self) -> None:
        """Closes the listening connection, if open (never raises for one already gone)."""


class RedisTransport(ListeningTransport):
    """Redis pub/sub through redis-py's asyncio client: one connection listens, a pool publishes."""

    kind = "Redis bus"

    def __init__(self, url: str, on_text: OnText, on_reconnect: OnReconnect) -> None:
        super().__init__(url, on_text, on_reconnect)
        self.channel = redis_channel(url)
        # Publishing retries a little, so a connection left stale by a server restart is replaced at once
        # rather than losing the event; connect attempts are short, so a caller never waits long on a bus
        # that is down.
        self._publisher: Any = Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
        )
        self._pubsub: Any = None
        self._listener_client: Any = None

    async def _listen_confirmed(self) -> None:

        # No retries of its own: redis-py would reconnect and resubscribe silently, and the tabs would never
        # hear that they missed what was published in between. The reconnect loop above does it, and says so.
        self._listener_client = Redis.from_url(self.url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
        self._pubsub = self._listener_client.pubsub()
        await self._pubsub.subscribe(self.channel)
        # SUBSCRIBE only sends the command; the server's confirmation is the first message to read.
        while True:
            message = await self._pubsub.get_message(timeout=5)
            if message is None:
                raise ConnectionError("Redis did not confirm the subscription within 5 s")
            if message["type"] == "subscribe":
                return

    async def _listen(self) -> None:
        pinged = False
        while True:
            message = await self._pubsub.get_message(timeout=self.health_seconds)
            if message is None:
                # Quiet, or a dead connection that never said so (a dropped network sends no FIN): a PING
                # unanswered by the next quiet spell means dead.
                if pinged:
                    raise ConnectionError(f"no answer to PING within {self.health_seconds:g} s")
                await self._pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] == "message":
                self._on_text(message["data"].decode())
            elif message["type"] == "subscribe":
                # Subscribed again without our reconnect: events in between may be lost.
                self._on_reconnect()

    async def _close_listener(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client, self._listener_client = self._listener_client, None
        with suppress(Exception):  # a dead connection cannot be closed politely
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()

    async def disconnect(self) -> None:
        await super().disconnect()
        await self._publisher.aclose()

    async def publish(self, text: str) -> bool:
        try:
            await self._publisher.publish(self.channel, text)
            return True
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.error("Could not publish an event to %s (%s): dropped; tabs catch up", redacted(self.url), exc)
            return False

    async def publish_many(self, texts: list[str]) -> bool:
        """One round trip for a unit of work's events (a batch of inbound texts: two or three a text), in order."""
        if len(texts) == 1:
            return await self.publish(texts[0])
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for text in texts:
                    pipe.publish(self.channel, text)
                await pipe.execute()
            return True
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.error(
                "Could not publish %d events to %s (%s): dropped; tabs catch up", len(texts), redacted(self.url), exc
            )
            return False


# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
NOTIFY_LIMIT = 8000
LISTENER_NAME = "inbox-bus-listener"


class PostgresTransport(ListeningTransport):
    """PostgreSQL LISTEN/NOTIFY through asyncpg: a connection of its own listens, a small pool notifies."""

    kind = "PostgreSQL bus"

    def __init__(self, url: str, on_text: OnText, on_reconnect: OnReconnect) -> None:
        super().__init__(url, on_text, on_reconnect)
        self._listener: Any = None
        self._pool: Any = None
        self._lost: asyncio.Event = asyncio.Event()

    async def connect(self) -> None:
        # These connections run nothing but pg_notify, so there is no session state to reset: skipping the
        # pool's reset query on release saves a round trip per event (bench/bus.py).
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4, reset=_nothing_to_reset)
        await super().connect()

    async def _listen_confirmed(self) -> None:
        self._lost = asyncio.Event()
        # Named, so an operator sees it in pg_stat_activity (and a test can cut it).
        self._listener = await asyncpg.connect(self.url, timeout=5, server_settings={"application_name": LISTENER_NAME})
        self._listener.add_termination_listener(lambda _connection: self._lost.set())
        # add_listener returns once the server has run LISTEN.
        await self._listener.add_listener(CHANNEL, self._heard)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_text(payload)

    async def _listen(self) -> None:
        while not self._listener.is_closed():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self.health_seconds)
            if self._lost.is_set():
                raise ConnectionError("the listening connection was closed")
            await self._listener.execute("SELECT 1", timeout=self.health_seconds)
        raise ConnectionError("the listening connection was closed")

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            listener.terminate()  # no polite close: the connection may be dead, and close() would wait on it

    async def disconnect(self) -> None:
        await super().disconnect()
        if self._pool is not None:
            self._pool.terminate()

    async def publish(self, text: str) -> bool:
        size = len(text.encode())
        if size >= NOTIFY_LIMIT:
            # Events carry ids, so this is a programming error: say so loudly rather than lose it quietly.
            raise EventTooLarge(f"An event of {size} bytes cannot travel by NOTIFY (under {NOTIFY_LIMIT} bytes)")
        if self._pool is None:
            raise RuntimeError("The PostgreSQL bus is not connected: call connect() first")
        for attempt in (1, 2):  # the second on a fresh connection: a server restart leaves the pool's stale
            try:
                await self._pool.execute("SELECT pg_notify($1, $2)", CHANNEL, text)
                return True
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                if attempt == 2:
                    log.error("Could not publish an event to %s (%s): dropped; tabs catch up", redacted(self.url), exc)
        return False


async def _nothing_to_reset(_connection: Any) -> None:
    """A publishing connection runs only pg_notify: nothing to undo before its next use."""


def transport_for(url: str, on_text: OnText, on_reconnect: OnReconnect) -> Transport:
    """The transport INBOX_BROADCAST_URL names."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "memory":
        return MemoryTransport(url, on_text, on_reconnect)
    if scheme in ("redis", "rediss"):
        return RedisTransport(url, on_text, on_reconnect)
    if scheme in ("postgres", "postgresql"):
        return PostgresTransport(url, on_text, on_reconnect)
    raise ValueError(
        f"INBOX_BROADCAST_URL={redacted(url)!r} is not a bus this app knows: use memory:// (one process), "
        "redis://host:6379/0 or postgres://user@host/database."
    )


def is_network_bus(url: str) -> bool:
    return not url.startswith("memory://")
