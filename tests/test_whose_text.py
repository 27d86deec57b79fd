"""Whose text it is (issue 10, item 6): a conversation row names who wrote its latest text ("You" only to
the writer, their first name to everyone else, live too), says when that text failed; a scheduled text waits
apart, at the thread's end, by when it goes, and joins the history when it goes."""

from __future__ import annotations

import re
from collections import Counter
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette

from inbox.events import MessageSent, MessageStatusChanged
from inbox.models import Message, MessageStatus
from inbox.worker import send_due
from tests.support.events import published
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import EventStream, ServerEvent, event_stream, fan_out, signed_in_browser
from tests.support.pages import deferred_list_url
from tests.support.records import MARIA
from tests.support.staff import csrf_of
from tests.support.webhooks import text_in

NEW_YORK = ZoneInfo("America/New_York")


def tomorrow_at_10() -> datetime:
    """Within Maria's day (Atlanta), away from quiet hours."""
    day = datetime.now(NEW_YORK).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=NEW_YORK)


def row_of(html: str, conversation_id: int) -> str:
    match = re.search(rf'<li id="conversation-{conversation_id}".*?</li>', html, re.S)
    assert match, f"no row for conversation {conversation_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(0)).split())


def history_and_strip(html: str, conversation_id: int) -> tuple[str, str]:
    """The thread's history list and its scheduled strip, as HTML."""
    history = re.search(rf'<ol id="thread-{conversation_id}".*?</ol>', html, re.S)
    strip = re.search(rf'<ol id="scheduled-list-{conversation_id}".*?</ol>', html, re.S)
    assert history and strip
    return history.group(0), strip.group(0)


async def test_the_row_names_the_writer_to_others_and_says_you_to_the_writer(
    anonymous, make_staff, make_case, signed_in
) -> None:
    alice = await make_staff("advocate", name="Alice Chen")
    sam = await make_staff("supervisor", name="Sam Okafor")
    await make_case(phone=MARIA, assignee=alice)
    conversation_id = (await text_in(anonymous, MARIA, "Which courtroom?")).conversation_id
    alice_browser, sam_browser = await signed_in(alice), await signed_in(sam)
    assert "Which courtroom?" in row_of((await sam_browser.get("/")).text, conversation_id)

    await alice_browser.get(f"/conversations/{conversation_id}")
    sent = await alice_browser.post(f"/conversations/{conversation_id}/messages", {"body": "Typed with the keyboard"})
    assert sent.status_code == 200, sent.text

    assert "You: Typed with the keyboard" in row_of((await alice_browser.get("/")).text, conversation_id)
    sams = row_of((await sam_browser.get("/")).text, conversation_id)
    assert "Alice: Typed with the keyboard" in sams and "You:" not in sams


async def test_a_row_whose_last_text_failed_says_so(anonymous, make_staff, make_case, signed_in) -> None:
    alice = await make_staff("advocate", name="Alice Chen")
    await make_case(phone=MARIA, assignee=alice)
    conversation_id = (await text_in(anonymous, MARIA, "Hello")).conversation_id
    browser = await signed_in(alice)
    await browser.get(f"/conversations/{conversation_id}")
    await browser.post(f"/conversations/{conversation_id}/messages", {"body": "Bring your lease"})
    assert "not sent" not in row_of((await browser.get("/")).text, conversation_id)
    # Twilio's final word on it (the status callback path is tested in test_webhooks): failed.
    await Message.filter(body="Bring your lease").update(status=MessageStatus.UNDELIVERED)
    assert "Last text not sent" in row_of((await browser.get("/")).text, conversation_id)
    await text_in(anonymous, MARIA, "Got it?")  # a newer text: the row speaks of that one
    assert "not sent" not in row_of((await browser.get("/")).text, conversation_id)


async def test_a_scheduled_text_waits_apart_and_joins_the_history_when_it_goes(
    app: Starlette, anonymous, make_staff, make_case, signed_in, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    alice = await make_staff("advocate", name="Alice Chen")
    made = await make_case(phone=MARIA, assignee=alice)
    conversation_id = (await text_in(anonymous, MARIA, "When is my hearing?")).conversation_id
    when = tomorrow_at_10()
    for body, later in (("Goes second", timedelta(hours=2)), ("Goes first", timedelta(0))):
        response = await supervisor.post(
            "/api/v1/messages", json={"case_id": made.case_id, "body": body, "send_at": (when + later).isoformat()}
        )
        assert response.status_code == 201, response.text
    await text_in(anonymous, MARIA, "Thanks")  # arrives after they were written
    browser = await signed_in(alice)

    page = (await browser.get(f"/conversations/{conversation_id}")).text
    history, strip = history_and_strip(page, conversation_id)
    assert "Goes first" not in history and "Goes second" not in history
    assert strip.index("Goes first") < strip.index("Goes second") and "Goes " in strip
    assert page.index(f'id="thread-{conversation_id}"') < page.index(f'id="scheduled-{conversation_id}"')
    # The row speaks of the last text that came or went, not of one waiting.
    assert "Thanks" in row_of((await browser.get(deferred_list_url(page))).text, conversation_id)

    async with app.state.bus.subscribe() as subscription:
        assert await send_due(app.state.outbox, now=when + timedelta(minutes=1)) == 1
        await fake_twilio.callbacks_done()
        statuses = [e for e in await published(subscription) if isinstance(e, MessageStatusChanged)]
    # It leaves the schedule once (the strip's move happens once), whatever Twilio says after.
    assert [e.status for e in statuses if e.from_schedule] == ["queued"] and len(statuses) > 1
    history, strip = history_and_strip((await browser.get(f"/conversations/{conversation_id}")).text, conversation_id)
    assert "Goes first" not in strip and "Goes second" in strip
    assert history.rindex("Thanks") < history.index("Goes first")  # at its sending time, after "Thanks"
    refreshed = (await browser.get(f"/conversations/{conversation_id}/scheduled")).text
    assert 'id="scheduled-list-' in refreshed and "Goes second" in refreshed and "Goes first" not in refreshed


async def test_live_rows_and_scheduled_texts(
    app: Starlette, server, twilio, make_staff, make_case, supervisor: httpx.AsyncClient
) -> None:
    alice = await make_staff("advocate", name="Alice Chen")
    sam = await make_staff("supervisor", name="Sam Okafor")
    made = await make_case(phone=MARIA, assignee=alice)
    conversation_id = (await text_in(twilio, MARIA, "Which courtroom?")).conversation_id

    async with AsyncExitStack() as stack:
        alice_http = await stack.enter_async_context(signed_in_browser(server, alice))
        sam_http = await stack.enter_async_context(signed_in_browser(server, sam))
        tabs: dict[str, EventStream] = {
            "alice": await stack.enter_async_context(event_stream(alice_http, "/events")),
            "sam": await stack.enter_async_context(event_stream(sam_http, "/events")),
        }

        page = await alice_http.get(f"/conversations/{conversation_id}")
        sent = await alice_http.post(
            f"/conversations/{conversation_id}/messages",
            data={"body": "Courtroom 4B", "csrf_token": csrf_of(page.text)},
            headers={"HX-Request": "true"},
        )
        assert sent.status_code == 200, sent.text

        def row_says(words: str) -> object:
            return lambda e: f'<li id="conversation-{conversation_id}"' in e.data and words in row_text(e)

        def row_text(event: ServerEvent) -> str:
            return row_of(event.data, conversation_id)

        await tabs["alice"].read_until(row_says("You: Courtroom 4B"))
        seen = await tabs["sam"].read_until(row_says("Alice: Courtroom 4B"))
        assert all("You:" not in row_text(e) for e in seen if f'<li id="conversation-{conversation_id}"' in e.data)

        when = tomorrow_at_10()
        response = await supervisor.post(
            "/api/v1/messages", json={"case_id": made.case_id, "body": "Later on", "send_at": when.isoformat()}
        )
        assert response.status_code == 201, response.text
        scheduled_id = response.json()["id"]
        seen = await tabs["alice"].read_until(
            lambda e: f"beforeend:#scheduled-list-{conversation_id}" in e.data and "Later on" in e.data
        )
        assert f"beforeend:#thread-{conversation_id}" not in seen[-1].data

        assert await send_due(app.state.outbox, now=when + timedelta(minutes=1)) == 1
        for tab in tabs.values():
            seen = await tab.read_until(
                lambda e: f"delete:#scheduled-list-{conversation_id} > #message-{scheduled_id}" in e.data
            )
            moved = seen[-1].data
            assert f"beforeend:#thread-{conversation_id}" in moved and "Later on" in moved


async def test_the_row_has_two_views_at_most_however_many_tabs_are_open(
    app: Starlette, anonymous, make_staff, make_case, signed_in, renders, caplog, fake_twilio: FakeTwilio
) -> None:
    alice = await make_staff("advocate", name="Alice Chen")
    supervisors = [await make_staff("supervisor", name=f"Sam {n}") for n in range(2)]
    bystander = await make_staff("advocate", name="Ben Ho")  # not on the case: sees nothing
    await make_case(phone=MARIA, assignee=alice)
    conversation_id = (await text_in(anonymous, MARIA, "Hello")).conversation_id
    browser = await signed_in(alice)
    await browser.get(f"/conversations/{conversation_id}")
    await browser.post(f"/conversations/{conversation_id}/messages", {"body": "Courtroom 4B"})
    await fake_twilio.callbacks_done()  # Twilio's status callbacks are in, not running during the count
    sent = await Message.get(body="Courtroom 4B")
    event = MessageSent(message_id=sent.id, conversation_id=conversation_id)
    people = [alice, *supervisors, bystander]

    async def publish_to(tab_count: int) -> tuple[Counter[str], int]:
        fanned = await fan_out(app, event, people, tab_count, bystander, renders, caplog)
        assert "You: Courtroom 4B" in row_of(fanned.views[alice.id], conversation_id)
        for supervisor in supervisors:
            assert "Alice: Courtroom 4B" in row_of(fanned.views[supervisor.id], conversation_id)
        return fanned.renders, fanned.queries

    few, many = await publish_to(4), await publish_to(40)
    assert few[0]["oob/conversation_row.html"] == many[0]["oob/conversation_row.html"] == 2  # the writer's, and others'
    assert few[1] == many[1] > 0
