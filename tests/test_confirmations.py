"""Confirmations by text (issue 9, point 3): a reminder that asks ends with "Reply C to confirm."; a C or CONFIRM
from that number within the reminder's window (from its sending until the event starts) confirms the event and
raises no alert; Y and YES never confirm (they stay opt-in keywords); a C with no such reminder is an ordinary
text with its alert. Reminders go through the fake Twilio by the worker; the app's clock is driven, never slept on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from inbox.models import Alert, CaseEvent, ConsentEvent, Message, QuickEntry, Staff
from inbox.services.keywords import Keyword, classify
from inbox.worker import check_due, send_due
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import no_quiet_hours
from tests.support.pages import words
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff
from tests.support.webhooks import text_in

REPLY_C = "Reply C to confirm."


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def add_hearing(api: httpx.AsyncClient, case_id: int, starts: datetime, ask_confirmation: bool) -> dict[str, Any]:
    """A hearing with one reminder two hours before it, asking for a C or not."""
    body = {
        "kind": "hearing",
        "title": "Eviction hearing",
        "place": "Room 4B",
        "starts_at": z(starts),
        "reminders": [{"minutes_before": 120, "ask_confirmation": ask_confirmation}],
    }
    response = await api.post(f"/api/v1/cases/{case_id}/events", json=body)
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


async def hearing_with_a_sent_reminder(
    app: Starlette, api: httpx.AsyncClient, case_id: int, ask_confirmation: bool = True
) -> tuple[dict[str, Any], datetime]:
    """A hearing five hours ahead whose two-hour reminder (asking for a C, or not) has been sent; the app's
    clock then stands between the reminder and the hearing. Returns the event and that moment."""
    await no_quiet_hours()  # the reminder may fall in the night, depending on when the test runs
    starts = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    event = await add_hearing(api, case_id, starts, ask_confirmation)
    assert await send_due(app.state.outbox, now=starts - timedelta(hours=2)) == 1
    between = starts - timedelta(hours=1)
    app.state.clock = lambda: between
    return event, between


async def confirmed_at(event: dict[str, Any]) -> datetime | None:
    return (await CaseEvent.get(id=event["id"])).confirmed_at


async def test_a_reminder_that_asks_ends_with_reply_c_and_one_that_does_not_never_does(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    asking = await make_case()
    await hearing_with_a_sent_reminder(app, supervisor, asking.case_id)
    assert fake_twilio.bodies_to(MARIA)[-1].endswith(" " + REPLY_C)

    other = "+17705550123"
    plain = await make_case(phone=other)
    await hearing_with_a_sent_reminder(app, supervisor, plain.case_id, ask_confirmation=False)
    assert REPLY_C not in fake_twilio.bodies_to(other)[-1]


async def test_a_quick_entry_reminder_gets_the_request_once(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    await QuickEntry.create(name="Event reminder", language=None, body="Court: {event_title} on {event_date}.")
    await QuickEntry.create(name="Asks already", language=None, body="{event_title}. Reply c to confirm.")
    asks_already = await QuickEntry.get(name="Asks already")
    case = await make_case()
    await hearing_with_a_sent_reminder(app, supervisor, case.case_id)
    assert fake_twilio.bodies_to(MARIA)[-1].startswith("Court: Eviction hearing on ")
    assert fake_twilio.bodies_to(MARIA)[-1].endswith(". " + REPLY_C)

    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = {
        "kind": "hearing",
        "title": "Second hearing",
        "starts_at": z(starts),
        "reminders": [{"minutes_before": 120, "ask_confirmation": True, "quick_entry_id": asks_already.id}],
    }
    response = await supervisor.post(f"/api/v1/cases/{case.case_id}/events", json=body)
    assert response.status_code == 201, response.text
    message = await Message.get(id=response.json()["reminders"][0]["message_id"])
    assert message.body == "Second hearing. Reply c to confirm."  # not asked twice


async def test_a_c_confirms_the_hearing_without_an_alert(
    app: Starlette,
    supervisor: httpx.AsyncClient,
    supervisor_staff: Staff,
    signed_in: Any,
    anonymous: httpx.AsyncClient,
    make_case: MakeCase,
) -> None:
    case = await make_case()
    event, between = await hearing_with_a_sent_reminder(app, supervisor, case.case_id)

    reply = await text_in(anonymous, MARIA, "  c ")

    assert await confirmed_at(event) == between
    assert not await Alert.exists(message_id=reply.id)
    shown = (await supervisor.get(f"/api/v1/events/{event['id']}")).json()
    assert shown["confirmed_at"] is not None
    assert datetime.fromisoformat(shown["confirmed_at"]) == between
    page = await (await signed_in(supervisor_staff)).get(f"/cases/{case.case_id}")
    assert "Eviction hearing" in words(page.text) and "confirmed by text, " in words(page.text)
    # The reply is still an ordinary text in the thread.
    assert (await Message.get(id=reply.id)).body == "  c "


async def test_confirm_in_any_casing_confirms(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    case = await make_case()
    event, between = await hearing_with_a_sent_reminder(app, supervisor, case.case_id)

    reply = await text_in(anonymous, MARIA, "Confirm")

    assert await confirmed_at(event) == between
    assert not await Alert.exists(message_id=reply.id)


async def test_y_and_yes_never_confirm_and_stay_opt_in_keywords(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    case = await make_case()
    event, _ = await hearing_with_a_sent_reminder(app, supervisor, case.case_id)

    await text_in(anonymous, MARIA, "Y")
    await text_in(anonymous, MARIA, "STOP")
    yes = await text_in(anonymous, MARIA, "yes")

    assert await confirmed_at(event) is None
    assert classify("YES") == Keyword.OPT_IN
    (opted_in,) = await ConsentEvent.filter(message_id=yes.id)  # YES still speaks to consent: back in
    assert opted_in.okay_to_text and not opted_in.opted_out


async def test_a_c_without_a_reminder_that_asked_is_an_ordinary_text_with_its_alert(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    case = await make_case()
    event, _ = await hearing_with_a_sent_reminder(app, supervisor, case.case_id, ask_confirmation=False)

    reply = await text_in(anonymous, MARIA, "C")

    assert await confirmed_at(event) is None
    assert await Alert.exists(message_id=reply.id, case_id=case.case_id)


async def test_a_c_after_the_hearing_started_does_not_confirm_it(
    app: Starlette, supervisor: httpx.AsyncClient, anonymous: httpx.AsyncClient, make_case: MakeCase
) -> None:
    case = await make_case()
    event, between = await hearing_with_a_sent_reminder(app, supervisor, case.case_id)
    after = between + timedelta(hours=2)
    app.state.clock = lambda: after

    reply = await text_in(anonymous, MARIA, "C")

    assert await confirmed_at(event) is None
    assert await Alert.exists(message_id=reply.id)


# ---------------------------------------------------------------- the unconfirmed-hearing alert


async def test_an_unconfirmed_hearing_48_hours_ahead_alerts_its_assignees_once(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase, make_staff: MakeStaff
) -> None:
    advocate = await make_staff("advocate")
    case = await make_case(assignee=advocate)
    quiet = await make_case(phone="+17705550123", assignee=advocate)  # its hearing does not ask for a C
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    asking = await add_hearing(supervisor, case.case_id, starts, ask_confirmation=True)
    await add_hearing(supervisor, quiet.case_id, starts, ask_confirmation=False)

    assert await check_due(app.state.outbox, now=starts - timedelta(hours=49)) == 0  # not yet 48 hours ahead
    assert await check_due(app.state.outbox, now=starts - timedelta(hours=47)) == 1
    assert await check_due(app.state.outbox, now=starts - timedelta(hours=46)) == 0  # raised once

    (alert,) = await Alert.filter(case_id__in=[case.case_id, quiet.case_id]).prefetch_related("assignees")
    assert alert.case_id == case.case_id
    assert alert.message_id == asking["reminders"][0]["message_id"]  # tied to the reminder that asked
    assert {a.staff_id for a in alert.assignees} == {advocate.id}


async def test_a_confirmed_or_cancelled_hearing_raises_no_alert(
    app: Starlette, supervisor: httpx.AsyncClient, make_case: MakeCase
) -> None:
    confirmed_case, cancelled_case = await make_case(), await make_case(phone="+17705550123")
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    confirmed = await add_hearing(supervisor, confirmed_case.case_id, starts, ask_confirmation=True)
    cancelled = await add_hearing(supervisor, cancelled_case.case_id, starts, ask_confirmation=True)
    await CaseEvent.filter(id=confirmed["id"]).update(confirmed_at=datetime.now(UTC))
    response = await supervisor.delete(f"/api/v1/events/{cancelled['id']}")
    assert response.status_code == 200, response.text

    assert await check_due(app.state.outbox, now=starts - timedelta(hours=47)) == 0
    assert not await Alert.filter(case_id__in=[confirmed_case.case_id, cancelled_case.case_id]).exists()
