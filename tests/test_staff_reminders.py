"""Staff reminders (issue 9, point 4): tasks on cases and case events with staff attendees; reminders texted to the
mobile on each person's profile through the outbox (the worker hands them to the fake Twilio, which counts them);
turned on or off on the account page; a STOP from the staff mobile (a signed webhook) stops them and START resumes
them; moving an event moves them, completing a task cancels them; only their owner and supervisors see the
mobile's conversation. The clock is driven (`send_due(outbox, now=…)`), never slept on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette

from inbox.live import Tab
from inbox.models import (
    Alert,
    Conversation,
    Message,
    MessageLink,
    MessagePurpose,
    MessageStatus,
    Staff,
    StaffReminder,
    Task,
)
from inbox.services.case_events import reminder_status
from inbox.worker import send_due
from tests.support.api import assert_iso_with_offset
from tests.support.events import WAIT_SECONDS
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import as_event
from tests.support.outbox import no_quiet_hours
from tests.support.pages import words
from tests.support.records import MARIA, MakeCase, assign
from tests.support.staff import ApiClientFactory, MakeStaff, StaffClient
from tests.support.webhooks import text_in

NEW_YORK = ZoneInfo("America/New_York")  # the organisation's time zone
STAFF_MOBILE = "+14045387320"
OTHER_MOBILE = "+14045387400"
SignedIn = Callable[[Staff], Awaitable[StaffClient]]


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def days_ahead(days: int, hour: int, minute: int = 0) -> datetime:
    """That many days from today at this New York time."""
    day = datetime.now(NEW_YORK).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


async def reminder_settings(browser: StaffClient, mobile: str, on: bool = True) -> httpx.Response:
    """The account page's reminder form, filled in and sent as a browser does."""
    await browser.get("/account")
    return await browser.post("/account/reminders", {"mobile": mobile, **({"staff_reminders": "on"} if on else {})})


async def with_mobile(signed_in: SignedIn, staff: Staff, mobile: str = STAFF_MOBILE, on: bool = True) -> StaffClient:
    browser = await signed_in(staff)
    response = await reminder_settings(browser, mobile, on)
    assert response.status_code == 303, response.text
    return browser


async def add_task(api: httpx.AsyncClient, case_id: int, **fields: Any) -> dict[str, Any]:
    body = {"title": "File the answer to the complaint", "due_at": z(days_ahead(3, 15)), **fields}
    response = await api.post(f"/api/v1/cases/{case_id}/tasks", json=body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def add_event(api: httpx.AsyncClient, case_id: int, starts: datetime, *emails: str) -> dict[str, Any]:
    """A hearing with staff attendees and no client reminders (only the staff's own are made)."""
    body = {
        "kind": "hearing",
        "title": "Eviction hearing",
        "place": "Room 4B",
        "starts_at": z(starts),
        "attendee_emails": list(emails),
        "reminders": [],
    }
    response = await api.post(f"/api/v1/cases/{case_id}/events", json=body)
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


async def event_reminders(event_id: int) -> list[StaffReminder]:
    return await StaffReminder.filter(event_id=event_id).order_by("id").prefetch_related("message")


async def test_a_task_reminder_reaches_the_profile_mobile(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate = await make_staff()
    await with_mobile(signed_in, advocate)
    case = await make_case(assignee=advocate)
    due = days_ahead(3, 15)
    task = await add_task(supervisor, case.case_id, due_at=z(due), assignee_id=advocate.id)

    assert task["assignee_email"] == advocate.email and task["done_at"] is None and task["case_id"] == case.case_id
    day_before, at_due = task["reminders"]
    assert [r["status"] for r in task["reminders"]] == ["pending", "pending"]
    assert assert_iso_with_offset(day_before["send_at"]).astimezone(NEW_YORK) == days_ahead(2, 9)
    assert assert_iso_with_offset(at_due["send_at"]) == due
    message = await Message.get(id=day_before["message_id"])
    assert message.purpose == MessagePurpose.STAFF_REMINDER and message.to_number == STAFF_MOBILE
    # Not a text to the client: filed on no case, so it is not in the case's log and a reply raises no alert.
    assert message.case_id is None and not await MessageLink.exists(message_id=message.id)

    assert await send_due(app.state.outbox, now=assert_iso_with_offset(day_before["send_at"])) == 1
    assert fake_twilio.count_to(STAFF_MOBILE) == 1 and fake_twilio.count_to(MARIA) == 0
    body = fake_twilio.bodies_to(STAFF_MOBILE)[0]
    assert "File the answer to the complaint" in body and "3:00 p.m." in body and case.number in body
    listed = (await supervisor.get(f"/api/v1/cases/{case.case_id}/tasks")).json()
    assert [r["status"] for r in listed[0]["reminders"]] == ["sent", "pending"]


async def test_an_event_attendee_reminder_reaches_the_profile_mobile(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate, colleague = await make_staff(), await make_staff()
    await with_mobile(signed_in, advocate)
    await with_mobile(signed_in, colleague, OTHER_MOBILE)
    case = await make_case(assignee=advocate)
    starts = days_ahead(4, 14, 30)
    event = await add_event(supervisor, case.case_id, starts, advocate.email)

    assert [(r["staff_id"], r["status"]) for r in event["staff_reminders"]] == [(advocate.id, "pending")] * 2
    rows = await event_reminders(event["id"])
    assert [(r.staff_id, r.message.send_at if r.message else None) for r in rows] == [
        (advocate.id, starts - timedelta(days=1)),
        (advocate.id, starts - timedelta(hours=1)),
    ]
    assert await send_due(app.state.outbox, now=starts - timedelta(days=1)) == 1
    assert fake_twilio.count_to(STAFF_MOBILE) == 1
    assert fake_twilio.count_to(OTHER_MOBILE) == 0 and fake_twilio.count_to(MARIA) == 0  # not attending; no client ones
    body = fake_twilio.bodies_to(STAFF_MOBILE)[0]
    assert "hearing at 2:30 p.m." in body and "Eviction hearing, Room 4B" in body and case.number in body

    # The colleague joins: they get theirs; the advocate leaves: their pending one is cancelled.
    patched = await supervisor.patch(f"/api/v1/events/{event['id']}", json={"attendee_emails": [colleague.email]})
    assert patched.status_code == 200, patched.text
    rows = await event_reminders(event["id"])
    assert [(r.staff_id, reminder_status(r)) for r in rows] == [
        (advocate.id, "sent"),  # history stays
        (colleague.id, "pending"),
        (colleague.id, "pending"),
    ]
    left = await Message.filter(to_number=STAFF_MOBILE, status=MessageStatus.CANCELED)
    assert [m.send_at for m in left] == [starts - timedelta(hours=1)]
    assert await send_due(app.state.outbox, now=starts - timedelta(minutes=59)) == 2
    assert (fake_twilio.count_to(STAFF_MOBILE), fake_twilio.count_to(OTHER_MOBILE)) == (1, 2)


async def test_moving_an_event_moves_the_staff_reminder_and_cancelling_it_cancels_them(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate = await make_staff()
    await with_mobile(signed_in, advocate)
    case = await make_case(assignee=advocate)
    starts = days_ahead(5, 10)
    event = await add_event(supervisor, case.case_id, starts, advocate.email)
    before = [r.message_id for r in await event_reminders(event["id"])]

    later = days_ahead(6, 16)
    moved = await supervisor.patch(f"/api/v1/events/{event['id']}", json={"starts_at": z(later)})
    assert moved.status_code == 200, moved.text
    rows = await event_reminders(event["id"])
    assert [r.message_id for r in rows] == before  # the same texts, moved and re-worded
    assert [r.message.send_at for r in rows if r.message] == [later - timedelta(days=1), later - timedelta(hours=1)]
    assert all("4:00 p.m." in r.message.body for r in rows if r.message)
    assert await send_due(app.state.outbox, now=starts - timedelta(hours=1)) == 0  # the old times: nothing
    assert fake_twilio.count_to(STAFF_MOBILE) == 0

    cancelled = await supervisor.delete(f"/api/v1/events/{event['id']}")
    assert cancelled.status_code == 200, cancelled.text
    rows = await event_reminders(event["id"])
    assert [r.message.status for r in rows if r.message] == [MessageStatus.CANCELED, MessageStatus.CANCELED]
    assert await send_due(app.state.outbox, now=later) == 0
    assert fake_twilio.count_to(STAFF_MOBILE) == 0


async def test_completing_a_task_cancels_its_reminders(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate = await make_staff()
    await with_mobile(signed_in, advocate)
    case = await make_case(assignee=advocate)
    due = days_ahead(3, 11)
    task = await add_task(supervisor, case.case_id, due_at=z(due), assignee_id=advocate.id)

    moved = await supervisor.patch(f"/api/v1/tasks/{task['id']}", json={"due_at": z(due + timedelta(hours=2))})
    assert [r["message_id"] for r in moved.json()["reminders"]] == [r["message_id"] for r in task["reminders"]]
    assert assert_iso_with_offset(moved.json()["reminders"][1]["send_at"]) == due + timedelta(hours=2)

    done = await supervisor.patch(f"/api/v1/tasks/{task['id']}", json={"done": True})
    assert done.status_code == 200, done.text
    assert done.json()["done_at"] is not None
    assert [r["status"] for r in done.json()["reminders"]] == ["canceled", "canceled"]
    assert await send_due(app.state.outbox, now=due + timedelta(hours=3)) == 0
    assert fake_twilio.count_to(STAFF_MOBILE) == 0

    # Open again: the reminders still ahead come back as new texts.
    reopened = await supervisor.patch(f"/api/v1/tasks/{task['id']}", json={"done": False})
    assert reopened.json()["done_at"] is None
    assert [r["status"] for r in reopened.json()["reminders"]] == ["pending", "pending"]
    assert await send_due(app.state.outbox, now=due + timedelta(hours=2)) == 2
    assert fake_twilio.count_to(STAFF_MOBILE) == 2


async def test_reminders_turned_off_in_the_profile_are_not_sent(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate = await make_staff()
    browser = await with_mobile(signed_in, advocate, on=False)
    case = await make_case(assignee=advocate)
    due = days_ahead(3, 15)
    task = await add_task(supervisor, case.case_id, due_at=z(due), assignee_id=advocate.id)
    assert [(r["status"], r["skipped"]) for r in task["reminders"]] == [
        ("skipped", "Reminders are turned off in their profile."),
    ] * 2

    # Turned on: the task's reminders are made; turned off again on the page: the pending ones are cancelled.
    assert (await reminder_settings(browser, STAFF_MOBILE, on=True)).status_code == 303
    made = await StaffReminder.filter(task_id=task["id"]).prefetch_related("message")
    assert [r.message.status for r in made if r.message] == [MessageStatus.SCHEDULED] * 2
    assert (await reminder_settings(browser, STAFF_MOBILE, on=False)).status_code == 303
    assert await Message.filter(id__in=[r.message_id for r in made], status=MessageStatus.CANCELED).count() == 2
    assert await send_due(app.state.outbox, now=due) == 0

    # Turned off by some other way after a reminder was made: the rule at send time refuses it.
    assert (await reminder_settings(browser, STAFF_MOBILE, on=True)).status_code == 303
    await Staff.filter(id=advocate.id).update(staff_reminders=False)
    assert await send_due(app.state.outbox, now=due) == 0
    assert fake_twilio.count_to(STAFF_MOBILE) == 0
    refused = await Message.filter(purpose=MessagePurpose.STAFF_REMINDER, error_message__contains="turned off")
    assert len(refused) == 2 and all(m.status == MessageStatus.CANCELED for m in refused)


async def test_a_stop_from_the_staff_mobile_stops_later_reminders_and_start_resumes_them(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate = await make_staff()
    await with_mobile(signed_in, advocate)
    case = await make_case(assignee=advocate)
    due = days_ahead(3, 15)
    task = await add_task(supervisor, case.case_id, due_at=z(due), assignee_id=advocate.id)
    day_before, at_due = (assert_iso_with_offset(r["send_at"]) for r in task["reminders"])

    await text_in(anonymous, STAFF_MOBILE, "STOP")
    assert await send_due(app.state.outbox, now=day_before) == 0
    assert fake_twilio.count_to(STAFF_MOBILE) == 0
    first = await Message.get(id=task["reminders"][0]["message_id"])
    assert first.status == MessageStatus.CANCELED and "texted STOP" in (first.error_message or "")
    # The later one stays scheduled (a STOP does not cancel a staff member's own reminders) …
    second = await Message.get(id=task["reminders"][1]["message_id"])
    assert second.status == MessageStatus.SCHEDULED

    # … so a START before it is due lets it leave.
    await text_in(anonymous, STAFF_MOBILE, "START")
    assert await send_due(app.state.outbox, now=at_due) == 1
    assert fake_twilio.count_to(STAFF_MOBILE) == 1


async def test_only_the_owner_and_supervisors_see_a_staff_mobile_conversation(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    api_client: ApiClientFactory,
    supervisor_staff: Staff,
) -> None:
    advocate, colleague = await make_staff(name="Ana Owner"), await make_staff(name="Ben Colleague")
    owner = await with_mobile(signed_in, advocate)
    other = await with_mobile(signed_in, colleague, OTHER_MOBILE)
    case = await make_case(assignee=advocate)
    await make_case(assignee=colleague)  # the colleague sees a client of their own, not the advocate's mobile
    await assign(case.case_id, colleague)  # even on the same case
    task = await add_task(supervisor, case.case_id, assignee_id=advocate.id)
    conversation = await Conversation.get(phone=STAFF_MOBILE)
    message_id = task["reminders"][0]["message_id"]

    assert "Ana Owner" not in words((await owner.get("/conversations")).text)  # a new task lifts no inbox row
    await text_in(anonymous, STAFF_MOBILE, "Got it, thanks")  # a text from the mobile does
    thread = await owner.get(f"/conversations/{conversation.id}")
    assert thread.status_code == 200 and "Staff mobile" in words(thread.text)
    assert "on no client record" not in words(thread.text)
    assert f"/conversations/{conversation.id}/link" not in thread.text  # not offered for linking to a client
    listed = words((await owner.get("/conversations")).text)
    assert "Staff: Ana Owner" in listed
    assert "Staff: Ana Owner" not in words((await owner.get("/conversations?filter=unmatched")).text)
    assert (await other.get(f"/conversations/{conversation.id}")).status_code == 404
    assert "Ana Owner" not in words((await other.get("/conversations")).text)
    assert (await other.get(f"/messages/{message_id}")).status_code == 404
    queue_ids = [item["id"] for item in (await (await api_client(colleague)).get("/api/v1/queue")).json()]
    assert message_id not in queue_ids
    assert message_id in [item["id"] for item in (await (await api_client(advocate)).get("/api/v1/queue")).json()]
    assert message_id in [item["id"] for item in (await supervisor.get("/api/v1/queue")).json()]
    boss = await signed_in(supervisor_staff)
    assert "Staff: Ana Owner" in words((await boss.get("/conversations")).text)
    assert not await Alert.exists()  # a staff member's text raises no alert on the case


async def test_the_account_form_checks_the_mobile_and_keeps_what_was_typed(
    make_staff: MakeStaff, signed_in: SignedIn
) -> None:
    advocate = await make_staff()
    browser = await signed_in(advocate)
    response = await reminder_settings(browser, "555-12", on=True)
    assert response.status_code == 422
    assert 'value="555-12"' in response.text and "mobile" in words(response.text).lower()
    assert (await Staff.get(id=advocate.id)).mobile is None
    forged = await browser.post("/account/reminders", {"mobile": STAFF_MOBILE}, csrf=False)
    assert forged.status_code == 403
    assert (await reminder_settings(browser, "(404) 538-7320", on=True)).status_code == 303
    saved = await Staff.get(id=advocate.id)
    assert (saved.mobile, saved.staff_reminders) == (STAFF_MOBILE, True)
    assert 'value="+14045387320"' in (await browser.get("/account")).text


async def test_tasks_on_the_case_page_and_my_tasks(
    app: Starlette, make_staff: MakeStaff, make_case: MakeCase, signed_in: SignedIn
) -> None:
    advocate = await make_staff()
    browser = await with_mobile(signed_in, advocate)
    case = await make_case(assignee=advocate)
    page = await browser.get(f"/cases/{case.case_id}")
    assert "Tasks" in words(page.text) and "No tasks on this case." in words(page.text)

    bad = await browser.post(f"/cases/{case.case_id}/tasks", {"title": "Call the landlord <b>", "due_at": ""})
    assert bad.status_code == 422 and 'value="Call the landlord &lt;b&gt;"' in bad.text
    assert not await Task.exists()
    due = days_ahead(2, 10)
    added = await browser.post(
        f"/cases/{case.case_id}/tasks",
        {"title": "Call the landlord <b>", "due_at": due.strftime("%Y-%m-%dT%H:%M"), "time_zone": "America/New_York"},
    )
    assert added.status_code == 303, added.text
    task = await Task.get(case_id=case.case_id)
    assert task.due_at == due and task.assignee_id == advocate.id
    page = await browser.get(f"/cases/{case.case_id}")
    assert "Call the landlord &lt;b&gt;" in page.text and "Reminder to" in words(page.text)
    mine = await browser.get("/tasks")
    assert "Call the landlord" in words(mine.text) and case.number in words(mine.text)

    done = await browser.post(f"/tasks/{task.id}/done", {"next": f"/cases/{case.case_id}"})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/cases/{case.case_id}")
    assert (await Task.get(id=task.id)).done_at is not None
    assert "Call the landlord" not in words((await browser.get("/tasks")).text)


async def test_reassigning_a_task_moves_its_reminders_to_the_new_assignee_who_must_be_on_the_case(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    make_staff: MakeStaff,
    make_case: MakeCase,
    signed_in: SignedIn,
    api_client: ApiClientFactory,
    fake_twilio: FakeTwilio,
) -> None:
    await no_quiet_hours()
    advocate, colleague, stranger = await make_staff(), await make_staff(), await make_staff()
    await with_mobile(signed_in, advocate)
    await with_mobile(signed_in, colleague, OTHER_MOBILE)
    case = await make_case(assignee=advocate)
    await assign(case.case_id, colleague)
    due = days_ahead(3, 15)
    task = await add_task(supervisor, case.case_id, due_at=z(due), assignee_id=advocate.id)

    # Someone not on the case would be texted its title: refused, naming the field, and nothing changes.
    refused = await supervisor.patch(f"/api/v1/tasks/{task['id']}", json={"assignee_id": stranger.id})
    assert refused.status_code == 422 and "assignee_id" in refused.json()["fields"]
    refused = await supervisor.post(
        f"/api/v1/cases/{case.case_id}/tasks", json={"title": "X", "due_at": z(due), "assignee_id": stranger.id}
    )
    assert refused.status_code == 422 and await Task.filter(case_id=case.case_id).count() == 1
    # The stranger may not see the case's task at all.
    outsider = await api_client(stranger)
    assert (await outsider.patch(f"/api/v1/tasks/{task['id']}", json={"done": True})).status_code == 404
    assert (await outsider.get(f"/api/v1/cases/{case.case_id}/tasks")).status_code == 404

    moved = await supervisor.patch(f"/api/v1/tasks/{task['id']}", json={"assignee_id": colleague.id})
    assert moved.status_code == 200, moved.text
    assert [(r["staff_id"], r["status"]) for r in moved.json()["reminders"]] == [(colleague.id, "pending")] * 2
    assert await Message.filter(to_number=STAFF_MOBILE, status=MessageStatus.CANCELED).count() == 2
    assert await send_due(app.state.outbox, now=due) == 2
    assert (fake_twilio.count_to(STAFF_MOBILE), fake_twilio.count_to(OTHER_MOBILE)) == (0, 2)


async def test_a_text_from_a_staff_mobile_reaches_its_owner_live_and_no_other_advocate(
    app: Starlette, anonymous: httpx.AsyncClient, make_staff: MakeStaff, signed_in: SignedIn, make_case: MakeCase
) -> None:
    hub = app.state.hub
    owner, colleague = await make_staff(name="Ana Owner"), await make_staff()
    await with_mobile(signed_in, owner)
    await make_case(assignee=colleague)
    mine, theirs = Tab(staff_id=owner.id, sees_everything=False), Tab(staff_id=colleague.id, sees_everything=False)
    hub.attach(mine)
    hub.attach(theirs)
    try:
        await text_in(anonymous, STAFF_MOBILE, "Running late")
        async with asyncio.timeout(WAIT_SECONDS):
            seen = as_event(await mine.queue.get()).data  # the bubble, with the inbox row out of band
        assert "Running late" in seen and "Staff: Ana Owner" in seen
        assert theirs.queue.empty()  # fanned out in the same pass: the colleague got nothing
    finally:
        hub.detach(mine)
        hub.detach(theirs)
