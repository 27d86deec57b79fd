"""Case events and their client reminders (issue 9, points 1–2): the API, reminders as scheduled texts in the
outbox sent through the fake Twilio by the worker at the client's local time — across a daylight-saving change —,
moving and cancelling an event, reminders whose time has passed, and the quick entry in the client's language.
The clock is driven (`send_due(outbox, now=…)`), never slept on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette

from inbox.models import Client, EventReminder, Message, MessageLink, MessagePurpose, MessageStatus, QuickEntry
from inbox.worker import send_due
from tests.support.api import assert_error, assert_iso_with_offset
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import no_quiet_hours
from tests.support.pages import row_ids, textarea, words
from tests.support.records import MARIA, MakeCase

NEW_YORK = ZoneInfo("America/New_York")  # MARIA's number is in Atlanta


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def next_spring_forward(after: date) -> date:
    """The next second Sunday of March (US clocks go forward at 2 a.m.), after `after`."""
    for year in (after.year, after.year + 1):
        march_first = date(year, 3, 1)
        first_sunday = march_first + timedelta(days=(6 - march_first.weekday()) % 7)
        change = first_sunday + timedelta(days=7)
        if change > after:
            return change
    raise AssertionError("unreachable")


def local(moment: str) -> datetime:
    return assert_iso_with_offset(moment).astimezone(NEW_YORK)


async def add_event(api: httpx.AsyncClient, case_id: int, **fields: Any) -> dict[str, Any]:
    body = {"kind": "hearing", "title": "Eviction hearing", "place": "Fulton County Courthouse, Room 4B", **fields}
    response = await api.post(f"/api/v1/cases/{case_id}/events", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_hearing_reminders_leave_at_nine_local_across_a_daylight_saving_change(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    change = next_spring_forward(datetime.now(NEW_YORK).date())
    # The Monday after the clocks go forward, 10 a.m.: one reminder a week before (EST), one the day before (EDT).
    monday = change + timedelta(days=1)
    starts = datetime(monday.year, monday.month, monday.day, 10, 0, tzinfo=NEW_YORK)
    case = await make_case()
    event = await add_event(supervisor, case.case_id, starts_at=z(starts))

    assert event["kind"] == "hearing" and event["cancelled_at"] is None and event["confirmed_at"] is None
    week_before, day_before = event["reminders"]
    assert [r["status"] for r in event["reminders"]] == ["pending", "pending"]
    assert local(week_before["send_at"]).date() == monday - timedelta(days=7)
    assert (local(week_before["send_at"]).hour, local(day_before["send_at"]).hour) == (9, 9)
    assert local(day_before["send_at"]).date() == change
    # Nine o'clock is 14:00 UTC before the change and 13:00 UTC after it.
    assert (
        assert_iso_with_offset(week_before["send_at"]).hour,
        assert_iso_with_offset(day_before["send_at"]).hour,
    ) == (
        14,
        13,
    )

    message = await Message.get(id=day_before["message_id"])
    assert message.status == MessageStatus.SCHEDULED and message.purpose == MessagePurpose.EVENT_REMINDER
    assert await MessageLink.exists(message_id=message.id, case_id=case.case_id)
    assert "Eviction hearing" in message.body and "10:00 a.m." in message.body
    assert "Fulton County Courthouse, Room 4B" in message.body
    queue = await supervisor.get("/api/v1/queue")
    assert {week_before["message_id"], day_before["message_id"]} <= {item["id"] for item in queue.json()}

    day_before_at = assert_iso_with_offset(day_before["send_at"])
    assert await send_due(app.state.outbox, now=day_before_at - timedelta(minutes=1)) == 1  # the week-before one
    assert (await Message.get(id=message.id)).status == MessageStatus.SCHEDULED
    assert await send_due(app.state.outbox, now=day_before_at) == 1
    assert fake_twilio.bodies_to(MARIA)[-1] == message.body
    refetched = (await supervisor.get(f"/api/v1/events/{event['id']}")).json()
    assert [r["status"] for r in refetched["reminders"]] == ["sent", "sent"]


async def test_moving_an_event_moves_its_pending_reminders_and_rewords_them(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    case = await make_case()
    starts = datetime.now(NEW_YORK).replace(hour=14, minute=30, second=0, microsecond=0) + timedelta(days=20)
    event = await add_event(
        supervisor,
        case.case_id,
        kind="appointment",
        title="Meeting with your lawyer",
        starts_at=z(starts),
        reminders=[{"minutes_before": 24 * 60}, {"minutes_before": 120}],
    )
    ids = [r["message_id"] for r in event["reminders"]]

    later = starts + timedelta(days=2, hours=1)
    moved = await supervisor.patch(f"/api/v1/events/{event['id']}", json={"starts_at": z(later)})
    assert moved.status_code == 200, moved.text
    reminders = moved.json()["reminders"]
    assert [r["message_id"] for r in reminders] == ids  # the same texts, moved
    assert [assert_iso_with_offset(r["send_at"]) for r in reminders] == [
        later - timedelta(days=1),
        later - timedelta(hours=2),
    ]
    assert moved.json()["title"] == "Meeting with your lawyer" and moved.json()["place"]
    body = (await Message.get(id=ids[0])).body
    assert "3:30 p.m." in body and f"{later.day}," in body

    # Moved to three hours from now: the day-before reminder's time has passed (cancelled), the 2-hour one moves.
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    moved = await supervisor.patch(f"/api/v1/events/{event['id']}", json={"starts_at": z(soon)})
    assert [r["status"] for r in moved.json()["reminders"]] == ["canceled", "pending"]
    assert assert_iso_with_offset(moved.json()["reminders"][1]["send_at"]) == soon - timedelta(hours=2)
    await no_quiet_hours()  # the 2-hour reminder may fall in the night, depending on when the test runs
    assert await send_due(app.state.outbox, now=soon - timedelta(hours=2)) == 1
    assert fake_twilio.count_to(MARIA) == 1


async def test_cancelling_an_event_cancels_its_reminders_and_nothing_leaves(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    case = await make_case()
    starts = datetime.now(NEW_YORK).replace(hour=11, minute=0, second=0, microsecond=0) + timedelta(days=10)
    event = await add_event(supervisor, case.case_id, starts_at=z(starts))

    cancelled = await supervisor.delete(f"/api/v1/events/{event['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled_at"] is not None
    assert [r["status"] for r in cancelled.json()["reminders"]] == ["canceled", "canceled"]
    assert await send_due(app.state.outbox, now=starts) == 0
    assert fake_twilio.count_to(MARIA) == 0
    again = await supervisor.delete(f"/api/v1/events/{event['id']}")
    assert again.json()["cancelled_at"] == cancelled.json()["cancelled_at"]
    assert_error(await supervisor.patch(f"/api/v1/events/{event['id']}", json={"title": "Moved"}), 409)
    listed = await supervisor.get(f"/api/v1/cases/{case.case_id}/events")
    assert [e["id"] for e in listed.json()] == [event["id"]]


async def test_a_reminder_whose_time_has_passed_is_not_made(supervisor: httpx.AsyncClient, make_case: MakeCase) -> None:
    case = await make_case()
    # In three hours: 9 a.m. on the day before (and the week before) has always passed; an hour before has not.
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    reminders = [
        {"minutes_before": 7 * 24 * 60, "at_local_time": "09:00"},
        {"minutes_before": 24 * 60, "at_local_time": "09:00"},
        {"minutes_before": 60},
    ]
    event = await add_event(supervisor, case.case_id, starts_at=z(soon), reminders=reminders)
    assert [r["status"] for r in event["reminders"]] == ["skipped", "skipped", "pending"]
    assert [r["message_id"] is None for r in event["reminders"]] == [True, True, False]
    assert event["reminders"][0]["skipped"] == "Its time had passed when the event was saved."
    assert await Message.filter(purpose=MessagePurpose.EVENT_REMINDER).count() == 1


async def test_the_reminder_text_is_the_quick_entry_in_the_clients_language(
    supervisor: httpx.AsyncClient, make_case: MakeCase
) -> None:
    case = await make_case()
    await Client.filter(id=case.client_id).update(preferred_language="es-MX")
    await QuickEntry.create(name="Event reminder", language=None, body="Reminder: {event_title} on {event_date}.")
    await QuickEntry.create(
        name="Event reminder",
        language="es",
        body="Hola {client_first_name}: {event_title}, {event_date} a las {event_time}",
    )
    starts = datetime(2031, 5, 6, 15, 0, tzinfo=NEW_YORK)
    event = await add_event(
        supervisor,
        case.case_id,
        kind="meeting",
        title="Reunión",
        starts_at=z(starts),
        place="",
        reminders=[{"minutes_before": 60}],
    )
    body = (await Message.get(id=event["reminders"][0]["message_id"])).body
    assert body == "Hola Maria: Reunión, May 6, 2031 a las 3:00 p.m."


async def test_bad_events_are_refused_naming_the_field(supervisor: httpx.AsyncClient, make_case: MakeCase) -> None:
    case = await make_case()
    start = datetime(2031, 5, 6, 15, 0, tzinfo=UTC)
    bad_time = await supervisor.post(
        f"/api/v1/cases/{case.case_id}/events",
        json={
            "kind": "hearing",
            "title": "X",
            "starts_at": z(start),
            "reminders": [{"minutes_before": 60, "at_local_time": "9am"}],
        },
    )
    assert "reminders.0.at_local_time" in assert_error(bad_time, 422)["fields"]
    unknown = await supervisor.post(
        f"/api/v1/cases/{case.case_id}/events",
        json={"kind": "hearing", "title": "X", "starts_at": z(start), "attendee_emails": ["nobody@example.org"]},
    )
    assert "attendee_emails" in assert_error(unknown, 422)["fields"]
    assert_error(await supervisor.get("/api/v1/events/999"), 404)


async def test_the_case_page_adds_edits_and_cancels_an_event_with_its_reminders(
    app: Starlette, signed_in: Any, make_staff: Any, make_case: MakeCase
) -> None:
    browser = await signed_in(await make_staff("advocate", name="Alice Advocate"))
    case = await make_case(assignee=browser.staff)
    day = datetime.now(NEW_YORK).date() + timedelta(days=30)

    await browser.get(f"/cases/{case.case_id}/events/new")
    added = await browser.post(
        f"/cases/{case.case_id}/events",
        {
            "kind": "hearing",
            "title": "Eviction hearing",
            "starts_at": f"{day.isoformat()}T10:30",
            "time_zone": "America/New_York",
            "place": "Room 4B",
            "reminders": "",
        },
    )
    assert added.status_code == 303, added.text
    page = await browser.get(f"/cases/{case.case_id}")
    assert row_ids(page.text, "event") and "Eviction hearing" in words(page.text)
    assert words(page.text).count("Reminder pending") == 2  # the organisation's hearing defaults
    event_id = row_ids(page.text, "event")[0]
    queue = await browser.get("/queue")
    assert words(queue.text).count("Event reminder Reminder from Case Inbox: Eviction hearing at 10:30 a.m.") == 2
    first_texts = [r.message_id for r in await EventReminder.filter(event_id=event_id).order_by("id")]

    edit = await browser.get(f"/cases/{case.case_id}/events/{event_id}/edit")
    assert 'value="7d@09:00, 1d@09:00"' in edit.text
    saved = await browser.post(
        f"/cases/{case.case_id}/events/{event_id}",
        {
            "kind": "hearing",
            "title": "Eviction hearing",
            "starts_at": f"{day.isoformat()}T10:30",
            "time_zone": "America/New_York",
            "place": "Room 4B",
            "reminders": "3d@09:00, 2h",
        },
    )
    assert saved.status_code == 303, saved.text
    reminders = await EventReminder.filter(event_id=event_id).order_by("id").prefetch_related("message")
    assert [(r.minutes_before, r.at_local_time) for r in reminders] == [(3 * 24 * 60, "09:00"), (120, None)]
    assert {m.status for m in await Message.filter(id__in=first_texts)} == {MessageStatus.CANCELED}
    two_hours = reminders[1].message
    assert two_hours is not None and two_hours.send_at is not None
    assert two_hours.send_at.astimezone(NEW_YORK) == datetime(day.year, day.month, day.day, 8, 30, tzinfo=NEW_YORK)

    refused = await browser.post(
        f"/cases/{case.case_id}/events/{event_id}",
        {"kind": "hearing", "title": "Eviction hearing", "starts_at": f"{day.isoformat()}T10:30", "reminders": "soon"},
    )
    assert refused.status_code == 422 and "is not a lead time" in words(refused.text)

    await browser.get(f"/cases/{case.case_id}")
    cancelled = await browser.post(f"/cases/{case.case_id}/events/{event_id}/cancel")
    # The "this hearing is cancelled" text is offered on the case's Send text page, not sent.
    assert cancelled.status_code == 200, cancelled.text
    assert (
        textarea(cancelled.text)
        == f"Case Inbox: Eviction hearing at 10:30 a.m. on {day:%B} {day.day}, {day.year} is cancelled."
    )
    assert await Message.filter(case_id=case.case_id, status=MessageStatus.QUEUED).count() == 0
    page = await browser.get(f"/cases/{case.case_id}")
    assert "cancelled" in words(page.text) and words(page.text).count("Reminder canceled") == 2


async def test_admins_set_the_default_reminders_each_new_event_of_a_kind_gets(
    signed_in: Any, make_staff: Any, make_case: MakeCase, supervisor: httpx.AsyncClient
) -> None:
    admin = await signed_in(await make_staff("admin", name="Ada Admin"))
    page = await admin.get("/admin/reminders")
    assert 'value="7d@09:00, 1d@09:00"' in page.text and 'value="1d, 2h"' in page.text
    fields = {"hearing": "3d@10:00", "appointment": "", "meeting": "1h", "deadline": "1d@08:30"}
    assert (await admin.post("/admin/reminders", fields)).status_code == 303
    refused = await admin.post("/admin/reminders", {**fields, "meeting": "an hour"})
    assert refused.status_code == 422 and "is not a lead time" in words(refused.text)

    case = await make_case()
    starts = datetime(2031, 5, 6, 15, 0, tzinfo=NEW_YORK)
    hearing = await add_event(supervisor, case.case_id, starts_at=z(starts))
    assert [(r["minutes_before"], r["at_local_time"]) for r in hearing["reminders"]] == [(3 * 24 * 60, "10:00")]
    assert local(hearing["reminders"][0]["send_at"]) == datetime(2031, 5, 3, 10, 0, tzinfo=NEW_YORK)
    appointment = await add_event(supervisor, case.case_id, kind="appointment", starts_at=z(starts))
    assert appointment["reminders"] == []

    advocate = await signed_in(await make_staff("advocate"))
    assert (await advocate.get("/admin/reminders")).status_code == 403


async def test_consent_is_decided_when_a_reminder_leaves_and_advocates_see_only_their_cases_events(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_case: MakeCase,
    make_staff: Any,
    api_client: Any,
    fake_twilio: FakeTwilio,
) -> None:
    case = await make_case(okay_to_text=False)  # no consent yet: the reminder is made all the same
    starts = datetime.now(NEW_YORK).replace(hour=13, minute=0, second=0, microsecond=0) + timedelta(days=5)
    event = await add_event(
        supervisor, case.case_id, kind="meeting", starts_at=z(starts), reminders=[{"minutes_before": 60}]
    )
    assert event["reminders"][0]["status"] == "pending"
    await send_due(app.state.outbox, now=starts - timedelta(minutes=60))
    assert fake_twilio.count_to(MARIA) == 0  # refused as it left: the client never agreed to texts
    refetched = (await supervisor.get(f"/api/v1/events/{event['id']}")).json()
    assert refetched["reminders"][0]["status"] in ("canceled", "failed")

    outsider = await api_client(await make_staff("advocate", name="Otto Outsider"))
    assert_error(await outsider.get(f"/api/v1/events/{event['id']}"), 404)
    assert_error(await outsider.get(f"/api/v1/cases/{case.case_id}/events"), 404)
    assert_error(await outsider.delete(f"/api/v1/events/{event['id']}"), 404)
    refused = await outsider.post(
        f"/api/v1/cases/{case.case_id}/events", json={"kind": "meeting", "title": "X", "starts_at": z(starts)}
    )
    assert_error(refused, 404)
