"""The app under uvicorn, as browsers and Twilio reach it: event streams read the way a browser's
EventSource reads them, a stand-in for the TLS-terminating proxy in front of the app, and the hub's
fan-out of one event to many open tabs.

An endless SSE response hangs through ASGITransport, so streams are read from a real server: the `app`
fixture's app (its lifespan, database, bus and hub already running) served on a free loopback port.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Any

import httpx
import jinja2
import pytest
from starlette.applications import Starlette

from inbox.events import Event
from inbox.live import Delivery, Tab
from inbox.models import Message, Staff

from .config import PUBLIC_URL
from .events import WAIT_SECONDS
from .servers import serve_asgi
from .staff import post_sign_in

# ---------------------------------------------------------------- the server


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """The running app served by uvicorn; yields its base URL. When the test is done, every stream it
    opened is closed, and the server must have noticed and let go of each tab."""
    async with serve_asgi(app, lifespan="off") as url:
        yield url
        async with asyncio.timeout(WAIT_SECONDS):
            while app.state.hub.tabs:
                await asyncio.sleep(0.01)


# ---------------------------------------------------------------- reading a stream


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: str
    id: str = ""  # the event's own `id:` line ("": it had none)


class EventStream:
    """An open text/event-stream, read the way a browser's EventSource reads it."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.opened = ServerEvent("", "")

    async def next_event(self) -> ServerEvent:
        async with asyncio.timeout(WAIT_SECONDS):
            event = await self._read()
        assert event is not None, "the stream ended"
        return event

    async def read_until(self, *wanted: Callable[[ServerEvent], bool]) -> list[ServerEvent]:
        """Events up to the one that satisfies the last of `wanted` (in whatever order they come)."""
        remaining, seen = list(wanted), []
        while remaining:
            event = await self.next_event()
            seen.append(event)
            remaining = [test for test in remaining if not test(event)]
        return seen

    async def ends(self) -> bool:
        """True when the server ends the stream before sending another event."""
        async with asyncio.timeout(WAIT_SECONDS):
            return await self._read() is None

    async def _read(self) -> ServerEvent | None:
        name, data, event_id = "", [], ""
        async for line in self._lines:
            if not line:  # a blank line dispatches the event
                if data:
                    return ServerEvent(name or "message", "\n".join(data), event_id)
                name, event_id = "", ""
            elif not line.startswith(":"):  # lines starting with ":" are comments (keep-alive pings)
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
        return None

    async def aclose(self) -> None:
        await self._lines.aclose()


@asynccontextmanager
async def event_stream(
    http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    async with http.stream("GET", path, headers={"Accept": "text/event-stream", **(headers or {})}) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        try:
            stream.opened = await stream.next_event()
            assert stream.opened.event == "stream.open"
            yield stream
        finally:
            await stream.aclose()


def shows_bubble(message: Message) -> Callable[[ServerEvent], bool]:
    return lambda event: event.event == "update" and f'id="message-{message.id}"' in event.data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- people and Twilio, over HTTP


class TlsTerminatingProxy(httpx.AsyncBaseTransport):
    """Stands where the TLS-terminating proxy does: clients speak to PUBLIC_URL, the app hears plain http.

    So the Secure session cookie and the URL Twilio signs are what they are in production, while
    the bytes go over loopback to uvicorn.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.URL(upstream)
        self._transport = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(scheme=self.upstream.scheme, host=self.upstream.host, port=self.upstream.port)
        forwarded = httpx.Request(
            request.method, url, headers=request.headers, stream=request.stream, extensions=request.extensions
        )
        return await self._transport.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self._transport.aclose()


def browser_client(server: str) -> httpx.AsyncClient:
    """A client of the served app that speaks to PUBLIC_URL through the proxy; the caller closes it."""
    return httpx.AsyncClient(base_url=PUBLIC_URL, transport=TlsTerminatingProxy(server), timeout=WAIT_SECONDS)


@asynccontextmanager
async def browser(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_client(server) as http:
        yield http


@asynccontextmanager
async def signed_in_browser(server: str, staff: Staff) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(server) as http:
        response = await post_sign_in(http, staff.email)
        assert response.status_code == 303, response.text
        yield http


# ---------------------------------------------------------------- the hub's fan-out


def as_event(delivery: Delivery | None) -> ServerEvent:
    """What a tab's stream would send for this delivery."""
    assert delivery is not None, "the tab was closed"
    return ServerEvent(delivery.event, delivery.data)


def count_renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Top-level template renders by name from now on (includes render inside their parent, uncounted)."""
    counts: Counter[str] = Counter()
    original = jinja2.Template.render

    def counting_render(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        counts[self.name or "?"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting_render)
    return counts


@dataclass(frozen=True)
class FanOut:
    views: dict[int, str]  # staff id → the update each of their tabs received
    renders: Counter[str]  # the top-level template renders it took
    queries: int  # the database queries it took


async def fan_out(
    app: Starlette,
    event: Event,
    people: Sequence[Staff],
    tab_count: int,
    left_out: Staff,
    renders: Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> FanOut:
    """`event` published to `tab_count` open tabs shared in turn among `people`; what each reader's tabs
    received and what that cost. Every tab gets one update, the same for all of a reader's tabs, except
    `left_out`'s, which may not see it and get nothing."""
    hub, bus = app.state.hub, app.state.bus
    tabs = [Tab(staff_id=s.id, sees_everything=s.sees_everything) for s in islice(cycle(people), tab_count)]
    for tab in tabs:
        hub.attach(tab)
    renders.clear()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        await bus.publish(event)
        allowed = [t for t in tabs if t.staff_id != left_out.id]
        async with asyncio.timeout(WAIT_SECONDS):
            received = [(t.staff_id, as_event(await t.queue.get()).data) for t in allowed]
    queries = sum(1 for record in caplog.records if record.name == "tortoise.db_client")
    for tab in tabs:
        hub.detach(tab)
    assert all(t.queue.empty() for t in tabs)  # the left-out reader's tabs got nothing
    views = dict(received)
    assert all(data == views[staff_id] for staff_id, data in received)  # a reader's tabs agree
    return FanOut(views, Counter(renders), queries)
