"""The event stream: one SSE connection per tab, fed by the process's LiveHub."""

from __future__ import annotations

import asyncio
import json

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from inbox.live import MISSED, Delivery, LiveHub, Shows, Tab
from inbox.models import Staff
from inbox.services import event_log, sessions
from inbox.services.errors import ServiceError
from inbox.session_middleware import session_record
from inbox.web import require_staff

# Stored or passed on by nothing in between: a proxy that buffers (nginx's X-Accel-Buffering) would hold the events.
HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
RAW_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in HEADERS.items()),
]
# A page names a few things it shows; more than this of one kind is not a page (the rest are ignored).
MOST_SHOWN = 20


def shows_of(query: QueryParams) -> Shows | None:
    """What the page says it shows (base.html's sse-connect: `page=1` and each page's block); None when it
    says nothing (a bare /events): then it gets everything it may see. Hints for filtering, never permission."""
    if "page" not in query:
        return None

    def ids(name: str) -> frozenset[int]:
        return frozenset(int(v) for v in query.getlist(name)[:MOST_SHOWN] if v.isdigit() and len(v) < 19)

    return Shows(
        threads=ids("thread"),
        cases=ids("case"),
        clients=ids("client"),
        campaigns=ids("campaign"),
        conversation_list="list" in query,
        queue="queue" in query,
    )


LAST_EVENT_ID_REFUSED = (
    "Last-Event-ID must be the id of an event this stream sent (a whole number); leave it out to start from now."
)


def last_event_id(header: str | None) -> int | None:
    """An API stream's `Last-Event-ID` header, read (pages' streams ignore theirs: they re-fetch their panes)."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ServiceError(LAST_EVENT_ID_REFUSED)
    return int(value)


def open_stream(request: Request, staff: Staff, kind: str, last_event_id: int | None = None) -> Response:
    """Subscribe first, then answer: nothing published after the headers can be missed. An API stream gets
    every event it may see, whatever its query; given the last event id it saw, what it missed first."""
    hub: LiveHub = request.app.state.hub
    record = session_record(request) if kind == "html" else None
    session_id = record.key_hash if record is not None else None
    shows = shows_of(request.query_params) if kind == "html" else None
    tab = Tab(staff_id=staff.id, sees_everything=staff.sees_everything, kind=kind, session_id=session_id, shows=shows)  # type: ignore[arg-type]
    hub.attach(tab)
    return EventStreamResponse(hub, tab, last_event_id)


# Where StreamHandoff leaves a list in the request's scope for the stream to hand itself over in.
HANDOFF = "inbox.stream_handoff"


class StreamHandoff:
    """Outermost of our middleware (pure ASGI): an event stream's headers are answered deep in the stack, through
    every middleware (session, security headers), and then its body is written from here, once the stack has
    unwound — so the frames and state of the middleware and routing layers are not kept for as long as the
    stream stays open (about 9 KB per open stream, measured with tracemalloc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handed_over: list[EventStreamResponse] = []
        scope[HANDOFF] = handed_over
        await self.app(scope, receive, send)
        for stream in handed_over:
            await stream.write(receive, send)


class EventStreamResponse(Response):
    """One tab's `text/event-stream`, written by the request's own task from the tab's queue, with one small task
    that waits for the client to leave. (sse-starlette's response runs a task group of three or four tasks per
    stream, a ping timer among them; here one heartbeat in the hub wakes every stream, and each delivery is
    encoded once for all the tabs it goes to.)"""

    media_type = "text/event-stream"

    def __init__(self, hub: LiveHub, tab: Tab, last_event_id: int | None = None) -> None:
        self.hub, self.tab, self.last_event_id = hub, tab, last_event_id
        self.status_code = 200
        self.background = None
        self.raw_headers = RAW_HEADERS  # shared by every stream (middleware adds to the message's own copy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = False
        try:
            headers = list(self.raw_headers)
            await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            streaming = True
        finally:
            if not streaming:  # HEAD, or a client gone before the headers: no stream will ever read the tab
                self.hub.detach(self.tab)
        handoff = scope.get(HANDOFF)
        if handoff is not None:
            handoff.append(self)  # written by StreamHandoff, once the stack has unwound
        else:
            await self.write(receive, send)

    async def write(self, receive: Receive, send: Send) -> None:
        """The stream's body, until it ends or the client leaves."""
        try:
            watcher = asyncio.create_task(self._until_disconnected(receive), name="event-stream-disconnect")
            try:
                await self._write(send)
            finally:
                watcher.cancel()
        finally:
            self.hub.detach(self.tab)

    async def _write(self, send: Send) -> None:
        opened = Delivery("stream.open", json.dumps({"staff_id": self.tab.staff_id}))
        await send({"type": "http.response.body", "body": opened.frame, "more_body": True})
        replayed_upto = 0
        if self.last_event_id is not None:
            replayed_upto = await self._replay(send, self.last_event_id)
        while (item := await self.tab.queue.next_frame()) is not None:
            if isinstance(item, Delivery) and item.seq is not None and item.seq <= replayed_upto:
                continue  # published while the backlog was read: sent with it already (or not this reader's)
            frame = item if isinstance(item, bytes) else item.frame
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _replay(self, send: Send, after: int) -> int:
        """What the reader missed since `after`, in order (the tab is already attached: later events queue up
        behind); the last id covered."""
        backlog = await event_log.backlog(after)
        if backlog.missed:
            # With the newest id, so the client's next reconnect asks from here and is not told this again.
            missed = Delivery(MISSED.event, MISSED.data, backlog.upto)
            await send({"type": "http.response.body", "body": missed.frame, "more_body": True})
            return backlog.upto
        async for delivery in self.hub.replay(self.tab, event_log.events_between(after, backlog.upto)):
            await send({"type": "http.response.body", "body": delivery.frame, "more_body": True})
        return backlog.upto

    async def _until_disconnected(self, receive: Receive) -> None:
        """A closed connection ends the stream at once, not at the next write (uvicorn drops writes to a gone
        client silently)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.hub.detach(self.tab)
        self.tab.close()


async def staff_events(request: Request) -> Response:
    staff = await require_staff(request)
    response = open_stream(request, staff, "html")
    # Ended between reading the cookie and attaching the tab? Then its end event came too early for
    # this tab: end it now rather than stream to a session that is gone.
    record = session_record(request)
    if record is not None and not await sessions.still_stored(record):
        for tab in [t for t in request.app.state.hub.tabs if t.session_id == record.key_hash]:
            tab.sign_out()
    return response


routes = [Route("/events", staff_events)]
