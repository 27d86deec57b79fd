"""The event stream: one SSE connection per tab, fed by the process's LiveHub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.live import LiveHub, Shows, Tab
from inbox.models import Staff
from inbox.services import sessions
from inbox.session_middleware import session_record
from inbox.web import require_staff

PING_SECONDS = 15
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


def open_stream(request: Request, staff: Staff, kind: str) -> Response:
    """Subscribe first, then answer: nothing published after the headers can be missed. An API stream gets
    every event it may see, whatever its query."""
    hub: LiveHub = request.app.state.hub
    record = session_record(request) if kind == "html" else None
    session_id = record.key_hash if record is not None else None
    shows = shows_of(request.query_params) if kind == "html" else None
    tab = Tab(staff_id=staff.id, sees_everything=staff.sees_everything, kind=kind, session_id=session_id, shows=shows)  # type: ignore[arg-type]
    hub.attach(tab)
    # Detaching after the response also covers one that never starts its stream (HEAD).
    detach = BackgroundTask(_detach, hub, tab)
    return EventSourceResponse(
        _stream(hub, tab), ping=PING_SECONDS, headers={"Cache-Control": "no-store"}, background=detach
    )


async def _detach(hub: LiveHub, tab: Tab) -> None:
    hub.detach(tab)


async def _stream(hub: LiveHub, tab: Tab) -> AsyncIterator[ServerSentEvent]:
    try:
        yield ServerSentEvent(event="stream.open", data=json.dumps({"staff_id": tab.staff_id}))
        while True:
            delivery = await tab.queue.get()
            if delivery is None:
                return
            yield ServerSentEvent(event=delivery.event, data=delivery.data)
    finally:
        hub.detach(tab)


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
