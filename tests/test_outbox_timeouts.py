"""A send that times out is "unknown", not "failed" (issue 8): Twilio took the text but its answer came
too late. The retry asks Twilio first, adopts the SID it finds, and applies the status callbacks that
arrived while we did not know it. Its own module: the app here gives Twilio half a second."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette

from inbox.models import Message, MessageStatus, SendAttempt, WebhookPayload
from inbox.settings import Settings
from inbox.worker import send_due
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import outcomes
from tests.support.records import MARIA, MakeCase

SEND_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(send_timeout_seconds=SEND_TIMEOUT_SECONDS)


async def test_a_send_that_times_out_but_was_accepted_is_adopted_and_ends_delivered(
    app: Starlette, make_case: MakeCase, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    fake_twilio.hold_gate[MARIA] = asyncio.Event()  # never opened: Twilio takes the text, its answer never comes
    response = await supervisor.post("/api/v1/messages", json={"case_id": made.case_id, "body": "Hearing at 9."})
    assert response.status_code == 201, response.text
    sent_id = response.json()["id"]

    # The hand-over after the answer timed out: unknown, waiting to be looked up, not failed.
    unknown = await Message.get(id=sent_id)
    assert unknown.status == MessageStatus.QUEUED and unknown.provider_sid is None and unknown.outcome_unknown
    assert fake_twilio.count_to(MARIA) == 1
    # Twilio's callbacks for its SID arrive meanwhile: kept, waiting for their message.
    await fake_twilio.callbacks_done()
    sid = fake_twilio.messages[0]["sid"]
    assert await WebhookPayload.filter(kind="status", provider_sid=sid, processed_at=None).count() == 2
    assert (await Message.get(id=sent_id)).status == MessageStatus.QUEUED

    assert unknown.next_attempt_at is not None
    assert await send_due(app.state.outbox, now=unknown.next_attempt_at) == 1
    assert fake_twilio.count_to(MARIA) == 1  # looked up (Twilio's list), never created twice
    assert any(query.get("To") == MARIA for query in fake_twilio.list_queries)
    adopted = await Message.get(id=sent_id)
    assert adopted.provider_sid == sid and adopted.status == MessageStatus.DELIVERED and adopted.outbox_state is None
    assert await outcomes(sent_id) == ["unknown", "accepted"]
    accepted = await SendAttempt.filter(message_id=sent_id).order_by("-id").first()
    assert accepted is not None and "found by looking it up" in accepted.detail
    assert not await WebhookPayload.filter(kind="status", provider_sid=sid, processed_at=None).exists()
