"""Live updates: the real app under uvicorn, real event streams, real signed webhooks.

The streams are read from the `app` fixture's app served by uvicorn (the `server` fixture; see
tests/support/live.py). The hub's fan-out rules (distinct views, bounded queues) are tested on the hub itself.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

from markupsafe import escape

from inbox.events import MessageReceived
from inbox.live import TAB_QUEUE_SIZE, Delivery, Tab
from inbox.models import Direction, Message
from inbox.services import messaging
from inbox.services.staff import create_api_token
from inbox.settings import Settings
from tests.support import database
from tests.support.apps import running
from tests.support.events import WAIT_SECONDS
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import (
    EventStream,
    ServerEvent,
    as_event,
    bearer,
    browser,
    event_stream,
    fan_out,
    shows_bubble,
    signed_in_browser,
)
from tests.support.staff import csrf_of
from tests.support.webhooks import text_in

CLIENT_PHONE = "+14045387319"  # the permitted advocate's client
OTHER_PHONE = "+17705550123"  # another advocate's client


# ---------------------------------------------------------------- pauses


async def test_a_running_app_keeps_its_start_up_objects_out_of_full_collections(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    """A full collection walks every tracked object: ~190,000 after start-up, 140-200 ms with 10,000 open tabs
    (bench/RESULTS.md), a pause in every tab's updates. Frozen while the app runs, walked again once it stops."""
    async with running(settings, fake_twilio):
        assert gc.get_freeze_count() > 50_000
    assert gc.get_freeze_count() == 0


# ---------------------------------------------------------------- the HTML stream


async def test_inbound_text_reaches_the_permitted_staff_and_no_one_else(server, twilio, make_staff, make_case) -> None:
    permitted = await make_staff("advocate")
    other = await make_staff("advocate")
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE, assignee=permitted, name="Maria Lopez")
    await make_case(phone=OTHER_PHONE, assignee=other, name="Sam Okafor")

    async with AsyncExitStack() as stack:
        streams: list[EventStream] = []
        for staff in (permitted, other, supervisor):
            http = await stack.enter_async_context(signed_in_browser(server, staff))
            stream = await stack.enter_async_context(event_stream(http, "/events"))
            assert json.loads(stream.opened.data) == {"staff_id": staff.id}
            streams.append(stream)
        permitted_tab, other_tab, supervisor_tab = streams

        body = "Is my hearing still on Monday? I can't find the letter."
        message = await text_in(twilio, CLIENT_PHONE, body)

        updates = {}
        for name, tab in (("advocate", permitted_tab), ("supervisor", supervisor_tab)):
            update = await tab.next_event()
            assert update.event == "update"
            assert f'id="message-{message.id}"' in update.data
            assert str(escape(body)) in update.data
            assert f'id="conversation-{message.conversation_id}"' in update.data
            assert 'aria-label="1 unread"' in update.data
            assert "Maria Lopez" in update.data
            updates[name] = update.data
        # Each reader gets their own row: only the assigned advocate's goes into "mine".
        assert "filter-mine" in updates["advocate"] and "filter-mine" not in updates["supervisor"]

        # The other advocate's stream is open and filtered: the next thing it hears is its own client.
        marker = await text_in(twilio, OTHER_PHONE, "Running late, sorry")
        update = await other_tab.next_event()
        assert f'id="message-{marker.id}"' in update.data
        assert f'id="message-{message.id}"' not in update.data and "hearing" not in update.data
        # The supervisor hears the alerts the texts raised too; the marker's bubble comes after them.
        await supervisor_tab.read_until(shows_bubble(marker))


async def test_the_senders_own_tab_gets_its_bubble_and_its_statuses_from_the_stream(
    server, twilio, make_staff, make_case, fake_twilio
) -> None:
    advocate = await make_staff("advocate", name="Ana Ruiz")
    case = await make_case(phone=CLIENT_PHONE, assignee=advocate)
    async with signed_in_browser(server, advocate) as http, event_stream(http, "/events") as tab:
        inbound = await text_in(twilio, CLIENT_PHONE, "Do I need to bring my lease?")
        assert shows_bubble(inbound)(await tab.next_event())
        conversation_id = inbound.conversation_id
        page = await http.get(f"/conversations/{conversation_id}")
        assert page.status_code == 200

        reply_body = "Yes: bring the lease & any letters <from the landlord>."
        response = await http.post(
            f"/conversations/{conversation_id}/messages",
            data={"body": reply_body, "case_id": str(case.case_id)},
            headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)},
        )
        assert response.status_code == 200, response.text
        assert 'id="composer"' in response.text
        assert "bubble" not in response.text and "landlord" not in response.text  # the composer, emptied

        reply = await Message.get(conversation_id=conversation_id, direction=Direction.OUTBOUND)
        status_span = re.compile(
            rf'<span id="message-{reply.id}-status" class="status status-(\w+)" hx-swap-oob="true">'
        )

        def shows_delivered(event: ServerEvent) -> bool:
            match = status_span.search(event.data)
            return match is not None and match.group(1) == "delivered" and "</span> delivered" in event.data

        # Twilio's callbacks may beat its answer to the database, so the bubble and the statuses may
        # come in either order; both must come.
        seen = await tab.read_until(shows_bubble(reply), shows_delivered)
        bubble = next(event.data for event in seen if shows_bubble(reply)(event))
        assert str(escape(reply_body)) in bubble and "sent by Ana Ruiz" in bubble
        assert f'case <a href="/cases/{case.case_id}">{case.number}</a>' in bubble
        # The bubble comes once (when the text is stored); the outbox and Twilio change only its status.
        marker = await text_in(twilio, CLIENT_PHONE, "Thanks")
        seen += await tab.read_until(shows_bubble(marker))
        assert len([event for event in seen if shows_bubble(reply)(event)]) == 1

    await fake_twilio.callbacks_done()
    assert [(c.params["MessageStatus"], c.status_code) for c in fake_twilio.callbacks] == [
        ("sent", 200),
        ("delivered", 200),
    ]


async def test_text_in_the_stream_is_escaped(server, twilio, make_staff, make_case) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE, name='<img src=x onerror="alert(1)">')
    body = '<script>alert("hi")</script> & <b>bold</b>'
    async with signed_in_browser(server, supervisor) as http, event_stream(http, "/events") as tab:
        message = await text_in(twilio, CLIENT_PHONE, body)
        update = await tab.next_event()
    assert shows_bubble(message)(update)
    assert str(escape(body)) in update.data
    assert "&lt;img src=x onerror=" in update.data
    assert "<script" not in update.data and "<b>" not in update.data and "<img" not in update.data


async def test_a_stream_needs_a_signed_in_session(app, server, make_staff) -> None:
    advocate = await make_staff("advocate")
    async with browser(server) as http:
        async with asyncio.timeout(WAIT_SECONDS):  # a stream would never finish: fail, don't hang
            plain = await http.get("/events")
            htmx = await http.get("/events", headers={"HX-Request": "true"})
    assert plain.status_code == 303 and plain.headers["location"] == "/login?next=/events"
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"

    async with signed_in_browser(server, advocate) as http:
        page = await http.get("/")
        assert (await http.post("/logout", data={"csrf_token": csrf_of(page.text)})).status_code == 303
        async with asyncio.timeout(WAIT_SECONDS):
            signed_out = await http.get("/events")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login?next=/events"

    for response in (plain, htmx, signed_out):
        assert not response.headers.get("content-type", "").startswith("text/event-stream")
    assert not app.state.hub.tabs


async def test_a_closed_tab_ends_its_stream(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    async with signed_in_browser(server, supervisor) as http, event_stream(http, "/events") as stream:
        (tab,) = [t for t in app.state.hub.tabs if t.staff_id == supervisor.id]
        tab.close()  # what the hub does to a tab that fell behind: the browser reconnects and catches up
        assert await stream.ends()
    assert tab not in app.state.hub.tabs


async def test_signing_out_ends_the_streams_of_that_sign_in_only(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    async with (
        signed_in_browser(server, supervisor) as leaving,
        signed_in_browser(server, supervisor) as staying,
        event_stream(leaving, "/events") as ended,
        event_stream(staying, "/events"),
    ):
        page = await leaving.get("/")
        assert (await leaving.post("/logout", data={"csrf_token": csrf_of(page.text)})).status_code == 303
        assert (await ended.next_event()).event == "signed-out"  # for the sign-in's other tabs
        assert await ended.ends()
        assert len([t for t in app.state.hub.tabs if t.staff_id == supervisor.id]) == 1


async def test_a_head_request_gets_headers_and_leaves_no_tab_behind(app, server, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    async with signed_in_browser(server, supervisor) as http:
        async with asyncio.timeout(WAIT_SECONDS):
            response = await http.head("/events")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert not app.state.hub.tabs  # no stream will ever read it: nothing may be queued for it


# ---------------------------------------------------------------- the JSON stream


async def test_json_stream_sends_the_tokens_staff_only_what_they_may_see(server, twilio, make_staff, make_case) -> None:
    permitted = await make_staff("advocate")
    other = await make_staff("advocate")
    await make_case(phone=CLIENT_PHONE, assignee=permitted)
    await make_case(phone=OTHER_PHONE, assignee=other)

    async with browser(server) as http:
        async with asyncio.timeout(WAIT_SECONDS):
            anonymous = await http.get("/api/v1/events")
            forged = await http.get("/api/v1/events", headers=bearer("not-a-token"))
        for refused in (anonymous, forged):
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"] == "Bearer" and "error" in refused.json()

        async with (
            event_stream(http, "/api/v1/events", bearer(await create_api_token(permitted.email))) as permitted_tab,
            event_stream(http, "/api/v1/events", bearer(await create_api_token(other.email))) as other_tab,
        ):
            assert json.loads(permitted_tab.opened.data) == {"staff_id": permitted.id}
            message = await text_in(twilio, CLIENT_PHONE, "Can you call me after 5?")
            event = await permitted_tab.next_event()
            assert event.event == "message.received"
            data = json.loads(event.data)
            assert data["type"] == "message.received"
            assert (data["message_id"], data["conversation_id"], data["provider_sid"]) == (
                message.id,
                message.conversation_id,
                message.provider_sid,
            )
            assert "<" not in event.data  # ids, never HTML

            marker = await text_in(twilio, OTHER_PHONE, "Got it, thanks")
            event = await other_tab.next_event()
            assert event.event == "message.received" and json.loads(event.data)["message_id"] == marker.id


# ---------------------------------------------------------------- the hub's fan-out


async def test_each_distinct_view_is_rendered_once_however_many_tabs_are_open(
    app, anonymous, make_staff, make_case, renders, caplog
) -> None:
    hub, bus = app.state.hub, app.state.bus
    assigned = await make_staff("advocate")
    unassigned = await make_staff("advocate")
    supervisors = [await make_staff("supervisor") for _ in range(3)]
    await make_case(phone=CLIENT_PHONE, assignee=assigned)

    # Set up through the real actions; a probe tab shows when the hub has dealt with each event.
    reader = supervisors[2]
    probe = Tab(staff_id=reader.id, sees_everything=True)
    hub.attach(probe)
    message = await text_in(anonymous, CLIENT_PHONE, "Is the office open Saturday?")
    async with asyncio.timeout(WAIT_SECONDS):
        assert shows_bubble(message)(as_event(await probe.queue.get()))
        assert 'id="alert-badge"' in as_event(await probe.queue.get()).data  # the alert the text raised
        await messaging.mark_read(bus, reader, await message.conversation)
        assert 'id="conversation-' in (await probe.queue.get()).data
    hub.detach(probe)

    people = [assigned, unassigned, *supervisors]
    event = MessageReceived(
        message_id=message.id, conversation_id=message.conversation_id, provider_sid=message.provider_sid
    )

    async def publish_to(tab_count: int) -> tuple[Counter[str], int]:
        # The unassigned advocate's tabs get nothing; a reader's tabs agree.
        fanned = await fan_out(app, event, people, tab_count, unassigned, renders, caplog)
        by_staff = fanned.views
        assert 'aria-label="1 unread"' in by_staff[assigned.id] and "filter-mine" in by_staff[assigned.id]
        assert (
            'aria-label="1 unread"' in by_staff[supervisors[0].id] and "filter-mine" not in by_staff[supervisors[0].id]
        )
        assert "unread" not in by_staff[reader.id]
        return fanned.renders, fanned.queries

    few, many = await publish_to(5), await publish_to(50)
    # One bubble; one row per distinct (unread, mine) view: (1, mine), (1, not mine), (0, not mine).
    assert few[0] == many[0] == Counter({"oob/message_new.html": 1, "oob/conversation_row.html": 3})
    assert few[1] == many[1] > 0


async def test_a_tab_that_falls_behind_is_closed_and_the_others_keep_receiving(app, anonymous, make_staff) -> None:
    hub = app.state.hub
    supervisor = await make_staff("supervisor")
    slow = Tab(staff_id=supervisor.id, sees_everything=True)
    while slow.push(Delivery("update", "backlog")):
        pass
    assert slow.queue.qsize() == TAB_QUEUE_SIZE
    lively = Tab(staff_id=supervisor.id, sees_everything=True)
    hub.attach(slow)
    hub.attach(lively)
    try:
        first = await text_in(anonymous, CLIENT_PHONE, "Hello?")
        async with asyncio.timeout(WAIT_SECONDS):
            assert shows_bubble(first)(as_event(await lively.queue.get()))
        assert slow not in hub.tabs and lively in hub.tabs
        assert slow.queue.get_nowait() is None and slow.queue.empty()  # the backlog dropped; the stream ends

        second = await text_in(anonymous, CLIENT_PHONE, "Hello again")
        async with asyncio.timeout(WAIT_SECONDS):
            assert shows_bubble(second)(as_event(await lively.queue.get()))
        assert slow.queue.empty()
    finally:
        hub.detach(lively)


async def test_a_shared_number_shows_each_reader_only_the_client_names_they_may_see(
    app, anonymous, make_staff, make_case
) -> None:
    hub = app.state.hub
    advocate, supervisor = await make_staff("advocate"), await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE, assignee=advocate, name="Maria Lopez")
    await make_case(phone=CLIENT_PHONE, name="Hidden Housemate")
    mine = Tab(staff_id=advocate.id, sees_everything=False)
    boss = Tab(staff_id=supervisor.id, sees_everything=True)
    hub.attach(mine)
    hub.attach(boss)
    try:
        await text_in(anonymous, CLIENT_PHONE, "Shared phone here")
        async with asyncio.timeout(WAIT_SECONDS):
            advocate_view, supervisor_view = as_event(await mine.queue.get()), as_event(await boss.queue.get())
        assert "Maria Lopez" in advocate_view.data and "Hidden Housemate" not in advocate_view.data
        assert "Maria Lopez" in supervisor_view.data and "Hidden Housemate" in supervisor_view.data
    finally:
        hub.detach(mine)
        hub.detach(boss)


# ---------------------------------------------------------------- an update that cannot be delivered


async def test_an_update_the_hub_cannot_deliver_makes_the_tabs_catch_up(
    app, server, twilio, make_staff, make_case
) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=CLIENT_PHONE)
    token = await create_api_token(supervisor.email)
    async with (
        signed_in_browser(server, supervisor) as http,
        event_stream(http, "/events") as page,
        browser(server) as integrator,
        event_stream(integrator, "/api/v1/events", bearer(token)) as api,
    ):
        message = await text_in(twilio, CLIENT_PHONE, "Is my hearing still on?")
        await page.read_until(shows_bubble(message), lambda e: 'id="alert-badge"' in e.data)
        await api.read_until(lambda e: e.event == "alert.raised")  # the hub has dealt with everything so far

        async with database.connection_broken():
            # The same text announced again while the database cannot be read: the hub cannot load it.
            await app.state.bus.publish(MessageReceived(message_id=message.id, conversation_id=message.conversation_id))
            refresh = await page.next_event()
            missed = await api.next_event()
        assert refresh.event == "refresh" and "<" not in refresh.data  # no content, just "re-fetch"
        assert missed.event == "stream.missed" and json.loads(missed.data) == {"type": "stream.missed"}

        # With the database back, updates flow as before.
        later = await text_in(twilio, CLIENT_PHONE, "Hello?")
        await page.read_until(shows_bubble(later))
        await api.read_until(lambda e: e.event == "message.received" and json.loads(e.data)["message_id"] == later.id)


def test_the_page_re_fetches_its_panes_when_told_to() -> None:
    """The "refresh" event reaches static/app.js, which catches up as it does after a reconnect."""
    root = Path(__file__).resolve().parent.parent
    assert 'hx-trigger="sse:refresh"' in (root / "templates" / "base.html").read_text()
    assert 'addEventListener("sse:refresh", refreshPanes)' in (root / "static" / "app.js").read_text()
