"""The outbox under faults, in-process (issue 8, "How it is tested"): the real app, the real twilio
library over real HTTP to the fake Twilio, and every claim about what left counted at the fake.

A STOP racing a batch, a 429 storm, 5xx and refused connections retried while 4xx never are, and the
consent rule at the moment a text leaves (its exceptions too), and DELETE racing a claim. Time is
moved (`send_due(now=…)`) rather than slept on; races are made deterministic with the fake's
`hold_gate`, which holds a create Twilio has already taken until the test opens it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from inbox import clock
from inbox.models import Channel, Message, MessagePurpose, MessageStatus, SendAttempt
from inbox.worker import send_due
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import no_quiet_hours, out_of_the_outbox, stored_texts, until
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff
from tests.support.webhooks import text_in

# ---------------------------------------------------------------- a STOP racing a batch


@pytest.mark.parametrize("twilio_answers_stop", [True, False], ids=["twilio-confirms", "we-confirm"])
async def test_a_stop_racing_a_batch_of_20_stops_every_text_not_yet_claimed(
    app: Starlette,
    make_case: MakeCase,
    make_staff: MakeStaff,
    fake_twilio: FakeTwilio,
    twilio: httpx.AsyncClient,
    twilio_answers_stop: bool,
) -> None:
    await no_quiet_hours()
    await Channel.filter(id=app.state.channel.id).update(twilio_handles_opt_out=twilio_answers_stop)
    made = await make_case(phone=MARIA)
    box = app.state.outbox
    when = clock.now() + timedelta(seconds=1)
    batch = await stored_texts(
        box, await make_staff("supervisor"), made.case_id, [f"Reminder {n}" for n in range(1, 21)], send_at=when
    )
    assert {m.status for m in batch} == {MessageStatus.SCHEDULED}

    # Two leave; the third is taken by Twilio and its answer held in flight while Maria texts STOP.
    assert await send_due(box, now=when, limit=2) == 2
    gate = asyncio.Event()
    fake_twilio.hold_gate[MARIA] = gate
    draining = asyncio.create_task(send_due(box, now=when))

    async def third_in_flight() -> bool:
        return fake_twilio.count_to(MARIA) == 3

    await until(third_in_flight, "the third text to reach Twilio")
    await text_in(twilio, MARIA, "STOP")  # through the served app: its answer does not wait on us
    gate.set()
    await draining
    confirmations = await Message.filter(purpose=MessagePurpose.STOP_CONFIRMATION)
    await out_of_the_outbox(*(m.id for m in batch), *(m.id for m in confirmations))

    # What Twilio got: the three whose sending began before the STOP committed, and at most our one
    # confirmation (none when Twilio confirms STOP itself).
    confirmation_bodies = [m.body for m in confirmations]
    assert fake_twilio.bodies_to(MARIA) == ["Reminder 1", "Reminder 2", "Reminder 3", *confirmation_bodies]
    assert len(confirmations) == (0 if twilio_answers_stop else 1)
    after = {m.id: m for m in await Message.filter(id__in=[m.id for m in batch])}
    for message in batch[:3]:
        assert after[message.id].provider_sid is not None
    for message in batch[3:]:
        canceled = after[message.id]
        assert canceled.status == MessageStatus.CANCELED and canceled.provider_sid is None
        assert canceled.error_message == "Canceled: the client texted STOP."
        assert not await SendAttempt.exists(message_id=message.id)  # never claimed, never tried
