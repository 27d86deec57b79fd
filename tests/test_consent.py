"""Consent to text: the ledger, keywords through the real signed webhook, Twilio's 21610 from the fake
Twilio server, the opt-in request, staff and API changes, refusals that name their cause, notices in
the thread, and the same changes arriving live in open tabs (a real uvicorn stream)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from inbox.events import ConsentChanged, MessageStatusChanged
from inbox.models import (
    Alert,
    Channel,
    ClientPhone,
    ConsentEvent,
    ConsentSource,
    Conversation,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    MessageStatusEvent,
    Organisation,
)
from inbox.services import consent, system_texts
from inbox.services.keywords import OPT_IN_WORDS, OPT_OUT_WORDS, Keyword
from tests.support.api import as_it_is_now
from tests.support.config import ACCOUNT_SID, FROM_NUMBER
from tests.support.events import published
from tests.support.live import ServerEvent, browser, event_stream, signed_in_browser
from tests.support.outbox import handed_over
from tests.support.records import MARIA
from tests.support.staff import csrf_of
from tests.support.webhooks import signed_post_args, text_in

STRANGER = "+14045550199"
HOUSEMATE_PHONE = "+17705550123"


async def ledger(number: str = MARIA) -> list[ConsentEvent]:
    return await ConsentEvent.filter(number=number).order_by("at", "id")


async def state(number: str = MARIA) -> list[tuple[bool, bool]]:
    return list(await ClientPhone.filter(number=number).order_by("id").values_list("okay_to_text", "opted_out"))


async def twilio_answers_keywords(app: Starlette, answers: bool) -> Channel:
    channel = app.state.channel
    await Channel.filter(id=channel.id).update(
        twilio_handles_opt_out=answers, help_text="Legal Aid: call 404-555-0100. STOP to stop."
    )
    return await Channel.get(id=channel.id)


def in_office_zone(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo("America/New_York"))  # the organisation's default time zone
    return f"{local.day} {local:%b}"


# ---------------------------------------------------------------- the keywords


def casings(words: frozenset[str]) -> list[str]:
    return [form for word in sorted(words) for form in (word, word.lower(), f"  {word.title()} \n")]


@pytest.mark.parametrize("body", casings(OPT_OUT_WORDS))
async def test_every_opt_out_keyword_in_any_casing_opts_the_number_out(app, anonymous, make_case, body: str) -> None:
    await make_case(phone=MARIA)
    async with app.state.bus.subscribe() as subscription:
        message = await text_in(anonymous, body=body)
        events = await published(subscription)
    assert message.body == body and message.direction == Direction.INBOUND  # still stored and shown
    assert await state() == [(True, True)]
    created, stop = await ledger()
    assert created.source == ConsentSource.API and not created.opted_out
    assert (stop.source, stop.opted_out, stop.message_id) == (ConsentSource.KEYWORD, True, message.id)
    assert stop.detail == f"the client texted {body.strip().upper()}"
    (changed,) = [e for e in events if isinstance(e, ConsentChanged)]
    assert (changed.phone, changed.opted_out, changed.message_id) == (MARIA, True, message.id)
    assert changed.conversation_ids == [message.conversation_id] and changed.consent_event_ids == [stop.id]
    assert await consent.keyword_of(message) == Keyword.OPT_OUT


@pytest.mark.parametrize("body", casings(OPT_IN_WORDS))
async def test_every_opt_in_keyword_opts_the_number_back_in(anonymous, make_case, body: str) -> None:
    await make_case(phone=MARIA, okay_to_text=False)
    await text_in(anonymous, body="STOP")
    message = await text_in(anonymous, body=body)
    assert await state() == [(True, False)]
    last = (await ledger())[-1]
    assert (last.source, last.okay_to_text, last.opted_out, last.message_id) == (
        ConsentSource.KEYWORD,
        True,
        False,
        message.id,
    )


@pytest.mark.parametrize(
    "body",
    [
        "STOP PLEASE",
        "stopped",
        "Please stop",
        "unstoppable",
        "STOP!",
        "S T O P",
        "HELP ME",
        "yes please",
        "starting",
        "Y",
    ],
)
async def test_near_misses_change_nothing(anonymous, make_case, fake_twilio, body: str) -> None:
    await make_case(phone=MARIA)
    message = await text_in(anonymous, body=body)
    assert await state() == [(True, False)]
    assert [row.source for row in await ledger()] == [ConsentSource.API]
    assert await consent.keyword_of(message) is None
    assert fake_twilio.requests == []


async def test_twilios_opt_out_type_is_honoured_whatever_the_body(app, anonymous, make_case, fake_twilio) -> None:
    await twilio_answers_keywords(app, False)  # an OptOutType shows Twilio answered anyway: no second answer
    await make_case(phone=MARIA)
    arret = await text_in(anonymous, body="Arrêt, s'il vous plaît", OptOutType="STOP")
    assert await state() == [(True, True)]
    stop = (await ledger())[-1]
    assert (stop.source, stop.opted_out, stop.message_id) == (ConsentSource.PROVIDER, True, arret.id)
    assert "OptOutType STOP" in stop.detail
    assert await consent.keyword_of(arret, "STOP") == Keyword.OPT_OUT

    await text_in(anonymous, body="Ok, je reviens", OptOutType="start")
    assert await state() == [(True, False)]
    await text_in(anonymous, body="aide", OptOutType="HELP")
    assert fake_twilio.requests == []


async def test_a_stop_with_opt_out_type_counts_as_the_clients_own_keyword(anonymous, make_case) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, body="stop", OptOutType="STOP")
    assert (await ledger())[-1].source == ConsentSource.KEYWORD


async def test_two_clients_sharing_a_number_are_both_opted_out_with_one_notice(
    app, anonymous, make_case, make_staff, signed_in
) -> None:
    maria = await make_case(phone=MARIA, name="Maria Lopez")
    housemate = await make_case(phone=MARIA, name="Hidden Housemate")
    async with app.state.bus.subscribe() as subscription:
        message = await text_in(anonymous, body="Stop")
        events = await published(subscription)
    assert await state() == [(True, True), (True, True)]
    rows = [row for row in await ledger() if row.source == ConsentSource.KEYWORD]
    assert sorted(
        await ClientPhone.filter(id__in=[r.client_phone_id for r in rows]).values_list("client_id", flat=True)
    ) == sorted([maria.client_id, housemate.client_id])
    assert len({row.at for row in rows}) == 1  # one change, one moment
    (changed,) = [e for e in events if isinstance(e, ConsentChanged)]
    assert sorted(changed.consent_event_ids) == sorted(r.id for r in rows)

    supervisor = await signed_in(await make_staff("supervisor"))
    page = unescape((await supervisor.get(f"/conversations/{message.conversation_id}")).text)
    notices = re.findall(r'class="notice consent-notice".*?<p class="body">(.*?)</p>', page, re.DOTALL)
    assert notices == ["Okay to text: client created through the API"] * 2 + ["Opted out: the client texted STOP"]


# ---------------------------------------------------------------- answers to keywords


async def test_twilio_answers_keywords_itself_by_default_so_we_send_nothing(anonymous, make_case, fake_twilio) -> None:
    await make_case(phone=MARIA)
    for body in ("HELP", "INFO", "STOP", "START"):
        await text_in(anonymous, body=body)
    assert fake_twilio.requests == []
    assert not await Message.filter(direction=Direction.OUTBOUND).exists()


async def test_without_twilios_handling_we_answer_help_stop_and_start(app, anonymous, make_case, fake_twilio) -> None:
    fake_twilio.callbacks_enabled = False
    channel = await twilio_answers_keywords(app, False)
    await make_case(phone=MARIA)
    await text_in(anonymous, body=" help ")
    await text_in(anonymous, body="STOP")  # the confirmation goes to a number that has just opted out
    await text_in(anonymous, body="start")
    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [
        (MARIA, channel.help_text),
        (MARIA, consent.STOP_CONFIRMATION.format(org="Case Inbox")),
        (MARIA, consent.START_CONFIRMATION.format(org="Case Inbox")),
    ]
    replies = await Message.filter(direction=Direction.OUTBOUND).order_by("id")
    assert [m.purpose for m in replies] == [
        MessagePurpose.HELP,
        MessagePurpose.STOP_CONFIRMATION,
        MessagePurpose.KEYWORD_CONFIRMATION,
    ]
    assert all(m.status == MessageStatus.QUEUED and m.provider_sid for m in replies)


async def test_help_is_answered_even_to_an_unknown_number(app, anonymous, fake_twilio) -> None:
    fake_twilio.callbacks_enabled = False
    channel = await twilio_answers_keywords(app, False)
    await text_in(anonymous, STRANGER, "INFO")
    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [(STRANGER, channel.help_text)]


# ---------------------------------------------------------------- unknown numbers


async def test_an_unknown_number_that_texted_stop_is_never_answered_until_start(
    anonymous, make_staff, api_client, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    api = await api_client(await make_staff("supervisor"))
    await text_in(anonymous, STRANGER, "Is this legal aid?")
    stop = await text_in(anonymous, STRANGER, "STOP")
    (row,) = await ledger(STRANGER)
    assert (row.client_phone_id, row.opted_out, row.source, row.message_id) == (
        None,
        True,
        ConsentSource.KEYWORD,
        stop.id,
    )

    refused = await api.post("/api/v1/messages", json={"to": STRANGER, "body": "Hello?"})
    assert refused.status_code == 409
    assert f"opted out on {in_office_zone(row.at)}: the client texted STOP" in refused.json()["error"]
    assert fake_twilio.requests == []

    await text_in(anonymous, STRANGER, "UNSTOP")
    assert (await api.post("/api/v1/messages", json={"to": STRANGER, "body": "Hello again"})).status_code == 201


async def test_an_opted_out_unknown_number_stays_opted_out_when_it_joins_a_client(
    anonymous, make_case, make_staff, signed_in, fake_twilio
) -> None:
    case = await make_case(phone="+14045550111")
    stop = await text_in(anonymous, STRANGER, "Stop")
    supervisor = await signed_in(await make_staff("supervisor", name="Sam Super"))
    await supervisor.get(f"/conversations/{stop.conversation_id}")
    linked = await supervisor.post(f"/conversations/{stop.conversation_id}/link", {"case_number": case.number})
    assert linked.status_code == 303, linked.text
    phone = await ClientPhone.get(number=STRANGER)
    assert (phone.client_id, phone.okay_to_text, phone.opted_out) == (case.client_id, False, True)
    added = (await ledger(STRANGER))[-1]
    assert (added.client_phone_id, added.source, added.opted_out) == (phone.id, ConsentSource.STAFF, True)
    assert "by Sam Super" in added.detail and "opted out before" in added.detail


# ---------------------------------------------------------------- Twilio's 21610


async def test_21610_from_twilio_is_recorded_in_the_ledger_as_the_provider(
    make_case, make_staff, api_client, fake_twilio
) -> None:
    fake_twilio.reject[MARIA] = 21610
    case = await make_case(phone=MARIA)
    api = await api_client(await make_staff("supervisor"))
    first = await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Your hearing is Monday."})
    sent = await as_it_is_now(api, first)
    assert (sent["status"], sent["error_code"]) == ("failed", 21610)
    row = (await ledger())[-1]
    assert (row.source, row.opted_out, row.message_id) == (ConsentSource.PROVIDER, True, first.json()["id"])

    client = (await api.get(f"/api/v1/clients/{case.client_id}")).json()
    assert client["phones"][0]["opted_out"] is True
    assert [(e["source"], e["opted_out"], e["message_id"]) for e in client["phones"][0]["consent_log"]] == [
        ("api", False, None),
        ("provider", True, first.json()["id"]),
    ]
    again = await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Hello again"})
    assert again.status_code == 409
    assert f"opted out on {in_office_zone(row.at)}: Twilio refused a text with error 21610" in again.json()["error"]
    assert len(fake_twilio.requests) == 1


async def test_21610_in_a_status_callback_opts_the_number_out_too(
    anonymous, make_case, make_staff, api_client, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    api = await api_client(await make_staff("supervisor"))
    sent = await as_it_is_now(
        api, await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Reminder"})
    )
    params = {
        "MessageSid": sent["provider_sid"],
        "MessageStatus": "failed",
        "ErrorCode": "21610",
        "AccountSid": ACCOUNT_SID,
        "From": FROM_NUMBER,
        "To": MARIA,
    }
    assert (await anonymous.post(**signed_post_args("/webhooks/twilio/status", params))).status_code == 200
    assert await state() == [(True, True)]
    row = (await ledger())[-1]
    assert (row.source, row.message_id) == (ConsentSource.PROVIDER, sent["id"])


# ---------------------------------------------------------------- scheduled texts


async def test_stop_cancels_every_scheduled_text_to_the_number(
    app, anonymous, make_case, make_staff, api_client, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA)
    other = await make_case(phone=HOUSEMATE_PHONE, name="Sam Okafor")
    api = await api_client(await make_staff("supervisor"))
    send_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    scheduled = []
    for body, case_id in (
        ("Reminder: hearing Monday", case.case_id),
        ("Bring your lease", case.case_id),
        ("Other client", other.case_id),
    ):
        response = await api.post("/api/v1/messages", json={"case_id": case_id, "body": body, "send_at": send_at})
        assert response.status_code == 201 and response.json()["status"] == "scheduled", response.text
        scheduled.append(response.json()["id"])

    async with app.state.bus.subscribe() as subscription:
        await text_in(anonymous, body="Cancel")
        events = await published(subscription)
    mine, untouched = scheduled[:2], scheduled[2]
    for message_id in mine:
        message = await Message.get(id=message_id)
        assert (
            message.status == MessageStatus.CANCELED and message.error_message == "Canceled: the client texted CANCEL."
        )
        steps = await MessageStatusEvent.filter(message_id=message_id).order_by("id").values_list("status", flat=True)
        assert steps[-1] == MessageStatus.CANCELED
    assert (await Message.get(id=untouched)).status == MessageStatus.SCHEDULED
    canceled = [e for e in events if isinstance(e, MessageStatusChanged)]
    assert sorted(e.message_id for e in canceled) == sorted(mine)
    assert all(e.status == "canceled" and e.case_ids == [case.case_id] for e in canceled)
    assert fake_twilio.requests == []


# ---------------------------------------------------------------- the opt-in request


async def test_an_opt_in_request_and_a_yes_reply_record_consent(
    app, anonymous, make_case, make_staff, signed_in, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA, okay_to_text=False)
    staff = await signed_in(await make_staff("supervisor", name="Sam Super"))
    phone = await ClientPhone.get(number=MARIA)
    page = await staff.get(f"/clients/{case.client_id}")
    assert "Ask for consent by text" in page.text and "not okay to text" in page.text

    asked = await staff.post(f"/clients/{case.client_id}/phones/{phone.id}/opt-in-request")
    assert asked.status_code == 303
    organisation = await Organisation.first()
    assert [(r["To"], r["Body"]) for r in fake_twilio.requests] == [(MARIA, organisation.opt_in_text)]
    request = await Message.get(purpose=MessagePurpose.OPT_IN_REQUEST)
    assert (request.to_number, request.sent_by_id, request.status) == (MARIA, staff.staff.id, MessageStatus.QUEUED)
    assert await state() == [(False, False)]  # asking is not consent
    assert "waiting for Y or YES" in (await staff.get(f"/clients/{case.client_id}")).text

    reply = await text_in(anonymous, body=" y ")
    assert await state() == [(True, False)]
    given = (await ledger())[-1]
    assert (given.source, given.message_id, given.detail) == (
        ConsentSource.REPLY,
        reply.id,
        "the client replied Y to the opt-in request",
    )
    assert await consent.keyword_of(reply) == Keyword.OPT_IN  # never auto-answered
    assert not await Alert.exists(message_id=reply.id)  # the rules answered it: nobody is waited for
    sent = await staff.post(f"/cases/{case.case_id}/text", {"body": "Thanks! Your hearing is Monday.", "to": MARIA})
    assert sent.status_code == 303

    later = await text_in(anonymous, body="Y")  # the request is answered: a second Y is just a text
    assert await consent.keyword_of(later) is None
    assert (await ledger())[-1].id == given.id


async def test_a_y_with_no_request_pending_is_just_a_text(anonymous, make_case) -> None:
    await make_case(phone=MARIA, okay_to_text=False)
    await text_in(anonymous, body="Y")
    assert await state() == [(False, False)]


async def test_yes_confirms_by_reply_and_we_confirm_a_y_twilio_would_not(
    app, anonymous, make_case, make_staff, api_client, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA, okay_to_text=False)
    staff = await make_staff("supervisor")
    phone = await ClientPhone.get(number=MARIA)
    await handed_over(app, await system_texts.send_opt_in_request(staff, case.client_id, phone.id))
    await text_in(anonymous, body="YES")  # Twilio answers YES itself (a START word)
    assert (await ledger())[-1].source == ConsentSource.REPLY
    assert len(fake_twilio.requests) == 1

    other = await make_case(phone=HOUSEMATE_PHONE, okay_to_text=False, name="Sam Okafor")
    other_phone = await ClientPhone.get(number=HOUSEMATE_PHONE)
    await handed_over(app, await system_texts.send_opt_in_request(staff, other.client_id, other_phone.id))
    await text_in(anonymous, HOUSEMATE_PHONE, "y")  # Twilio knows nothing of Y: we confirm
    assert fake_twilio.requests[-1]["Body"] == consent.REPLY_CONFIRMATION.format(org="Case Inbox")


async def test_no_opt_in_request_to_a_number_that_opted_out_or_when_turned_off(
    anonymous, make_case, make_staff, signed_in, fake_twilio
) -> None:
    case = await make_case(phone=MARIA, okay_to_text=False)
    staff = await signed_in(await make_staff("supervisor"))
    phone = await ClientPhone.get(number=MARIA)
    await staff.get(f"/clients/{case.client_id}")
    url = f"/clients/{case.client_id}/phones/{phone.id}/opt-in-request"

    await text_in(anonymous, body="QUIT")
    refused = await staff.post(url, headers={"HX-Request": "true"})
    assert (
        refused.status_code == 409
        and "opted out on" in unescape(refused.text)
        and "texted QUIT" in unescape(refused.text)
    )
    assert "Ask for consent by text" not in (await staff.get(f"/clients/{case.client_id}")).text

    await text_in(anonymous, body="START")
    await ClientPhone.filter(id=phone.id).update(okay_to_text=False)
    await Organisation.all().update(opt_in_requests=False)
    turned_off = await staff.post(url, headers={"HX-Request": "true"})
    assert turned_off.status_code == 409 and "turned off" in turned_off.text
    assert fake_twilio.requests == []
    assert not await Message.filter(direction=Direction.OUTBOUND).exists()


# ---------------------------------------------------------------- staff and the API


async def test_staff_tick_and_untick_okay_to_text_on_the_client_page(app, make_case, make_staff, signed_in) -> None:
    advocate = await make_staff("advocate", name="Alice Advocate")
    case = await make_case(phone=MARIA, okay_to_text=False, assignee=advocate)
    alice = await signed_in(advocate)
    phone = await ClientPhone.get(number=MARIA)
    url = f"/clients/{case.client_id}/phones/{phone.id}/consent"
    await alice.get(f"/clients/{case.client_id}")
    assert (await alice.post(url, {"okay_to_text": "1"}, csrf=False)).status_code == 403
    assert await state() == [(False, False)]

    async with app.state.bus.subscribe() as subscription:
        ticked = await alice.post(url, {"okay_to_text": "1"})
        events = await published(subscription)
    assert ticked.status_code == 303 and ticked.headers["location"] == f"/clients/{case.client_id}"
    assert await state() == [(True, False)]
    row = (await ledger())[-1]
    assert (row.source, row.staff_id, row.detail, row.okay_to_text) == (
        ConsentSource.STAFF,
        advocate.id,
        "ticked by Alice Advocate",
        True,
    )
    assert [type(e) for e in events] == [ConsentChanged]

    unticked = await alice.post(url, {"okay_to_text": "0"}, headers={"HX-Request": "true"})
    assert unticked.status_code == 200 and "Okay to text unticked." in unticked.text
    assert await state() == [(False, False)]

    page = unescape((await alice.get(f"/clients/{case.client_id}")).text)
    rows = re.findall(r'<tr id="consent-event-\d+">(.*?)</tr>', page, re.DOTALL)
    cells = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)] for row in rows
    ]
    # Newest first: when, what, who or what, which message.
    assert [cell[1:] for cell in cells] == [
        ["Not okay to text: unticked by Alice Advocate", "Alice Advocate", "—"],
        ["Okay to text: ticked by Alice Advocate", "Alice Advocate", "—"],
        ["Not okay to text: client created through the API", "case management system (API)", "—"],
    ]


async def test_an_advocate_cannot_touch_another_advocates_client(make_case, make_staff, signed_in) -> None:
    advocate = await make_staff("advocate")
    other = await make_case(phone=HOUSEMATE_PHONE, okay_to_text=False, name="Sam Okafor")
    mine = await make_case(phone=MARIA, assignee=advocate)
    alice = await signed_in(advocate)
    await alice.get(f"/clients/{mine.client_id}")
    phone = await ClientPhone.get(number=HOUSEMATE_PHONE)
    assert (
        await alice.post(f"/clients/{other.client_id}/phones/{phone.id}/consent", {"okay_to_text": "1"})
    ).status_code == 404
    assert (
        await alice.post(f"/clients/{mine.client_id}/phones/{phone.id}/consent", {"okay_to_text": "1"})
    ).status_code == 404
    assert await state(HOUSEMATE_PHONE) == [(False, False)]


async def test_ticking_does_not_undo_an_opt_out(anonymous, make_case, make_staff, api_client) -> None:
    case = await make_case(phone=MARIA, okay_to_text=False)
    await text_in(anonymous, body="END")
    api = await api_client(await make_staff("supervisor"))
    phone = await ClientPhone.get(number=MARIA)
    response = await api.post(
        f"/api/v1/clients/{case.client_id}/phones/{phone.id}/consent", json={"okay_to_text": True}
    )
    assert response.status_code == 200
    assert (response.json()["okay_to_text"], response.json()["opted_out"]) == (True, True)
    refused = await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Hi"})
    assert refused.status_code == 409 and "texted END" in refused.json()["error"]


async def test_the_api_records_consent_and_answers_the_ledger(app, make_staff, api_client) -> None:
    supervisor = await make_staff("supervisor", name="Sam Super")
    api = await api_client(supervisor)
    created = await api.post("/api/v1/clients", json={"name": "Maria Lopez", "phones": [{"number": "(404) 538-7319"}]})
    assert created.status_code == 201
    (phone,) = created.json()["phones"]
    (first,) = phone["consent_log"]
    assert (first["source"], first["okay_to_text"], first["opted_out"], first["message_id"]) == (
        "api",
        False,
        False,
        None,
    )
    assert first["at"].endswith("Z")

    url = f"/api/v1/clients/{created.json()['id']}/phones/{phone['id']}/consent"
    assert (await api.post(url, json={"okay_to_text": "yes"})).status_code == 422
    assert (await api.post(url, json={})).json()["fields"] == {"okay_to_text": "This field is required."}
    async with app.state.bus.subscribe() as subscription:
        answer = await api.post(url, json={"okay_to_text": True})
        events = await published(subscription)
    assert answer.status_code == 200, answer.text
    assert answer.json()["okay_to_text"] is True
    assert [e["source"] for e in answer.json()["consent_log"]] == ["api", "api"]
    row = (await ledger())[-1]
    assert (row.staff_id, row.detail) == (supervisor.id, "set through the API by Sam Super")
    (changed,) = events
    assert isinstance(changed, ConsentChanged) and changed.okay_to_text and not changed.opted_out
    assert (
        await api.post(url.replace(f"/{created.json()['id']}/", "/999/"), json={"okay_to_text": True})
    ).status_code == 404

    advocate_api = await api_client(await make_staff("advocate"))
    assert (await advocate_api.post(url, json={"okay_to_text": False})).status_code == 404


# ---------------------------------------------------------------- refusals name their cause


async def test_the_composer_and_send_text_refuse_with_the_ledgers_cause(
    anonymous, make_case, make_staff, signed_in, fake_twilio
) -> None:
    case = await make_case(phone=MARIA)
    stop = await text_in(anonymous, body="stop")
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/conversations/{stop.conversation_id}")
    composer = await staff.post(
        f"/conversations/{stop.conversation_id}/messages", {"body": "Are you there?"}, headers={"HX-Request": "true"}
    )
    expected = f"This number opted out on {in_office_zone((await ledger())[-1].at)}: the client texted STOP."
    assert composer.status_code == 409 and expected in unescape(composer.text)
    form = await staff.post(f"/cases/{case.case_id}/text", {"body": "Are you there?", "to": MARIA})
    assert form.status_code == 409 and expected in unescape(form.text)
    assert fake_twilio.requests == []


async def test_not_okay_to_text_names_who_unticked_it(make_case, make_staff, signed_in, api_client) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor", name="Sam Super"))
    phone = await ClientPhone.get(number=MARIA)
    await staff.get(f"/clients/{case.client_id}")
    await staff.post(f"/clients/{case.client_id}/phones/{phone.id}/consent", {"okay_to_text": "0"})
    api = await api_client(staff.staff)
    refused = await api.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Hi"})
    assert refused.status_code == 409
    assert (
        "not agreed to receive texts" in refused.json()["error"]
        and ": unticked by Sam Super)" in refused.json()["error"]
    )


# ---------------------------------------------------------------- the thread


async def test_notices_sit_among_the_bubbles_by_time_for_those_who_may_see_them(
    anonymous, make_case, make_staff, signed_in, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    advocate = await make_staff("advocate", name="Alice Advocate")
    supervisor = await make_staff("supervisor", name="Sam Super")
    await make_case(phone=MARIA, assignee=advocate, name="Maria Lopez")
    hidden = await make_case(phone=MARIA, name="Hidden Housemate")
    first = await text_in(anonymous, body="Which courtroom?")
    await text_in(anonymous, body="STOP")
    sam = await signed_in(supervisor)
    hidden_phone = await ClientPhone.get(client_id=hidden.client_id)
    await sam.get(f"/clients/{hidden.client_id}")
    await sam.post(f"/clients/{hidden.client_id}/phones/{hidden_phone.id}/consent", {"okay_to_text": "0"})
    await text_in(anonymous, body="START")
    last = await text_in(anonymous, body="Thanks")

    def sequence(html: str) -> list[str]:
        thread = html[html.index(f'id="thread-{first.conversation_id}"') :]
        thread = thread[: thread.index("</ol>")]
        found = re.findall(r'<p class="body">(.*?)</p>', thread, re.DOTALL)
        return [unescape(text).strip() for text in found]

    everything = sequence((await sam.get(f"/conversations/{first.conversation_id}")).text)
    assert everything == [
        "Okay to text: client created through the API",
        "Okay to text: client created through the API",
        "Which courtroom?",
        "STOP",
        "Opted out: the client texted STOP",
        "Not okay to text: unticked by Sam Super",
        "START",
        "Opted back in: the client texted START",
        "Thanks",
    ]
    alice = await signed_in(advocate)
    # Another client's record is not Alice's business; the client's own STOP and START are.
    assert sequence((await alice.get(f"/conversations/{first.conversation_id}")).text) == [
        "Okay to text: client created through the API",
        "Which courtroom?",
        "STOP",
        "Opted out: the client texted STOP",
        "START",
        "Opted back in: the client texted START",
        "Thanks",
    ]
    # A reconnecting tab re-fetches the list: the notices come with it.
    assert (
        sequence((await alice.get(f"/conversations/{first.conversation_id}/older")).text)[3]
        == "Opted out: the client texted STOP"
    )
    older = await alice.get(f"/conversations/{first.conversation_id}/older?before={last.id}")
    assert "Opted back in: the client texted START" in unescape(older.text) and "Thanks" not in older.text


# ---------------------------------------------------------------- live


def shows_consent(conversation_id: int, text: str) -> Callable[[ServerEvent], bool]:
    """An update putting a notice with `text` into the conversation's open thread."""
    return lambda event: (
        event.event == "update"
        and f"beforeend:#thread-{conversation_id}" in event.data
        and text in unescape(event.data)
    )


async def test_consent_changes_reach_open_threads_live_and_only_those_who_may_see(
    server, make_case, make_staff
) -> None:
    advocate = await make_staff("advocate", name="Alice Advocate")
    other = await make_staff("advocate")
    supervisor = await make_staff("supervisor")
    case = await make_case(phone=MARIA, assignee=advocate)
    await make_case(phone=HOUSEMATE_PHONE, assignee=other, name="Sam Okafor")
    phone = await ClientPhone.get(number=MARIA)
    async with browser(server) as twilio:
        first = await text_in(twilio, body="Hello")
        async with (
            signed_in_browser(server, advocate) as alice_http,
            signed_in_browser(server, other) as other_http,
            signed_in_browser(server, supervisor) as sam_http,
            event_stream(alice_http, "/events") as alice,
            event_stream(other_http, "/events") as stranger,
            event_stream(sam_http, "/events") as sam,
        ):
            stop = await text_in(twilio, body="STOP")
            for tab in (alice, sam):
                seen = await tab.read_until(shows_consent(first.conversation_id, "Opted out: the client texted STOP"))
                update = seen[-1].data
                assert 'id="consent-notice-' in update and f"/messages/{stop.id}" in update
                # The client pane's (and client page's) consent block is replaced where it is shown.
                block = re.search(rf'<div id="consent-state-{phone.id}"[^>]*hx-swap-oob="true"', update)
                assert block is not None and "opted out" in update
                assert f'hx-swap-oob="afterbegin:#consent-log-{phone.id}"' in update
                assert 'name="csrf_token"' not in update  # htmx sends the page's token as a header

            # Alice ticks the box from her page: the same update path as everyone else's.
            page = await alice_http.get(f"/clients/{case.client_id}")
            response = await alice_http.post(
                f"/clients/{case.client_id}/phones/{phone.id}/consent",
                data={"okay_to_text": "0"},
                headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)},
            )
            assert response.status_code == 200
            await alice.read_until(shows_consent(first.conversation_id, "Not okay to text: unticked by Alice Advocate"))

            marker = await text_in(twilio, HOUSEMATE_PHONE, "Running late")
            event = await stranger.next_event()
            assert f'id="message-{marker.id}"' in event.data and "consent" not in event.data


async def test_the_json_stream_carries_consent_changed(server, make_case, make_staff) -> None:
    from inbox.services.staff import create_api_token

    supervisor = await make_staff("supervisor")
    await make_case(phone=MARIA)
    async with browser(server) as http:
        token = await create_api_token(supervisor.email)
        async with event_stream(http, "/api/v1/events", {"Authorization": f"Bearer {token}"}) as stream:
            stop = await text_in(http, body="stop")
            seen = await stream.read_until(lambda event: event.event == "consent.changed")
    data = json.loads(seen[-1].data)
    assert (data["phone"], data["opted_out"], data["message_id"], data["conversation_ids"]) == (
        MARIA,
        True,
        stop.id,
        [stop.conversation_id],
    )
    assert data["consent_event_ids"] == [(await ledger())[-1].id]


async def test_consent_state_and_ledger_can_be_refetched(make_case, make_staff, signed_in) -> None:
    case = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    phone = await ClientPhone.get(number=MARIA)
    block = await staff.get(f"/clients/{case.client_id}/phones/{phone.id}/consent")
    assert (
        block.status_code == 200
        and f'id="consent-state-{phone.id}"' in block.text
        and 'name="csrf_token"' in block.text
    )
    table = await staff.get(f"/clients/{case.client_id}/phones/{phone.id}/ledger")
    assert table.status_code == 200 and "client created through the API" in table.text
    assert (await staff.get(f"/clients/{case.client_id}/phones/999/consent")).status_code == 404


async def test_an_opt_in_request_follows_the_conversation_it_belongs_to(
    app, anonymous, make_case, make_staff, fake_twilio
) -> None:
    fake_twilio.callbacks_enabled = False
    case = await make_case(phone=MARIA, okay_to_text=False)
    inbound = await text_in(anonymous, body="Can you text me about my case?")
    staff = await make_staff("supervisor")
    phone = await ClientPhone.get(number=MARIA)
    request = await handed_over(app, await system_texts.send_opt_in_request(staff, case.client_id, phone.id))
    assert request.conversation_id == inbound.conversation_id
    conversation = await Conversation.get(id=inbound.conversation_id)
    assert conversation.last_direction == Direction.OUTBOUND and conversation.last_message_preview.startswith(
        "We have received"
    )
