"""Data integrity: linking cannot move a known number onto another client's case; senders that are not
phone numbers are kept as they came; input longer than its column is a 422 naming the field, never a
500 (PostgreSQL refuses an over-long value; SQLite would quietly keep it, so both runs check the answer)."""

from __future__ import annotations

import logging
from datetime import datetime
from html import unescape
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from inbox.models import (
    Case,
    CaseNote,
    Channel,
    ClientPhone,
    ConsentEvent,
    Conversation,
    Media,
    MediaStatus,
    Message,
    MessageLink,
    MessageStatus,
    Organisation,
    WebhookPayload,
)
from inbox.services.directory import create_assignment
from tests.support.config import ACCOUNT_SID, FROM_NUMBER
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA
from tests.support.webhooks import inbound_params, is_empty_twiml, post_text, signed_post_args

ZED = "+17705550123"
WHATSAPP = "whatsapp:+14155550100"
LONGEST = "x" * 59 + ":1234"  # 64 characters: the most a sender column keeps


# ---------------------------------------------------------------- linking a conversation to a client


async def test_linking_a_known_clients_number_to_another_case_is_refused_and_changes_nothing(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    attacker = await make_staff("advocate", name="Ann Attacker")
    other = await make_staff("advocate", name="Otto Other")
    maria = await make_case(phone=MARIA, assignee=attacker, name="Maria Lopez")
    zed = await make_case(phone=ZED, assignee=attacker, name="Zed Client")
    await create_assignment(case_id=zed.case_id, staff_email=other.email)  # Otto: Zed's case, not Maria's
    for n in range(3):
        assert is_empty_twiml(await post_text(anonymous, MARIA, f"Private text {n} about my eviction"))
    conversation = await Conversation.get(phone=MARIA)
    links_before = sorted(await MessageLink.all().values_list("message_id", "case_id", "reason"))
    notes_before = await CaseNote.all().count()

    browser = await signed_in(attacker)
    await browser.get(f"/conversations/{conversation.id}")
    refused = await browser.post(f"/conversations/{conversation.id}/link", {"case_number": zed.number})

    assert refused.status_code == 409
    page = unescape(refused.text)
    assert "already on a client record" in page and "Nothing was changed" in page
    assert 'role="alert"' in refused.text
    # The whole page comes back, the conversation list included.
    assert f'id="conversation-{conversation.id}"' in refused.text and "No conversations." not in page
    # Nothing moved: Maria's number is on her record only, no text was filed on Zed's case.
    assert await ClientPhone.filter(number=MARIA).values_list("client_id", flat=True) == [maria.client_id]
    assert sorted(await MessageLink.all().values_list("message_id", "case_id", "reason")) == links_before
    assert not await MessageLink.exists(case_id=zed.case_id)
    assert await CaseNote.all().count() == notes_before
    # And Otto, on Zed's case only, gained nothing.
    otto = await signed_in(other)
    assert (await otto.get(f"/conversations/{conversation.id}")).status_code == 404
    assert "eviction" not in (await otto.get("/")).text
    assert "eviction" not in (await otto.get(f"/cases/{zed.case_id}")).text


async def test_linking_a_sender_that_is_no_phone_number_is_refused(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    case = await make_case(phone=MARIA)
    await post_text(anonymous, WHATSAPP, "Hola, soy Maria")
    conversation = await Conversation.get(phone=WHATSAPP)
    supervisor = await signed_in(await make_staff("supervisor"))
    page = await supervisor.get(f"/conversations/{conversation.id}")
    assert f'action="/conversations/{conversation.id}/link"' not in page.text  # no form to offer
    assert "not a phone number" in page.text

    refused = await supervisor.post(f"/conversations/{conversation.id}/link", {"case_number": case.number})
    assert refused.status_code == 409 and "Only a phone number can join" in unescape(refused.text)
    assert not await ClientPhone.exists(number=WHATSAPP)
    assert not await MessageLink.exists(case_id=case.case_id)


# ---------------------------------------------------------------- senders that are not phone numbers


@pytest.mark.parametrize(
    "sender",
    [WHATSAPP, "messenger:4045387319", "CourtAlert", LONGEST],
    ids=["whatsapp", "messenger-with-a-clients-digits", "named-sender", "64-characters"],
)
async def test_a_sender_that_is_no_phone_number_is_stored_and_shown_as_it_came(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient, sender: str
) -> None:
    await make_case(phone=MARIA)  # messenger:4045387319 carries Maria's digits: it must not become her number
    response = await post_text(anonymous, sender, "Where is my court date?", To=f"whatsapp:{FROM_NUMBER}")
    assert is_empty_twiml(response)

    message = await Message.get(body="Where is my court date?").prefetch_related("conversation")
    assert message.from_number == sender and message.conversation.phone == sender
    assert message.to_number == f"whatsapp:{FROM_NUMBER}" and message.status == MessageStatus.RECEIVED
    assert not await MessageLink.exists(message=message)  # unmatched: the value is on no client record

    supervisor = await signed_in(await make_staff("supervisor"))
    unmatched = await supervisor.get("/?filter=unmatched")
    assert sender in unescape(unmatched.text) and "Where is my court date?" in unmatched.text
    thread = unescape((await supervisor.get(f"/conversations/{message.conversation_id}")).text)
    assert sender in thread and "(404) 538-7319" not in thread and "(415) 555-0100" not in thread


async def test_a_sender_longer_than_its_column_is_refused_stored_raw_and_answered(
    anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    sender = "whatsapp:" + "9" * 56  # 65 characters
    with caplog.at_level(logging.WARNING, logger="inbox.services.inbound"):
        response = await post_text(anonymous, sender, "Hello?")
    assert is_empty_twiml(response)  # answered: Twilio does not retry it for ever
    payload = await WebhookPayload.get(kind="message")
    assert payload.params["From"] == sender and payload.processed_at is not None
    assert payload.error == "From is 65 characters long; at most 64 are kept."
    assert not await Message.exists() and not await Conversation.exists()
    assert "From is 65 characters long" in caplog.text


async def test_a_message_sid_longer_than_its_column_is_kept_in_the_payload(anonymous: httpx.AsyncClient) -> None:
    sid = "SM" + "a" * 70
    params = inbound_params(sid, MARIA, "Hello?")
    response = await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params))
    assert is_empty_twiml(response)
    payload = await WebhookPayload.get(kind="message")
    assert payload.params["MessageSid"] == sid and payload.provider_sid is None
    assert payload.error == "MessageSid is 72 characters long; at most 64 are kept."
    assert not await Message.exists()

    status = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER}
    answered = await anonymous.post(**signed_post_args("/webhooks/twilio/status", status))
    assert answered.status_code == 200
    kept = await WebhookPayload.get(kind="status")
    assert kept.params["MessageSid"] == sid and kept.error == "MessageSid is 72 characters long; at most 64 are kept."


async def test_a_reply_to_a_sender_that_is_no_phone_number_is_refused_before_twilio(
    signed_in, make_staff, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    assert is_empty_twiml(await post_text(anonymous, WHATSAPP, "Hola, soy Maria"))
    conversation = await Conversation.get(phone=WHATSAPP)
    supervisor = await signed_in(await make_staff("supervisor"))
    await supervisor.get(f"/conversations/{conversation.id}")
    refused = await supervisor.post(
        f"/conversations/{conversation.id}/messages",
        {"body": "Hola Maria"},
        csrf=False,
        headers={"HX-Request": "true", "X-CSRF-Token": supervisor.csrf},
    )
    assert refused.status_code == 409
    assert "is not a phone number, so it cannot be texted" in unescape(refused.text)
    assert "Hola Maria" in refused.text  # the composer keeps what was typed
    assert fake_twilio.requests == [] and await Message.filter(direction="outbound").count() == 0


async def test_stop_from_a_whatsapp_sender_opts_that_address_out_and_is_not_answered(
    app: Starlette, signed_in, make_staff, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    # This number does not rely on Twilio for STOP: we would confirm it — but not to an address our
    # SMS number cannot text.
    await Channel.filter(id=app.state.channel.id).update(twilio_handles_opt_out=False)
    assert is_empty_twiml(await post_text(anonymous, WHATSAPP, "STOP"))

    (row,) = await ConsentEvent.filter(number=WHATSAPP)
    assert row.opted_out and row.client_phone_id is None and row.detail == "the client texted STOP"
    assert fake_twilio.requests == [] and await Message.filter(direction="outbound").count() == 0
    supervisor = await signed_in(await make_staff("supervisor"))
    conversation = await Conversation.get(phone=WHATSAPP)
    thread = unescape((await supervisor.get(f"/conversations/{conversation.id}")).text)
    assert "Opted out: the client texted STOP" in thread and WHATSAPP in thread


async def test_a_status_callback_naming_a_whatsapp_address_is_kept_and_answered(
    anonymous: httpx.AsyncClient,
) -> None:
    """We never text such an address (a reply is refused before Twilio), but a callback naming one, e.g.
    for a text another system sent from the same account, is kept and answered, never a 500."""
    sid = "SM" + "7" * 32
    status = {
        "MessageSid": sid,
        "MessageStatus": "delivered",
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{FROM_NUMBER}",
        "To": WHATSAPP,
    }
    assert (await anonymous.post(**signed_post_args("/webhooks/twilio/status", status))).status_code == 200
    kept = await WebhookPayload.get(kind="status")
    assert kept.params["To"] == WHATSAPP and kept.provider_sid == sid
    assert not await Message.exists()


async def test_an_attachment_address_longer_than_its_column_is_refused_and_the_text_kept(
    anonymous: httpx.AsyncClient,
) -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/" + "M" * 1000
    response = await post_text(anonymous, MARIA, "Photo of the letter", NumMedia="1", MediaUrl0=url)
    assert is_empty_twiml(response)
    (item,) = await Media.all()
    assert item.status == MediaStatus.REFUSED and item.source_url is None and "too long" in (item.error or "")
    assert (await Message.get(id=item.message_id)).body == "Photo of the letter"


async def test_a_case_note_author_longer_than_its_column_is_clipped(make_case, anonymous: httpx.AsyncClient) -> None:
    # Two clients share the number; with long names the note's "who" is longer than the column.
    await make_case(phone=MARIA, name="Maria " + "L" * 180)
    await make_case(phone=MARIA, name="Housemate " + "H" * 180)
    assert is_empty_twiml(await post_text(anonymous, MARIA, "We both got the letter"))
    notes = await CaseNote.all()
    assert len(notes) == 2 and all(len(note.author) == 200 and note.author.endswith("…") for note in notes)


# ---------------------------------------------------------------- over-long input: 422, never 500


async def test_an_over_long_case_number_and_client_fields_are_422_naming_the_field(make_staff, api_client) -> None:
    api = await api_client(await make_staff("supervisor"))
    client = await api.post(
        "/api/v1/clients",
        json={"name": "N" * 201, "external_id": "E" * 101, "preferred_language": "l" * 21, "phones": []},
    )
    assert client.status_code == 422, client.text
    assert set(client.json()["fields"]) == {"name", "external_id", "preferred_language"}
    assert "200 characters" in client.json()["fields"]["name"]

    made = await api.post("/api/v1/clients", json={"name": "Maria Lopez", "phones": []})
    case = await api.post(
        "/api/v1/cases",
        json={
            "number": "1" * 51,
            "title": "T" * 301,
            "client_id": made.json()["id"],
            "legal_problem": "P" * 201,
            "office": "O" * 201,
            "external_id": "E" * 101,
        },
    )
    assert case.status_code == 422, case.text
    fields = case.json()["fields"]
    assert set(fields) == {"number", "title", "legal_problem", "office", "external_id"}
    assert fields["number"] == "Keep it to 50 characters; this has 51."
    assert not await Case.exists()


async def test_over_long_settings_are_422_on_the_page_with_the_field(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/settings")
    settings = {"name": "A" * 201, "char_limit": "160", "linking_policy": "default", "alert_policy": "primary"}
    refused = await admin.post("/admin/settings", settings)
    assert refused.status_code == 422 and "Keep it to 200 characters" in refused.text
    assert (await Organisation.first()).name != "A" * 201

    await admin.get("/admin/quiet-hours")
    zone = await admin.post("/admin/quiet-hours", {"start": "8", "end": "21", "time_zone": "America/" + "x" * 300})
    assert zone.status_code == 422 and "Keep it to 64 characters" in zone.text


async def test_an_over_long_time_zone_on_the_channel_form_is_422(signed_in, make_staff) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/channels/new")
    form = {
        "label": "L" * 101,
        "account_sid": "AC" + "2" * 32,
        "auth_token": "second-office-token-7e1f0c9a4b2d",
        "from_number": "(404) 555-0123",
        "throughput": "1",
        "help_text": "Help",
        "auto_reply_mode": "off",
        "time_zone": "America/" + "x" * 300,
        "office_id": "9" * 5000,
    }
    refused = await admin.post("/admin/channels", form)
    assert refused.status_code == 422, refused.text[:500]
    assert "Keep it to 100 characters" in refused.text and "Keep it to 64 characters" in refused.text
    assert await Channel.all().count() == 1


async def test_a_browser_time_zone_too_long_for_a_file_name_is_not_a_500(
    signed_in, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    staff = await signed_in(await make_staff("supervisor"))
    await staff.get(f"/cases/{made.case_id}/text")
    response = await staff.post(
        f"/cases/{made.case_id}/schedule",
        {"body": "See you Monday.", "to": MARIA, "send_at": "2099-01-05T10:00", "time_zone": "x" * 300},
    )
    # An unknown zone is the organisation's, as when the browser sends none.
    assert response.status_code == 303, response.text
    message = await Message.get(direction="outbound")
    assert message.status == MessageStatus.SCHEDULED
    assert message.send_at == datetime(2099, 1, 5, 10, tzinfo=ZoneInfo("America/New_York"))


async def test_an_over_long_case_number_in_the_link_form_is_422_with_what_was_typed(
    signed_in, make_staff, anonymous: httpx.AsyncClient
) -> None:
    await post_text(anonymous, "+14045550199", "Hello?")
    conversation = await Conversation.get(phone="+14045550199")
    supervisor = await signed_in(await make_staff("supervisor"))
    await supervisor.get(f"/conversations/{conversation.id}")
    typed = "16E-" + "9" * 47  # 51 characters
    response = await supervisor.post(f"/conversations/{conversation.id}/link", {"case_number": typed})
    assert response.status_code == 422 and "Keep it to 50 characters" in response.text
    assert f'value="{typed}"' in response.text
    assert not await ClientPhone.exists(number="+14045550199")


async def test_an_over_long_staff_email_in_an_assignment_is_422(make_staff, make_case, api_client) -> None:
    api = await api_client(await make_staff("supervisor"))
    case = await make_case()
    response = await api.post("/api/v1/assignments", json={"case_id": case.case_id, "staff_email": "a" * 300})
    assert response.status_code == 422 and "staff_email" in response.json()["fields"]
