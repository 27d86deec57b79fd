"""Twilio's webhooks: signatures, raw payloads first, de-duplication, TwiML, status ordering."""

from __future__ import annotations

import httpx
import pytest

from inbox.models import Conversation, Message, MessageStatus, MessageStatusEvent, WebhookPayload
from tests.support.webhooks import inbound_params, post_text, signed_post_args, status_callback, status_params

SID = "SM" + "a" * 32


async def test_signed_inbound_is_stored_and_answered_with_empty_twiml(anonymous: httpx.AsyncClient, make_case) -> None:
    await make_case(phone="+14045387319")
    response = await post_text(anonymous, sid=SID)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.strip().endswith("<Response/>")
    message = await Message.get(provider_sid=SID).prefetch_related("conversation")
    assert message.direction == "inbound" and message.status == MessageStatus.RECEIVED
    assert message.body == "Which courtroom?"
    assert message.conversation.phone == "+14045387319"
    payload = await WebhookPayload.get(provider_sid=SID)
    assert payload.params["Body"] == "Which courtroom?" and payload.processed_at is not None


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, {"X-Twilio-Signature": ""}],
    ids=["missing", "forged", "empty"],
)
async def test_unsigned_or_forged_inbound_is_refused_and_stores_nothing(
    anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await anonymous.post(
        "/webhooks/twilio/messages", data=inbound_params(SID, "+14045387319", "hi"), headers=headers
    )
    assert response.status_code == 403
    assert await WebhookPayload.all().count() == 0
    assert await Message.all().count() == 0


async def test_signature_from_another_token_or_tampered_body_is_refused(anonymous: httpx.AsyncClient) -> None:
    wrong_token = signed_post_args(
        "/webhooks/twilio/messages", inbound_params(SID, "+14045387319", "hi"), token="other-token"
    )
    assert (await anonymous.post(**wrong_token)).status_code == 403
    tampered = signed_post_args("/webhooks/twilio/messages", inbound_params(SID, "+14045387319", "hi"))
    tampered["data"] = {**tampered["data"], "Body": "changed on the way"}
    assert (await anonymous.post(**tampered)).status_code == 403
    assert await Message.all().count() == 0


async def test_signature_covers_the_query_string(anonymous: httpx.AsyncClient) -> None:
    args = signed_post_args(
        "/webhooks/twilio/messages", inbound_params(SID, "+14045387319", "hi"), query="channel=1&x=a%20b"
    )
    assert (await anonymous.post(**args)).status_code == 200
    args["url"] = "/webhooks/twilio/messages?channel=2&x=a%20b"
    assert (await anonymous.post(**args)).status_code == 403


async def test_replayed_webhook_creates_nothing_new(anonymous: httpx.AsyncClient) -> None:
    first = await post_text(anonymous, sid=SID)
    again = await post_text(anonymous, sid=SID)
    assert first.status_code == again.status_code == 200
    assert again.headers["content-type"].startswith("text/xml")
    assert await Message.filter(provider_sid=SID).count() == 1
    assert await Conversation.all().count() == 1
    payloads = await WebhookPayload.filter(provider_sid=SID).order_by("id")
    assert len(payloads) == 2 and payloads[1].error == "duplicate"


async def test_unknown_sender_opens_an_unmatched_conversation(anonymous: httpx.AsyncClient) -> None:
    await post_text(anonymous, "+14045550199", "Is this legal aid?", sid=SID)
    conversation = await Conversation.get(phone="+14045550199")
    assert conversation.last_message_preview == "Is this legal aid?"


async def test_extra_unknown_parameters_are_accepted_and_kept(anonymous: httpx.AsyncClient) -> None:
    response = await post_text(anonymous, sid=SID, FromCity="ATLANTA", SomethingNew="42")
    assert response.status_code == 200
    assert (await WebhookPayload.get(provider_sid=SID)).params["SomethingNew"] == "42"


async def sent_message(api_client, make_staff, make_case, fake_twilio) -> Message:
    fake_twilio.callbacks_enabled = False
    supervisor = await make_staff("supervisor")
    case = await make_case()
    client = await api_client(supervisor)
    response = await client.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Your hearing is Monday."})
    assert response.status_code == 201, response.text
    return await Message.get(id=response.json()["id"])


async def test_status_callbacks_build_the_timeline_and_never_move_backwards(
    anonymous, api_client, make_staff, make_case, fake_twilio
) -> None:
    message = await sent_message(api_client, make_staff, make_case, fake_twilio)
    for status in ("sent", "delivered", "sent"):
        response = await anonymous.post(**status_callback(message.provider_sid, status))
        assert response.status_code == 200 and response.text == ""
    await message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    steps = [step.status for step in await MessageStatusEvent.filter(message=message).order_by("id")]
    assert steps == ["queued", "sent", "delivered"]


async def test_failed_callback_records_the_error_and_its_meaning(
    anonymous, api_client, make_staff, make_case, fake_twilio
) -> None:
    message = await sent_message(api_client, make_staff, make_case, fake_twilio)
    await anonymous.post(**status_callback(message.provider_sid, "undelivered", "30003"))
    await message.refresh_from_db()
    assert message.status == MessageStatus.UNDELIVERED and message.error_code == 30003
    assert "unreachable" in (message.error_message or "").lower()


async def test_forged_status_callback_is_refused(anonymous, api_client, make_staff, make_case, fake_twilio) -> None:
    message = await sent_message(api_client, make_staff, make_case, fake_twilio)
    response = await anonymous.post(
        "/webhooks/twilio/status",
        data=status_params(message.provider_sid, "delivered"),
        headers={"X-Twilio-Signature": "AAAA"},
    )
    assert response.status_code == 403
    await message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert await WebhookPayload.filter(kind="status").count() == 0


async def test_callback_for_a_sid_not_yet_stored_is_kept_and_applied_later(
    anonymous, api_client, make_staff, make_case, fake_twilio
) -> None:
    early_sid = "SM" + "e" * 32
    response = await anonymous.post(**status_callback(early_sid, "sent"))
    assert response.status_code == 200
    payload = await WebhookPayload.get(provider_sid=early_sid)
    assert payload.processed_at is None


async def test_the_form_is_read_as_twilio_encoded_it(anonymous: httpx.AsyncClient, make_case) -> None:
    """Plus signs, %-escapes, accents, an emoji, an empty field: the signature matches only if every byte of
    every value is read back as Twilio had it, and the text is stored exactly so."""
    await make_case(phone="+14045387319")
    body = "1 + 1 = 2 & 100% sure; café 🙂 a+b%2Bc"
    params = inbound_params(SID, "+14045387319", body, MessagingServiceSid="", ToCity="")
    assert (await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params))).status_code == 200
    assert (await Message.get(provider_sid=SID)).body == body
    assert (await WebhookPayload.get(provider_sid=SID)).params == params


async def test_a_form_with_more_fields_than_any_webhook_is_refused(anonymous: httpx.AsyncClient) -> None:
    params = {**inbound_params(SID, "+14045387319", "hi"), **{f"Extra{n}": "x" for n in range(1000)}}
    response = await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params))
    assert response.status_code == 400
    assert "more than 1000 fields" in response.text
    assert await WebhookPayload.all().count() == 0
