"""Case events on a live case page (issue 9): a C that confirms a hearing, and any change to a case's events,
reach the open case pages of those who may see the case — rendered once, without anyone's CSRF token — and
no one else's; the case page's "Send now" on a pending reminder hands it to Twilio exactly once; the event form's
"Ask the client to confirm" and staff attending; the confirmation request in the client's language.

Streams are read from the app served by uvicorn; texts come in through the signed webhook; reminders go through
the fake Twilio. The app's clock is driven, never slept on."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from inbox.events import CaseEventChanged
from inbox.live import Tab
from inbox.models import CaseEvent, Client, EventReminder, Message, MessageStatus, QuickEntry
from inbox.services.staff import create_api_token
from inbox.worker import send_due
from tests.support.events import WAIT_SECONDS
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import ServerEvent, as_event, bearer, event_stream, fan_out, shows_bubble, signed_in_browser
from tests.support.outbox import no_quiet_hours
from tests.support.pages import row_ids, words
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff, csrf_of
from tests.support.webhooks import text_in

OTHER_PHONE = "+17705550123"  # another advocate's client
REPLY_C = "Reply C to confirm."


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def hearing_with_a_sent_reminder(app: Starlette, api: httpx.AsyncClient, case_id: int) -> dict[str, Any]:
    """A hearing five hours ahead whose two-hour reminder, asking for a C, has been sent; the app's clock then
    stands between the reminder and the hearing."""
    await no_quiet_hours()
    starts = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    body = {
        "kind": "hearing",
        "title": "Eviction hearing",
        "starts_at": z(starts),
        "reminders": [{"minutes_before": 120, "ask_confirmation": True}],
    }
    response = await api.post(f"/api/v1/cases/{case_id}/events", json=body)
    assert response.status_code == 201, response.text
    assert await send_due(app.state.outbox, now=starts - timedelta(hours=2)) == 1
    between = starts - timedelta(hours=1)
    app.state.clock = lambda: between
    event: dict[str, Any] = response.json()
    return event


def events_pane(case_id: int) -> str:
    return f'id="case-{case_id}-events"'


def shows_events_of(case_id: int, *wanted: str) -> Any:
    """An update carrying the case's events list, with all of `wanted` in what it says."""

    def test(event: ServerEvent) -> bool:
        return event.event == "update" and events_pane(case_id) in event.data and all(w in event.data for w in wanted)

    return test


# ---------------------------------------------------------------- the stream


async def test_a_c_shows_the_hearing_confirmed_live_on_the_case_page_of_those_who_may_see_it(
    app: Starlette, server: str, twilio: httpx.AsyncClient, make_staff: MakeStaff, make_case: MakeCase, api_client: Any
) -> None:
    advocate = await make_staff("advocate", name="Ana Ruiz")
    outsider = await make_staff("advocate", name="Otto Outsider")
    supervisor = await make_staff("supervisor")
    case = await make_case(assignee=advocate)
    await make_case(phone=OTHER_PHONE, assignee=outsider, name="Sam Okafor")
    event = await hearing_with_a_sent_reminder(app, await api_client(supervisor), case.case_id)

    async with AsyncExitStack() as stack:
        pages = {}
        for staff in (advocate, outsider, supervisor):
            http = await stack.enter_async_context(signed_in_browser(server, staff))
            pages[staff.id] = (http, await stack.enter_async_context(event_stream(http, "/events")))
        http = pages[advocate.id][0]
        page = await http.get(f"/cases/{case.case_id}")
        assert events_pane(case.case_id) in page.text and "confirmed by text" not in words(page.text)
        advocates_token = csrf_of(page.text)
        api_tabs = {
            staff.id: await stack.enter_async_context(
                event_stream(http, "/api/v1/events", bearer(await create_api_token(staff.email)))
            )
            for staff in (advocate, outsider)
        }

        reply = await text_in(twilio, MARIA, "C")

        assert (await CaseEvent.get(id=event["id"])).confirmed_at is not None
        confirmed = shows_events_of(case.case_id, "confirmed by text, ", 'hx-swap-oob="true"', "Eviction hearing")
        updates = {}
        for staff in (advocate, supervisor):
            seen = await pages[staff.id][1].read_until(shows_bubble(reply), confirmed)
            updates[staff.id] = next(e.data for e in seen if confirmed(e))
        assert updates[advocate.id] == updates[supervisor.id]  # one view, shared
        # Shared by every reader's tab, it carries no one's CSRF token (the page fills its own in).
        assert advocates_token not in updates[advocate.id]
        assert 'name="csrf_token" value=""' in updates[advocate.id]

        def confirmed_json(e: ServerEvent) -> bool:
            return e.event == "case_event.changed" and json.loads(e.data) == {
                "type": "case_event.changed",
                "event_id": event["id"],
                "case_id": case.case_id,
                "change": "confirmed",
            }

        await api_tabs[advocate.id].read_until(confirmed_json)

        # The outsider may not see Maria's case: the next thing their page and API stream hear is their own client.
        marker = await text_in(twilio, OTHER_PHONE, "Running late, sorry")
        first = await pages[outsider.id][1].next_event()
        assert shows_bubble(marker)(first) and events_pane(case.case_id) not in first.data
        first_json = await api_tabs[outsider.id].next_event()
        assert first_json.event == "message.received" and json.loads(first_json.data)["message_id"] == marker.id


async def test_adding_and_cancelling_an_event_reaches_the_case_page_and_the_pane_can_be_re_fetched(
    app: Starlette, server: str, make_staff: MakeStaff, make_case: MakeCase, api_client: Any
) -> None:
    advocate = await make_staff("advocate", name="Ana Ruiz")
    case = await make_case(assignee=advocate)
    api = await api_client(await make_staff("supervisor"))
    starts = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    async with signed_in_browser(server, advocate) as http, event_stream(http, "/events") as tab:
        body = {"kind": "meeting", "title": "Meeting <about> the lease", "starts_at": z(starts)}
        added = (await api.post(f"/api/v1/cases/{case.case_id}/events", json=body)).json()
        seen = await tab.read_until(shows_events_of(case.case_id, "Meeting &lt;about&gt; the lease"))
        assert "Reminder pending" in words(seen[-1].data)  # the meeting's default reminder, on the queue
        # After a reconnect the page re-fetches the pane by itself (data-refresh-url), with its own CSRF token.
        pane = await http.get(f"/cases/{case.case_id}/events")
        assert pane.status_code == 200 and events_pane(case.case_id) in pane.text and "hx-swap-oob" not in pane.text
        assert f'data-refresh-url="/cases/{case.case_id}/events"' in pane.text and csrf_of(pane.text)

        assert (await api.delete(f"/api/v1/events/{added['id']}")).status_code in (200, 204)
        await tab.read_until(shows_events_of(case.case_id, "cancelled", "Reminder canceled"))

    outsider = await make_staff("advocate")
    async with signed_in_browser(server, outsider) as http:
        assert (await http.get(f"/cases/{case.case_id}/events")).status_code == 404


async def test_the_events_list_is_rendered_once_however_many_tabs_see_it(
    app: Starlette, make_staff: MakeStaff, make_case: MakeCase, api_client: Any, renders: Any, caplog: Any
) -> None:
    hub = app.state.hub
    advocate = await make_staff("advocate")
    outsider = await make_staff("advocate")
    supervisors = [await make_staff("supervisor") for _ in range(2)]
    case = await make_case(assignee=advocate)
    await make_case(phone=OTHER_PHONE, assignee=outsider)
    probe = Tab(staff_id=supervisors[0].id, sees_everything=True)
    hub.attach(probe)
    starts = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    body = {"kind": "hearing", "title": "Eviction hearing", "starts_at": z(starts), "attendee_emails": [advocate.email]}
    added = (await (await api_client(supervisors[1])).post(f"/api/v1/cases/{case.case_id}/events", json=body)).json()
    async with asyncio.timeout(WAIT_SECONDS):  # the hub is done with what adding it published
        while not shows_events_of(case.case_id)(as_event(await probe.queue.get())):
            pass
    hub.detach(probe)

    event = CaseEventChanged(event_id=added["id"], case_id=case.case_id, change="updated")
    few = await fan_out(app, event, [advocate, outsider, *supervisors], 4, outsider, renders, caplog)
    many = await fan_out(app, event, [advocate, outsider, *supervisors], 40, outsider, renders, caplog)
    assert few.renders == many.renders == {"oob/case_events.html": 1}
    assert few.queries == many.queries > 0
    assert "Eviction hearing" in few.views[advocate.id] and few.views[advocate.id] == few.views[supervisors[0].id]


# ---------------------------------------------------------------- the case page


async def test_send_now_hands_a_pending_reminder_to_twilio_exactly_once(
    app: Starlette, signed_in: Any, make_staff: MakeStaff, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    browser = await signed_in(await make_staff("advocate", name="Alice Advocate"))
    case = await make_case(assignee=browser.staff)
    day = (datetime.now(UTC) + timedelta(days=20)).date()
    await browser.get(f"/cases/{case.case_id}/events/new")
    form = {
        "kind": "hearing",
        "title": "Eviction hearing",
        "starts_at": f"{day.isoformat()}T10:30",
        "time_zone": "America/New_York",
        "place": "Room 4B",
        "reminders": "1d, 2h",
        "ask_confirmation": "1",
    }
    assert (await browser.post(f"/cases/{case.case_id}/events", form)).status_code == 303
    page = await browser.get(f"/cases/{case.case_id}")
    event_id = row_ids(page.text, "event")[0]
    first, second = await EventReminder.filter(event_id=event_id).order_by("id")
    action = f"/cases/{case.case_id}/events/{event_id}/reminders/{first.id}/send"
    assert f'action="{action}"' in page.text and words(page.text).count("Send now") == 2

    sent = await browser.post(action)

    assert sent.status_code == 303 and sent.headers["location"] == f"/cases/{case.case_id}#event-{event_id}"
    await fake_twilio.callbacks_done()
    assert fake_twilio.count_to(MARIA) == 1
    assert fake_twilio.bodies_to(MARIA)[0].endswith(" Room 4B. " + REPLY_C)  # the reminder's own words, a sentence
    message = await Message.get(id=first.message_id)
    assert message.provider_sid is not None and message.send_at is None  # sent by hand, not scheduled
    page = await browser.get(f"/cases/{case.case_id}")
    assert "Reminder sent" in words(page.text) and words(page.text).count("Send now") == 1

    again = await browser.post(action)
    assert again.status_code == 409 and "no longer waiting" in words(again.text)
    # The worker's turn: the other one, at its own time (8:30 a.m. New York, inside the client's texting hours).
    due = (await Message.get(id=second.message_id)).send_at
    assert due is not None
    await send_due(app.state.outbox, now=due + timedelta(minutes=1))
    assert fake_twilio.count_to(MARIA) == 2
    assert (await Message.get(id=second.message_id)).status != MessageStatus.SCHEDULED

    cancelled = await browser.post(f"/cases/{case.case_id}/events/{event_id}/cancel")
    assert cancelled.status_code == 200
    other = await signed_in(await make_staff("advocate"))
    await other.get("/")
    refused = await other.post(action)
    assert refused.status_code == 404  # not their case


async def test_the_form_asks_for_a_c_and_names_staff_attending_and_keeps_them_on_error(
    signed_in: Any, make_staff: MakeStaff, make_case: MakeCase
) -> None:
    browser = await signed_in(await make_staff("advocate", name="Alice Advocate"))
    colleague = await make_staff("advocate", name="Bob Colleague")
    case = await make_case(assignee=browser.staff)
    day = (datetime.now(UTC) + timedelta(days=20)).date()
    new = await browser.get(f"/cases/{case.case_id}/events/new")
    assert 'name="ask_confirmation"' in new.text and "Ask the client to confirm (Reply C)" in words(new.text)
    assert f'value="{colleague.email}"' in new.text and "Bob Colleague" in words(new.text)
    form = {
        "kind": "hearing",
        "title": "Eviction hearing",
        "starts_at": f"{day.isoformat()}T10:30",
        "time_zone": "America/New_York",
        "reminders": "1d@09:00, later",
        "ask_confirmation": "1",
        "attendees": [browser.staff.email, colleague.email],
    }
    refused = await browser.post(f"/cases/{case.case_id}/events", form)
    assert refused.status_code == 422 and "is not a lead time" in words(refused.text)
    assert re.search(r'name="ask_confirmation" value="1" checked', refused.text)
    assert len(re.findall(r'name="attendees" value="[^"]+" checked', refused.text)) == 2
    assert 'value="1d@09:00, later"' in refused.text

    added = await browser.post(f"/cases/{case.case_id}/events", {**form, "reminders": "1d@09:00, 2h"})
    assert added.status_code == 303, added.text
    event = await CaseEvent.get(case_id=case.case_id).prefetch_related("reminders__message", "attendees__staff")
    assert {a.staff.email for a in event.attendees} == {browser.staff.email, colleague.email}
    assert all(r.ask_confirmation for r in event.reminders)
    assert all(r.message and r.message.body.endswith(" " + REPLY_C) for r in event.reminders)
    page = await browser.get(f"/cases/{case.case_id}")
    assert "Attending: Alice Advocate, Bob Colleague" in words(page.text)

    # Unticking it re-makes the reminders not yet sent without the request; the lead times stay.
    asked = [r.message_id for r in event.reminders]
    edit = await browser.get(f"/cases/{case.case_id}/events/{event.id}/edit")
    assert re.search(r'name="ask_confirmation" value="1" checked', edit.text)
    saved = await browser.post(
        f"/cases/{case.case_id}/events/{event.id}",
        {k: v for k, v in form.items() if k != "ask_confirmation"} | {"reminders": "1d@09:00, 2h"},
    )
    assert saved.status_code == 303, saved.text
    rows = await EventReminder.filter(event_id=event.id).prefetch_related("message").order_by("id")
    live = [r for r in rows if r.message and r.message.status == MessageStatus.SCHEDULED]
    assert [(r.minutes_before, r.at_local_time, r.ask_confirmation) for r in live] == [
        (24 * 60, "09:00", False),
        (120, None, False),
    ]
    assert all(r.message and REPLY_C not in r.message.body for r in live)
    assert {m.status for m in await Message.filter(id__in=asked)} == {MessageStatus.CANCELED}


async def test_the_confirmation_request_is_in_the_clients_language(supervisor: Any, make_case: MakeCase) -> None:
    case = await make_case()
    await Client.filter(id=case.client_id).update(preferred_language="es-MX")
    await QuickEntry.create(name="Event reminder", language="es", body="Audiencia: {event_title}.")
    starts = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    body = {
        "kind": "hearing",
        "title": "Desalojo",
        "starts_at": z(starts),
        "reminders": [{"minutes_before": 120, "ask_confirmation": True}],
    }
    first = (await supervisor.post(f"/api/v1/cases/{case.case_id}/events", json=body)).json()
    assert (await Message.get(id=first["reminders"][0]["message_id"])).body == (
        "Audiencia: Desalojo. Responda C para confirmar."
    )

    # The organisation's own words win, in the client's language.
    await QuickEntry.create(name="Confirmation request", language="es", body="Conteste C para confirmar.")
    await QuickEntry.create(name="Confirmation request", language=None, body="Text C to confirm.")
    second = (await supervisor.post(f"/api/v1/cases/{case.case_id}/events", json=body)).json()
    assert (await Message.get(id=second["reminders"][0]["message_id"])).body == (
        "Audiencia: Desalojo. Conteste C para confirmar."
    )
    english = await make_case(phone=OTHER_PHONE, name="Sam Okafor")
    third = (await supervisor.post(f"/api/v1/cases/{english.case_id}/events", json=body)).json()
    assert (await Message.get(id=third["reminders"][0]["message_id"])).body.endswith(". Text C to confirm.")


async def test_admins_choose_which_kinds_ask_for_a_c_by_default(
    signed_in: Any, make_staff: MakeStaff, make_case: MakeCase, supervisor: Any
) -> None:
    admin = await signed_in(await make_staff("admin", name="Ada Admin"))
    page = await admin.get("/admin/reminders")
    assert 'name="hearing_ask"' in page.text and not re.search(r'name="hearing_ask" value="1" checked', page.text)
    fields = {"hearing": "1d@09:00", "hearing_ask": "1", "appointment": "2h", "meeting": "", "deadline": ""}
    assert (await admin.post("/admin/reminders", fields)).status_code == 303
    page = await admin.get("/admin/reminders")
    assert re.search(r'name="hearing_ask" value="1" checked', page.text)
    assert not re.search(r'name="appointment_ask" value="1" checked', page.text)

    case = await make_case()
    starts = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    for kind, asks in (("hearing", True), ("appointment", False)):
        body = {"kind": kind, "title": "Eviction hearing", "starts_at": z(starts)}
        made = (await supervisor.post(f"/api/v1/cases/{case.case_id}/events", json=body)).json()
        assert [r["ask_confirmation"] for r in made["reminders"]] == [asks]
        assert (await Message.get(id=made["reminders"][0]["message_id"])).body.endswith(REPLY_C) is asks
    # A new hearing's form starts ticked, as the organisation asks.
    form = await admin.get(f"/cases/{case.case_id}/events/new")
    assert re.search(r'name="ask_confirmation" value="1" checked', form.text)
