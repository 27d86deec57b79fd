"""Sending later: scheduling from a thread, a case and the API (times in the viewer's zone, stored in UTC),
the SMS queue page (edit, cancel, and "handed to Twilio: it can no longer be cancelled"), the API's
DELETE /messages/{id} and GET /queue, the outbox worker sending due texts through the fake Twilio,
and quiet hours in the client's time zone — with the clock driven, never slept on."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import MessageStatusChanged
from inbox.models import CaseNote, Client, ClientPhone, Message, MessageStatus, MessageStatusEvent, Organisation
from inbox.services import quiet_hours
from inbox.services.quiet_hours import Hold, Window
from inbox.worker import send_due
from tests.support.events import published
from tests.support.fake_twilio import FakeTwilio
from tests.support.pages import textarea, words
from tests.support.records import MARIA
from tests.support.staff import ApiClientFactory
from tests.support.webhooks import text_in

# MARIA is in Atlanta: America/New_York.
SEATTLE = "+12065550100"  # America/Los_Angeles
LONDON = "+442079460000"  # Europe/London
NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
CHICAGO = ZoneInfo("America/Chicago")


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tomorrow_at(hour: int, zone: ZoneInfo, minute: int = 0) -> datetime:
    day = datetime.now(zone).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def local_field(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


async def schedule(
    api: httpx.AsyncClient, case_id: int, when: datetime, body: str = "Reminder: hearing Monday at 9."
) -> dict[str, Any]:
    response = await api.post("/api/v1/messages", json={"case_id": case_id, "body": body, "send_at": z(when)})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "scheduled"
    return response.json()


class Events:
    """Everything published on the app's bus while it is open."""

    def __init__(self, app: Starlette) -> None:
        self.bus = app.state.bus
        self.seen: list[Any] = []

    async def __aenter__(self) -> Self:
        self._context = self.bus.subscribe()
        self._subscription = await self._context.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)

    async def drain(self) -> list[Any]:
        self.seen.extend(await published(self._subscription))
        return self.seen


# ---------------------------------------------------------------- scheduling from the pages


async def test_the_thread_composer_schedules_in_the_viewers_time_zone(
    app: Starlette, signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "When is my hearing?")
    conversation_id = (await Message.get(direction="inbound")).conversation_id
    staff = await signed_in(await make_staff("supervisor"))
    page = await staff.get(f"/conversations/{conversation_id}")
    assert f'formaction="/conversations/{conversation_id}/schedule"' in page.text
    assert 'type="datetime-local" name="send_at"' in page.text and "Send later" in page.text

    when = tomorrow_at(15, CHICAGO)  # the viewer is in Chicago: their browser says so
    response = await staff.post(
        f"/conversations/{conversation_id}/schedule",
        {
            "body": "Your hearing is Monday at 9.",
            "case_id": str(made.case_id),
            "send_at": local_field(when),
            "time_zone": "America/Chicago",
            "tz_offset": "-300",
            "send_later": "1",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.text.lstrip().startswith('<form id="composer"') and textarea(response.text) == ""
    assert "Scheduled for" in words(response.text) and "America/Chicago" in response.text
    message = await Message.get(direction="outbound")
    assert message.status == MessageStatus.SCHEDULED and message.send_at == when.astimezone(UTC)
    assert message.case_id == made.case_id and message.body == "Your hearing is Monday at 9."
    assert fake_twilio.requests == []


async def test_a_plain_form_post_from_the_thread_answers_the_page_with_what_was_scheduled(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await make_case(phone=SEATTLE)
    await text_in(anonymous, SEATTLE, "Can you text me tomorrow night?")
    conversation_id = (await Message.get(direction="inbound")).conversation_id
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/conversations/{conversation_id}")
    when = tomorrow_at(23, NEW_YORK)  # 8 p.m. for the client in Seattle: inside the window
    response = await staff.post(
        f"/conversations/{conversation_id}/schedule",
        {"body": "Here is the text.", "send_at": local_field(when), "time_zone": ""},
    )
    assert response.status_code == 200 and "<html" in response.text
    assert "Scheduled for" in words(response.text) and "America/New_York" in response.text
    message = await Message.get(direction="outbound")
    assert message.send_at == when.astimezone(UTC) and message.error_message is None
    assert f'id="message-{message.id}"' in response.text  # its bubble, in the thread, says "scheduled"


async def test_without_javascript_a_time_means_the_organisations_zone(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    form = await staff.get(f"/cases/{made.case_id}/text")
    assert f'formaction="/cases/{made.case_id}/schedule"' in form.text
    assert "time in America/New_York" in form.text  # what the page says a time means without the script
    when = tomorrow_at(10, NEW_YORK)
    response = await staff.post(
        f"/cases/{made.case_id}/schedule",
        {"body": "See you Monday.", "to": MARIA, "send_at": local_field(when), "time_zone": "America/New_York"},
    )
    assert response.status_code == 303
    message = await Message.get(direction="outbound")
    assert response.headers["location"] == f"/conversations/{message.conversation_id}"
    assert message.status == MessageStatus.SCHEDULED and message.send_at == when.astimezone(UTC)
    assert fake_twilio.requests == []


async def test_a_browser_that_only_gives_its_offset_is_understood(signed_in, make_staff, make_case) -> None:
    made = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/cases/{made.case_id}/text")
    day = date.today() + timedelta(days=3)
    response = await staff.post(
        f"/cases/{made.case_id}/schedule",
        {"body": "Hi", "to": MARIA, "send_at": f"{day.isoformat()}T09:30", "time_zone": "", "tz_offset": "120"},
    )
    assert response.status_code == 303
    assert (await Message.get(direction="outbound")).send_at == datetime(
        day.year, day.month, day.day, 7, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("send_at", "reason"),
    [
        ("", "Choose a date and time"),
        ("2020-01-01T09:00", "Choose a time in the future"),
        ("next tuesday", "like 2026-11-21 15:00"),
    ],
    ids=["missing", "past", "garbage"],
)
async def test_a_bad_time_keeps_the_text_and_says_why(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio, send_at: str, reason: str
) -> None:
    made = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/cases/{made.case_id}/text")
    response = await staff.post(
        f"/cases/{made.case_id}/schedule",
        {"body": "Keep me <safe>", "to": MARIA, "send_at": send_at, "time_zone": "America/New_York"},
    )
    assert response.status_code == 422
    assert reason in words(response.text)
    assert textarea(response.text) == "Keep me <safe>"
    assert f'value="{send_at}"' in response.text or not send_at
    assert not await Message.exists(direction="outbound") and fake_twilio.requests == []


async def test_scheduling_is_refused_without_consent_like_sending(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA, okay_to_text=False)
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/cases/{made.case_id}/text")
    response = await staff.post(
        f"/cases/{made.case_id}/schedule",
        {"body": "Hi", "to": MARIA, "send_at": local_field(tomorrow_at(10, NEW_YORK)), "time_zone": "America/New_York"},
    )
    assert response.status_code == 409 and not await Message.exists(direction="outbound")


# ---------------------------------------------------------------- the queue page


async def test_the_queue_lists_what_the_reader_may_see_with_edit_and_cancel(
    signed_in, make_staff, make_case, supervisor: httpx.AsyncClient
) -> None:
    alice = await make_staff("advocate", name="Alice Jones")
    hers = await make_case(phone=MARIA, assignee=alice)
    other = await make_case(phone="+14045387320", name="John Smith")
    mine = await schedule(supervisor, hers.case_id, tomorrow_at(10, NEW_YORK), "Hearing Monday at 9.")
    theirs = await schedule(supervisor, other.case_id, tomorrow_at(11, NEW_YORK), "Bring the lease.")

    page = await (await signed_in(alice)).get("/queue")
    assert page.status_code == 200
    assert f'id="queue-{mine["id"]}"' in page.text and "Hearing Monday at 9." in page.text
    assert f'id="queue-{theirs["id"]}"' not in page.text and "Bring the lease." not in page.text
    assert f'href="/queue/{mine["id"]}/edit"' in page.text and f'action="/queue/{mine["id"]}/cancel"' in page.text
    assert '<a href="/queue">Queue</a>' in page.text  # the header's link

    everything = await (await signed_in(await make_staff("supervisor"))).get("/queue")
    assert "Hearing Monday at 9." in everything.text and "Bring the lease." in everything.text


async def test_editing_a_scheduled_text_changes_its_words_and_time(
    signed_in, make_staff, make_case, supervisor: httpx.AsyncClient
) -> None:
    made = await make_case(phone=MARIA)
    scheduled = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK), "Hearing Monday at 9.")
    staff = await signed_in(await make_staff("supervisor"))
    form = await staff.get(f"/queue/{scheduled['id']}/edit")
    assert form.status_code == 200 and textarea(form.text) == "Hearing Monday at 9."
    later = tomorrow_at(16, NEW_YORK, 45)
    assert (
        f'value="{local_field(tomorrow_at(10, NEW_YORK))}"' in form.text
    )  # in the organisation's zone until the script runs

    saved = await staff.post(
        f"/queue/{scheduled['id']}/edit",
        {"body": "Hearing moved to Tuesday at 10.", "send_at": local_field(later), "time_zone": "America/New_York"},
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/queue?done=saved"
    message = await Message.get(id=scheduled["id"])
    assert message.body == "Hearing moved to Tuesday at 10." and message.send_at == later.astimezone(UTC)
    assert message.status == MessageStatus.SCHEDULED
    assert [n.body for n in await CaseNote.filter(message_id=message.id)] == ["Hearing moved to Tuesday at 10."]

    refused = await staff.post(
        f"/queue/{scheduled['id']}/edit",
        {"body": "x" * 161, "send_at": "2020-01-01T10:00", "time_zone": "America/New_York"},
    )
    assert refused.status_code == 422
    text = words(refused.text)
    assert "limited to 160 characters" in text and "Choose a time in the future" in text
    assert textarea(refused.text) == "x" * 161


async def test_cancelling_stops_the_text_records_it_and_tells_open_tabs(
    app: Starlette, signed_in, make_staff, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    scheduled = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK))
    staff = await signed_in(await make_staff("supervisor", name="Sam Boss"))
    await staff.get("/queue")
    async with Events(app) as events:
        response = await staff.post(f"/queue/{scheduled['id']}/cancel")
        published = await events.drain()
    assert response.status_code == 303 and response.headers["location"] == "/queue?done=canceled"
    message = await Message.get(id=scheduled["id"])
    assert message.status == MessageStatus.CANCELED and "Cancelled by Sam Boss" in (message.error_message or "")
    steps = [s.status for s in await MessageStatusEvent.filter(message_id=message.id).order_by("id")]
    assert steps == [MessageStatus.SCHEDULED, MessageStatus.CANCELED]
    changed = [e for e in published if isinstance(e, MessageStatusChanged)]
    assert [(e.message_id, e.status, e.case_ids) for e in changed] == [(message.id, "canceled", [made.case_id])]

    page = await staff.get("/queue?done=canceled")
    assert "Cancelled: it will not be sent." in words(page.text) and f'id="queue-{message.id}"' not in page.text
    # The worker never sends it, whatever the clock says.
    assert await send_due(app.state.outbox, now=datetime.now(UTC) + timedelta(days=7)) == 0
    assert fake_twilio.requests == []


async def test_htmx_cancel_answers_the_row_in_its_new_state(
    signed_in, make_staff, make_case, supervisor: httpx.AsyncClient
) -> None:
    made = await make_case(phone=MARIA)
    scheduled = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK))
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get("/queue")
    response = await staff.post(f"/queue/{scheduled['id']}/cancel", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="queue-{scheduled["id"]}"')
    assert "Cancelled: it will not be sent." in words(response.text) and "/edit" not in response.text


async def test_once_handed_to_twilio_it_cannot_be_cancelled_and_the_page_says_so(
    app: Starlette, signed_in, make_staff, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.callbacks_enabled = False  # it stays "queued" at Twilio
    made = await make_case(phone=MARIA)
    when = tomorrow_at(10, NEW_YORK)
    scheduled = await schedule(supervisor, made.case_id, when)
    assert await send_due(app.state.outbox, now=when + timedelta(minutes=1)) == 1
    message = await Message.get(id=scheduled["id"])
    assert message.status == MessageStatus.QUEUED and message.provider_sid

    staff = await signed_in(await make_staff("supervisor"))
    page = await staff.get("/queue")
    row = re.search(rf'<tr id="queue-{message.id}".*?</tr>', page.text, re.DOTALL)
    assert row and "Handed to Twilio: it can no longer be cancelled." in words(row.group(0))
    assert f"/queue/{message.id}/cancel" not in row.group(0) and f"/queue/{message.id}/edit" not in row.group(0)

    refused = await staff.post(f"/queue/{message.id}/cancel")
    assert refused.status_code == 409 and "can no longer be cancelled" in words(refused.text)
    htmx = await staff.post(f"/queue/{message.id}/cancel", headers={"HX-Request": "true"})
    assert htmx.status_code == 409 and htmx.text.lstrip().startswith(f'<tr id="queue-{message.id}"')
    edit = await staff.get(f"/queue/{message.id}/edit")
    assert edit.status_code == 409 and "can no longer be cancelled or changed" in words(edit.text)
    assert (await Message.get(id=message.id)).status == MessageStatus.QUEUED


# ---------------------------------------------------------------- the API


async def test_api_delete_cancels_a_scheduled_text(
    make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    scheduled = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK))
    response = await supervisor.delete(f"/api/v1/messages/{scheduled['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "canceled" and [s["status"] for s in body["timeline"]] == ["scheduled", "canceled"]
    again = await supervisor.delete(f"/api/v1/messages/{scheduled['id']}")
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    assert fake_twilio.requests == []


async def test_api_delete_is_409_once_handed_to_the_provider_and_404_when_not_visible(
    app: Starlette,
    make_staff,
    api_client: ApiClientFactory,
    make_case,
    supervisor: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.callbacks_enabled = False
    made = await make_case(phone=MARIA)
    sent = (await supervisor.post("/api/v1/messages", json={"case_id": made.case_id, "body": "Now"})).json()
    conflict = await supervisor.delete(f"/api/v1/messages/{sent['id']}")
    assert conflict.status_code == 409 and "can no longer be cancelled" in conflict.json()["error"]
    scheduled = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK))
    stranger = await api_client(await make_staff("advocate"))
    assert (await stranger.delete(f"/api/v1/messages/{scheduled['id']}")).status_code == 404
    assert (await supervisor.delete("/api/v1/messages/999999")).status_code == 404
    assert (await Message.get(id=scheduled["id"])).status == MessageStatus.SCHEDULED
    assert (await stranger.get("/api/v1/queue")).json() == []


async def test_api_queue_lists_scheduled_and_queued_texts_newest_first_in_pages(
    app: Starlette, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.callbacks_enabled = False
    made = await make_case(phone=MARIA)
    first = await schedule(supervisor, made.case_id, tomorrow_at(10, NEW_YORK), "First")
    queued = (await supervisor.post("/api/v1/messages", json={"case_id": made.case_id, "body": "Now"})).json()
    second = await schedule(supervisor, made.case_id, tomorrow_at(11, NEW_YORK), "Second")
    canceled = await schedule(supervisor, made.case_id, tomorrow_at(12, NEW_YORK), "Never")
    await supervisor.delete(f"/api/v1/messages/{canceled['id']}")
    await supervisor.post("/api/v1/messages", json={"case_id": made.case_id, "body": "Delivered", "to": MARIA})

    items = (await supervisor.get("/api/v1/queue")).json()
    statuses = {m["id"]: m["status"] for m in items}
    assert queued["status"] == "queued"
    assert [m["id"] for m in items][:3] == [second["id"], queued["id"], first["id"]] or statuses[
        queued["id"]
    ] == "queued"
    assert set(statuses) >= {first["id"], second["id"], queued["id"]} and canceled["id"] not in statuses
    assert all(m["status"] in ("scheduled", "queued", "accepted") for m in items)
    assert [m["id"] for m in items] == sorted((m["id"] for m in items), reverse=True)
    assert all(m["held_until"] is None for m in items)
    page = (await supervisor.get(f"/api/v1/queue?limit=1&before={second['id']}")).json()
    assert [m["id"] for m in page] == [queued["id"]]
    assert (await supervisor.get("/api/v1/queue?limit=nope")).status_code == 422


async def test_queue_items_match_the_openapi_document(make_case, supervisor: httpx.AsyncClient) -> None:
    from jsonschema import Draft202012Validator

    from inbox.routes.api import OPENAPI

    made = await make_case(phone=SEATTLE)
    await schedule(supervisor, made.case_id, tomorrow_at(22, LOS_ANGELES))  # held: held_until is a time
    await schedule(supervisor, made.case_id, tomorrow_at(12, LOS_ANGELES))  # not held: null
    items = (await supervisor.get("/api/v1/queue")).json()
    assert [item["held_until"] is None for item in items] == [True, False]
    validator = Draft202012Validator(
        {"$ref": "#/components/schemas/QueueItem", "components": OPENAPI["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    for item in items:
        assert [e.message for e in validator.iter_errors(item)] == []
    operations = OPENAPI["paths"]
    assert set(operations["/messages/{message_id}"]["delete"]["responses"]) >= {"200", "404", "409"}
    assert {p["name"] for p in operations["/queue"]["get"]["parameters"]} >= {"limit", "before"}


# ---------------------------------------------------------------- the worker


async def test_the_worker_sends_due_texts_through_twilio_once(
    app: Starlette, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    when = tomorrow_at(10, NEW_YORK)
    early = await schedule(supervisor, made.case_id, when, "Due first")
    late = await schedule(supervisor, made.case_id, when + timedelta(hours=2), "Due later")

    assert await send_due(app.state.outbox, now=when - timedelta(seconds=1)) == 0
    assert await send_due(app.state.outbox, now=when) == 1
    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [(MARIA, "Due first")]
    assert await send_due(app.state.outbox, now=when + timedelta(minutes=5)) == 0  # never twice
    await fake_twilio.callbacks_done()
    sent = await Message.get(id=early["id"])
    assert sent.provider_sid and sent.status in (MessageStatus.SENT, MessageStatus.DELIVERED)
    steps = [s.status.value for s in await MessageStatusEvent.filter(message_id=sent.id).order_by("id")]
    assert steps[:2] == ["scheduled", "queued"]
    assert (await Message.get(id=late["id"])).status == MessageStatus.SCHEDULED


async def test_the_worker_does_not_text_a_number_that_opted_out_after_scheduling(
    app: Starlette, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    when = tomorrow_at(10, NEW_YORK)
    scheduled = await schedule(supervisor, made.case_id, when)
    await ClientPhone.filter(number=MARIA).update(opted_out=True)
    assert await send_due(app.state.outbox, now=when) == 0
    message = await Message.get(id=scheduled["id"])
    assert message.status == MessageStatus.CANCELED and "opted out" in (message.error_message or "")
    assert fake_twilio.requests == []


# ---------------------------------------------------------------- quiet hours


async def test_a_text_due_at_10_pm_client_time_is_held_until_8_am(
    app: Starlette, signed_in, make_staff, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=SEATTLE)  # no time zone on the record: the number's region says Los Angeles
    ten_pm = tomorrow_at(22, LOS_ANGELES)
    eight_am = ten_pm.replace(hour=8) + timedelta(days=1)
    scheduled = await schedule(supervisor, made.case_id, ten_pm)
    assert scheduled["error_message"].startswith("Held for quiet hours until 8:00 a.m. client time")
    assert "America/Los_Angeles" in scheduled["error_message"]

    [item] = (await supervisor.get("/api/v1/queue")).json()
    assert datetime.fromisoformat(item["held_until"]) == eight_am

    staff = await signed_in(await make_staff("supervisor"))
    page = words((await staff.get("/queue")).text)
    assert "held for quiet hours until 8:00 a.m. client time" in page.lower()
    thread = words((await staff.get(f"/conversations/{scheduled['conversation_id']}")).text)
    assert "Held for quiet hours until 8:00 a.m. client time" in thread  # the bubble's status says so

    outbox = app.state.outbox
    assert await send_due(outbox, now=ten_pm + timedelta(minutes=1)) == 0
    assert await send_due(outbox, now=eight_am - timedelta(minutes=1)) == 0
    assert fake_twilio.requests == []
    assert (await Message.get(id=scheduled["id"])).status == MessageStatus.SCHEDULED
    assert await send_due(outbox, now=eight_am) == 1
    assert [r["To"] for r in fake_twilio.requests] == [SEATTLE]
    assert (await Message.get(id=scheduled["id"])).error_message is None  # the hold note is gone once it went


async def test_a_due_text_that_falls_into_quiet_hours_says_so_once_and_live(
    app: Starlette, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    evening = tomorrow_at(20, NEW_YORK, 30)  # inside the window when scheduled
    scheduled = await schedule(supervisor, made.case_id, evening)
    assert scheduled["error_message"] is None
    await Organisation.all().update(quiet_hours_end=20)  # the admin narrows the window meanwhile
    async with Events(app) as events:
        assert await send_due(app.state.outbox, now=evening + timedelta(minutes=1)) == 0
        assert await send_due(app.state.outbox, now=evening + timedelta(minutes=2)) == 0
        published = await events.drain()
    message = await Message.get(id=scheduled["id"])
    assert message.status == MessageStatus.SCHEDULED
    assert (message.error_message or "").startswith("Held for quiet hours until 8:00 a.m. client time")
    assert [e.message_id for e in published if isinstance(e, MessageStatusChanged)] == [message.id]


def _zone_where_it_is_now(hour: int) -> str:
    """An Etc/GMT zone in which the local hour is `hour` right now (Etc names invert the sign)."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


async def test_a_hand_sent_text_at_11_pm_client_time_goes_at_once(
    app: Starlette, make_case, supervisor: httpx.AsyncClient, signed_in, make_staff, fake_twilio: FakeTwilio
) -> None:
    zone = _zone_where_it_is_now(23)
    made = await make_case(phone=MARIA)
    await Client.filter(id=made.client_id).update(time_zone=zone)
    window = await quiet_hours.current_window()
    now = datetime.now(UTC)
    assert not window.is_open(now, ZoneInfo(zone))  # it is 11 p.m. for the client

    by_api = await supervisor.post(
        "/api/v1/messages", json={"case_id": made.case_id, "body": "Your hearing moved to 9 a.m."}
    )
    assert by_api.status_code == 201 and by_api.json()["status"] != "scheduled"
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/cases/{made.case_id}/text")
    by_page = await staff.post(f"/cases/{made.case_id}/text", {"body": "Call me back tonight.", "to": MARIA})
    assert by_page.status_code == 303
    assert [r["Body"] for r in fake_twilio.requests] == ["Your hearing moved to 9 a.m.", "Call me back tonight."]

    # The same client, a text scheduled a minute ahead: that one waits for the morning.
    scheduled = await schedule(supervisor, made.case_id, now + timedelta(minutes=1))
    assert await send_due(app.state.outbox, now=now + timedelta(minutes=2)) == 0
    assert scheduled["error_message"].startswith("Held for quiet hours until 8:00 a.m. client time")


# ---------------------------------------------------------------- the rule itself


def test_the_time_zone_comes_from_the_numbers_region() -> None:
    assert quiet_hours.zone_for_number(SEATTLE, "America/New_York") == "America/Los_Angeles"
    assert quiet_hours.zone_for_number(LONDON, "America/New_York") == "Europe/London"
    assert quiet_hours.zone_for_number(MARIA, "America/Chicago") == "America/New_York"
    assert quiet_hours.zone_for_number("+13125550100", "America/New_York") == "America/Chicago"
    # Toll-free spans every NANP zone: the organisation's when it is one of them, else the first listed.
    assert quiet_hours.zone_for_number("+18005550100", "America/Denver") == "America/Denver"
    assert quiet_hours.zone_for_number("+18005550100", "Europe/Paris") == "America/Adak"
    assert quiet_hours.zone_for_number("not a number", "America/Denver") == "America/Denver"


def test_a_zone_on_the_client_record_wins_and_a_bad_one_is_ignored() -> None:
    assert quiet_hours.choose_zone(["America/Phoenix"], SEATTLE, "America/New_York") == "America/Phoenix"
    assert quiet_hours.choose_zone(["Pacific Time", None], SEATTLE, "America/New_York") == "America/Los_Angeles"
    assert quiet_hours.choose_zone([], "+999", "America/Denver") == "America/Denver"


async def test_zones_for_texts_prefer_the_cases_client(app, make_case) -> None:
    shared = await make_case(phone=SEATTLE, name="Ana")
    other = await make_case(phone=SEATTLE, name="Ben")
    await Client.filter(id=other.client_id).update(time_zone="America/Denver")
    recipients = [
        quiet_hours.Recipient(1, SEATTLE, shared.case_id),  # Ana has none: Ben's record for the same number
        quiet_hours.Recipient(2, SEATTLE, other.case_id),
        quiet_hours.Recipient(3, LONDON, None),
    ]
    assert await quiet_hours.zones_for(recipients, "America/New_York") == {
        1: "America/Denver",
        2: "America/Denver",
        3: "Europe/London",
    }


def test_the_window_opens_and_closes_on_the_hour() -> None:
    window = Window(8, 21, "America/New_York")
    day = datetime(2026, 11, 21, tzinfo=LOS_ANGELES)
    assert not window.is_open(day.replace(hour=7, minute=59), LOS_ANGELES)
    assert window.is_open(day.replace(hour=8), LOS_ANGELES)
    assert window.is_open(day.replace(hour=20, minute=59), LOS_ANGELES)
    assert not window.is_open(day.replace(hour=21), LOS_ANGELES)
    assert window.opens_at(day.replace(hour=22), LOS_ANGELES) == datetime(2026, 11, 22, 8, tzinfo=LOS_ANGELES)
    assert window.opens_at(day.replace(hour=3), LOS_ANGELES) == datetime(2026, 11, 21, 8, tzinfo=LOS_ANGELES)
    noon = day.replace(hour=12)
    assert window.opens_at(noon, LOS_ANGELES) == noon
    # Across a daylight-saving change the window still opens at 8 local time.
    spring = datetime(2026, 3, 7, 22, tzinfo=NEW_YORK)
    assert window.opens_at(spring, NEW_YORK) == datetime(2026, 3, 8, 8, tzinfo=NEW_YORK)
    assert window.opens_at(spring, NEW_YORK) == datetime(2026, 3, 8, 12, tzinfo=UTC)  # 8 a.m. EDT, UTC-4


def test_a_hold_is_said_in_the_clients_time() -> None:
    hold = Hold(datetime(2026, 11, 22, 16, tzinfo=UTC), "America/Los_Angeles")
    assert hold.describe() == "held for quiet hours until 8:00 a.m. client time (Sun 22 Nov, America/Los_Angeles)"
    assert hold.note.startswith("Held for quiet hours until 8:00 a.m. client time")
    window = Window(8, 21)
    late = datetime(2026, 11, 22, 6, tzinfo=UTC)  # 10 p.m. in Los Angeles
    assert quiet_hours.hold_for(late, "America/Los_Angeles", window, now=late - timedelta(days=1)) == hold
    assert (
        quiet_hours.hold_for(late, "Europe/London", window, now=late - timedelta(days=1)) is not None
    )  # 6 a.m. in London
    assert quiet_hours.hold_for(late, "Asia/Tokyo", window, now=late - timedelta(days=1)) is None  # 3 p.m. in Tokyo


# ---------------------------------------------------------------- the setting


async def test_admins_set_the_quiet_hours(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    page = await admin.get("/admin/quiet-hours")
    assert page.status_code == 200 and 'value="8"' in page.text and 'value="21"' in page.text
    bad = await admin.post("/admin/quiet-hours", {"start": "21", "end": "8", "time_zone": "Mars/Olympus"})
    assert bad.status_code == 422
    assert "must end after it starts" in words(bad.text) and "IANA name" in words(bad.text)
    assert 'value="Mars/Olympus"' in bad.text
    ok = await admin.post("/admin/quiet-hours", {"start": "9", "end": "20", "time_zone": "America/Chicago"})
    assert ok.status_code == 303
    org = await Organisation.first()
    assert (org.quiet_hours_start, org.quiet_hours_end, org.time_zone) == (9, 20, "America/Chicago")
    advocate = await signed_in(await make_staff("advocate"))
    assert (await advocate.get("/admin/quiet-hours")).status_code == 403
    assert (
        await advocate.post("/admin/quiet-hours", {"start": "0", "end": "24", "time_zone": "UTC"})
    ).status_code == 403
    assert (await Organisation.first()).quiet_hours_start == 9
