"""The outbox under faults, in-process (issue 8, "How it is tested"): the real app, the real twilio
library over real HTTP to the fake Twilio, and every claim about what left counted at the fake.

A STOP racing a batch, a 429 storm, 5xx and refused connections retried while 4xx never are, and the
consent rule at the moment a text leaves (its exceptions too), and DELETE racing a claim. Time is
moved (`send_due(now=…)`) rather than slept on; races are made deterministic with the fake's
`hold_gate`, which holds a create Twilio has already taken until the test opens it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from inbox import clock
from inbox.models import (
    AttemptOutcome,
    AutoReplyMode,
    Channel,
    ClientPhone,
    Message,
    MessagePurpose,
    MessageStatus,
    Organisation,
    OutboxState,
    SendAttempt,
)
from inbox.services import consent, inbound, system_texts
from inbox.services.directory import PhoneInput, create_case, create_client
from inbox.services.messaging import Outbox
from inbox.services.outbox import Claimed, claim_next, deliver
from inbox.services.staff import create_staff
from inbox.settings import Settings
from inbox.worker import send_due
from tests.support.apps import running
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import no_quiet_hours, out_of_the_outbox, outcomes, stored_texts, until
from tests.support.records import MARIA, MakeCase
from tests.support.servers import free_port
from tests.support.staff import PASSWORD, MakeStaff
from tests.support.webhooks import inbound_params, is_empty_twiml, new_sid, post_text, text_in

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
    # Far enough ahead that storing 20 texts on a loaded machine cannot outrun it (the send is driven at `when`).
    when = clock.now() + timedelta(minutes=1)
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


# ---------------------------------------------------------------- a 429 storm


async def test_a_429_storm_loses_nothing_obeys_retry_after_and_paces_the_channel(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA)
    box, rules = app.state.outbox, app.state.outbox.rules
    throughput = (await Channel.get(id=app.state.channel.id)).throughput
    bodies = [f"Notice {n}" for n in range(1, 13)]
    texts = await stored_texts(box, await make_staff("supervisor"), made.case_id, bodies)
    fake_twilio.fail_next(429, times=6, retry_after=1)

    # The worker, driven on a moved clock a quarter second at a time: per round, what Twilio was asked
    # and what it took.
    rounds: list[tuple[float, int, int]] = []  # (seconds since start, creates, accepted)
    start = clock.now()
    for step in range(400):
        asked, taken = len(fake_twilio.requests), len(fake_twilio.messages)
        await send_due(box, now=start + timedelta(seconds=step / 4))
        rounds.append((step / 4, len(fake_twilio.requests) - asked, len(fake_twilio.messages) - taken))
        if not await Message.filter(id__in=[t.id for t in texts], outbox_state__not_isnull=True).exists():
            break

    # Nothing lost, nothing doubled: every text accepted exactly once.
    assert sorted(fake_twilio.bodies_to(MARIA)) == sorted(bodies)
    assert len(fake_twilio.requests) == len(bodies) + 6
    # Each 429 was retried no sooner than its Retry-After.
    busy = await SendAttempt.filter(message_id__in=[t.id for t in texts], error_code=20429).order_by("id")
    assert len(busy) == 6
    for attempt in busy:
        assert attempt.next_attempt_at is not None and attempt.next_attempt_at - attempt.at >= timedelta(seconds=1)
    # The channel backed off after each 429: nothing more was asked of Twilio until Retry-After had passed.
    refused_at = [t for t, creates, accepted in rounds if creates > accepted]
    assert len(refused_at) == 6  # one 429 a round: after it, the round asked nothing more
    for t in refused_at:
        assert all(creates == 0 for u, creates, _ in rounds if t < u < t + 1), t
    # Paced: within any stretch of the moved clock, no more accepted than the burst plus the throughput.
    for i, (first, _, _) in enumerate(rounds):
        for last, _, _ in rounds[i:]:
            taken = sum(a for u, _, a in rounds if first <= u <= last)
            assert taken <= rules.pacing_burst + throughput * (last - first), (first, last, taken)


# ---------------------------------------------------------------- 5xx and refused connections retried, 4xx never


async def _one_text(app: Starlette, make_case: MakeCase, make_staff: MakeStaff, body: str) -> Message:
    made = await make_case(phone=MARIA)
    [text] = await stored_texts(app.state.outbox, await make_staff("supervisor"), made.case_id, [body])
    return text


async def test_a_503_is_retried_within_10_seconds_and_then_accepted_once(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    fake_twilio.busy[MARIA] = [503]
    assert await send_due(app.state.outbox) == 1
    waiting = await Message.get(id=text.id)
    [attempt] = await SendAttempt.filter(message_id=text.id)
    assert waiting.status == MessageStatus.QUEUED and waiting.provider_sid is None
    assert attempt.outcome == AttemptOutcome.RETRY and attempt.error_code == 20503
    assert attempt.next_attempt_at is not None and waiting.next_attempt_at == attempt.next_attempt_at
    assert timedelta(0) < attempt.next_attempt_at - attempt.at <= timedelta(seconds=10)
    assert waiting.error_message == "Twilio had a problem (HTTP 503)."

    assert await send_due(app.state.outbox, now=attempt.next_attempt_at - timedelta(milliseconds=1)) == 0
    assert await send_due(app.state.outbox, now=attempt.next_attempt_at) == 1
    assert len([r for r in fake_twilio.requests if r["To"] == MARIA]) == 2
    assert fake_twilio.bodies_to(MARIA) == ["Your hearing is at 9."]
    sent = await Message.get(id=text.id)
    assert sent.provider_sid == fake_twilio.messages[0]["sid"] and sent.outbox_state is None
    assert await outcomes(text.id) == ["retry", "accepted"]


async def test_a_refusal_fails_at_once_and_is_never_retried(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    fake_twilio.reject[MARIA] = 21211
    assert await send_due(app.state.outbox) == 1
    assert await send_due(app.state.outbox, now=clock.now() + timedelta(hours=2)) == 0
    failed = await Message.get(id=text.id)
    assert failed.status == MessageStatus.FAILED and failed.error_code == 21211
    assert failed.outbox_state is None and failed.next_attempt_at is None
    assert len(fake_twilio.requests) == 1 and fake_twilio.messages == []
    assert await outcomes(text.id) == ["failed"]


async def test_backoff_grows_and_gives_up_after_the_retry_window_with_the_reason(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    rules = app.state.outbox.rules
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    fake_twilio.fail_next(503, times=100)
    moment = clock.now()
    for _ in range(rules.max_attempts):
        assert await send_due(app.state.outbox, now=moment) == 1
        message = await Message.get(id=text.id)
        if message.next_attempt_at is not None:
            moment = message.next_attempt_at
    attempts = await SendAttempt.filter(message_id=text.id).order_by("id")
    assert len(fake_twilio.requests) == len(attempts) == rules.max_attempts
    waits = [(a.next_attempt_at - a.at).total_seconds() for a in attempts if a.next_attempt_at is not None]
    assert waits[0] <= 10
    for number, wait in enumerate(waits, start=1):  # the planned backoff, within its jitter
        planned = rules.planned_wait(number)
        assert planned * (1 - rules.jitter) <= wait <= planned * (1 + rules.jitter)
    assert waits[:4] == sorted(waits[:4]) and len(set(waits[:4])) == 4
    # Retried for the whole window, however the jitter falls, and then given up with the reason.
    shortest = sum(rules.planned_wait(n) * (1 - rules.jitter) for n in range(1, rules.max_attempts))
    assert timedelta(seconds=shortest) >= rules.retry_for
    assert attempts[-1].at - attempts[0].at >= rules.retry_for
    failed = await Message.get(id=text.id)
    assert failed.status == MessageStatus.FAILED and failed.outbox_state is None
    assert attempts[-1].outcome == AttemptOutcome.FAILED
    assert f"Gave up after {rules.max_attempts} attempts" in (failed.error_message or "")
    assert await send_due(app.state.outbox, now=moment + timedelta(hours=1)) == 0


# ---------------------------------------------------------------- consent as a text leaves


async def _auto_reply_always(app: Starlette) -> None:
    await Channel.filter(id=app.state.channel.id).update(
        auto_reply_mode=AutoReplyMode.ALWAYS, auto_reply_text="We got your text and will answer today."
    )


@pytest.mark.parametrize("okay_to_text", [False, True], ids=["unticked", "ticked"])
async def test_the_automatic_reply_reaches_only_a_client_who_agreed_to_texts(
    app: Starlette, make_case: MakeCase, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio, okay_to_text: bool
) -> None:
    await _auto_reply_always(app)
    await make_case(phone=MARIA, okay_to_text=okay_to_text)
    await text_in(anonymous, MARIA, "Is my hearing still on?")
    await fake_twilio.callbacks_done()
    expected = ["We got your text and will answer today."] if okay_to_text else []
    assert fake_twilio.bodies_to(MARIA) == expected


async def test_an_automatic_reply_stored_before_consent_was_withdrawn_is_canceled_as_it_leaves(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    await _auto_reply_always(app)
    made = await make_case(phone=MARIA)
    channel = await Channel.get(id=app.state.channel.id)  # as it is now, answering automatically (the route's copy is)
    received = await inbound.receive_text(app.state.outbox, channel, inbound_params(new_sid(), MARIA, "Hi"))
    [reply_id] = received.replies  # stored in the outbox, not yet handed over (the route does that after its answer)
    phone = await ClientPhone.get(number=MARIA)
    await consent.set_okay_to_text(app.state.bus, await make_staff("supervisor"), made.client_id, phone.id, False)
    assert await send_due(app.state.outbox) == 0
    reply = await Message.get(id=reply_id)
    assert reply.purpose == MessagePurpose.AUTO_REPLY and reply.status == MessageStatus.CANCELED
    assert (reply.error_message or "").startswith("Not sent: This client has not agreed to receive texts")
    assert fake_twilio.requests == []


async def test_help_and_the_stop_confirmation_reach_a_number_that_opted_out(
    app: Starlette, make_case: MakeCase, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await Channel.filter(id=app.state.channel.id).update(twilio_handles_opt_out=False, help_text="Legal Aid: call us.")
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "STOP")
    await text_in(anonymous, MARIA, "HELP")
    assert await consent.is_opted_out(MARIA)
    [confirmation] = fake_twilio.bodies_to(MARIA)[:1]
    assert "you will get no more texts" in confirmation
    assert fake_twilio.bodies_to(MARIA) == [confirmation, "Legal Aid: call us."]


async def test_an_opt_in_request_goes_without_okay_to_text_but_not_after_a_stop(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    made = await make_case(phone=MARIA, okay_to_text=False)
    staff = await make_staff("supervisor")
    phone = await ClientPhone.get(number=MARIA)
    first = await system_texts.send_opt_in_request(staff, made.client_id, phone.id)
    assert await send_due(app.state.outbox) == 1
    assert (await Message.get(id=first.id)).provider_sid is not None

    second = await system_texts.send_opt_in_request(staff, made.client_id, phone.id)  # stored, not yet gone
    await text_in(anonymous, MARIA, "STOP")  # Twilio confirms STOP on this channel: nothing of ours goes
    assert await send_due(app.state.outbox) == 0
    assert (await Message.get(id=second.id)).status == MessageStatus.CANCELED
    assert fake_twilio.bodies_to(MARIA) == [first.body]


async def test_a_start_confirmation_is_canceled_when_a_stop_lands_before_it_leaves(
    app: Starlette, make_case: MakeCase, anonymous: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await Channel.filter(id=app.state.channel.id).update(twilio_handles_opt_out=False)
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "STOP")
    channel = await Channel.get(id=app.state.channel.id)
    started = await inbound.receive_text(app.state.outbox, channel, inbound_params(new_sid(), MARIA, "START"))
    [start_confirmation] = started.replies  # in the outbox; the route would hand it over after its answer
    await text_in(anonymous, MARIA, "STOP")
    assert await send_due(app.state.outbox) == 0
    canceled = await Message.get(id=start_confirmation)
    assert canceled.purpose == MessagePurpose.KEYWORD_CONFIRMATION and canceled.status == MessageStatus.CANCELED
    stop_confirmations = await Message.filter(purpose=MessagePurpose.STOP_CONFIRMATION).order_by("id")
    assert fake_twilio.bodies_to(MARIA) == [m.body for m in stop_confirmations]
    assert canceled.body not in fake_twilio.bodies_to(MARIA)


# ---------------------------------------------------------------- DELETE racing the outbox


async def test_a_text_waiting_between_retries_can_be_canceled_and_never_leaves(
    app: Starlette,
    make_case: MakeCase,
    make_staff: MakeStaff,
    supervisor: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
) -> None:
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    fake_twilio.busy[MARIA] = [503]
    assert await send_due(app.state.outbox) == 1
    response = await supervisor.delete(f"/api/v1/messages/{text.id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert await send_due(app.state.outbox, now=clock.now() + timedelta(hours=1)) == 0
    assert len(fake_twilio.requests) == 1 and fake_twilio.messages == []


async def test_a_text_being_handed_to_twilio_cannot_be_canceled(
    app: Starlette,
    make_case: MakeCase,
    make_staff: MakeStaff,
    supervisor: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
) -> None:
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    gate = asyncio.Event()
    fake_twilio.hold_gate[MARIA] = gate
    sending = asyncio.create_task(send_due(app.state.outbox))

    async def in_flight() -> bool:
        return fake_twilio.count_to(MARIA) == 1

    await until(in_flight, "the text to reach Twilio")
    response = await supervisor.delete(f"/api/v1/messages/{text.id}")
    assert response.status_code == 409
    assert "being handed to Twilio" in response.text
    gate.set()
    assert await sending == 1
    sent = await Message.get(id=text.id)
    assert sent.status != MessageStatus.CANCELED and sent.provider_sid == fake_twilio.messages[0]["sid"]
    assert fake_twilio.count_to(MARIA) == 1


# ---------------------------------------------------------------- the webhook never waits for Twilio


async def test_help_is_answered_while_twilio_hangs_and_the_answer_leaves_once_it_lets_go(
    app: Starlette, make_case: MakeCase, twilio: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    await Channel.filter(id=app.state.channel.id).update(twilio_handles_opt_out=False, help_text="Legal Aid: call us.")
    await make_case(phone=MARIA)
    gate = asyncio.Event()
    fake_twilio.hold_gate[MARIA] = gate
    response = await post_text(twilio, MARIA, "HELP")  # the app on uvicorn, as Twilio reaches it
    assert is_empty_twiml(response)
    [help_reply] = await Message.filter(purpose=MessagePurpose.HELP)
    assert not gate.is_set() and (await Message.get(id=help_reply.id)).provider_sid is None
    gate.set()
    await out_of_the_outbox(help_reply.id)
    assert fake_twilio.bodies_to(MARIA) == ["Legal Aid: call us."]
    assert (await Message.get(id=help_reply.id)).provider_sid == fake_twilio.messages[0]["sid"]


# ---------------------------------------------------------------- a worker that died mid-call


async def test_a_text_whose_worker_died_before_twilio_saw_it_is_looked_up_and_sent_once(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    box = app.state.outbox
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    claimed = await claim_next(box)
    assert isinstance(claimed, Claimed)  # ... and the worker dies: it never calls Twilio
    assert await send_due(box, now=clock.now() + box.rules.lease / 2) == 0  # its lease still holds
    assert await send_due(box, now=clock.now() + box.rules.lease + timedelta(seconds=1)) == 1
    assert fake_twilio.bodies_to(MARIA) == ["Your hearing is at 9."]
    assert [q["To"] for q in fake_twilio.list_queries][:1] == [MARIA]  # asked Twilio before sending
    assert await outcomes(text.id) == ["unknown", "accepted"]
    assert (await Message.get(id=text.id)).provider_sid == fake_twilio.messages[0]["sid"]


async def worker_dies_after_twilio_took_it(box: Outbox, fake_twilio: FakeTwilio, when: datetime | None) -> None:
    """The next due text claimed and handed to Twilio, which takes it and never answers; the worker dies mid-call."""
    fake_twilio.hold_gate[MARIA] = asyncio.Event()  # never opened: Twilio took it, the answer never comes
    claimed = await claim_next(box, now=when)
    assert isinstance(claimed, Claimed)
    call = asyncio.create_task(deliver(box, claimed))

    async def taken() -> bool:
        return fake_twilio.count_to(MARIA) == 1

    await until(taken, "Twilio to take the text")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_text_whose_worker_died_after_twilio_took_it_is_adopted_never_sent_twice(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    box = app.state.outbox
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    await worker_dies_after_twilio_took_it(box, fake_twilio, when=None)
    await fake_twilio.callbacks_done()  # Twilio's callbacks came while we did not know the SID
    assert (await Message.get(id=text.id)).provider_sid is None

    assert await send_due(box, now=clock.now() + box.rules.lease + timedelta(seconds=1)) == 1
    assert fake_twilio.count_to(MARIA) == 1
    adopted = await Message.get(id=text.id)
    assert adopted.provider_sid == fake_twilio.messages[0]["sid"]
    assert adopted.status == MessageStatus.DELIVERED  # the stored callbacks applied once it was adopted
    assert await outcomes(text.id) == ["unknown", "accepted"]


@pytest.mark.parametrize("recovered_by", ["another worker", "another lane of the same worker"])
async def test_a_lane_slowed_past_its_lease_never_sends_what_was_recovered_meanwhile(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio, recovered_by: str
) -> None:
    """The window behind a text found twice at Twilio after a kill -9 under load: a lane claims a text and
    then stalls (a loaded machine, a stopped process) until its lease passes; the text is recovered, looked
    up (Twilio has nothing yet) and sent; then the stalled lane wakes and carries on with its old claim."""
    box = app.state.outbox
    other = box if recovered_by == "another lane of the same worker" else replace(box, worker_id="worker@b:2:b2")
    text = await _one_text(app, make_case, make_staff, "Your hearing is at 9.")
    stalled = await claim_next(box)
    assert isinstance(stalled, Claimed)  # ... and the lane stalls before it calls Twilio
    assert await send_due(other, now=clock.now() + box.rules.lease + timedelta(seconds=1)) == 1
    assert fake_twilio.bodies_to(MARIA) == ["Your hearing is at 9."]
    recovered_sid = fake_twilio.messages[0]["sid"]

    await deliver(box, stalled)  # the stalled lane wakes up

    assert fake_twilio.bodies_to(MARIA) == ["Your hearing is at 9."]  # once, never twice
    after = await Message.get(id=text.id)
    assert after.provider_sid == recovered_sid and after.outbox_state is None
    assert await outcomes(text.id) == ["unknown", "accepted"]


async def test_a_recovered_text_held_back_at_its_claim_is_still_looked_up_before_it_goes(
    app: Starlette, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    """The window the kill -9 test hit under load: the text in flight when its worker died was recovered,
    and at that claim held back (quiet hours here; a channel made busy by another lane in the worker
    test) — released as plain waiting, it was later sent again without asking Twilio."""
    await no_quiet_hours()
    box = app.state.outbox
    when = clock.now() + timedelta(minutes=1)
    made = await make_case(phone=MARIA)
    [text] = await stored_texts(box, await make_staff("supervisor"), made.case_id, ["Your hearing is at 9."], when)
    await worker_dies_after_twilio_took_it(box, fake_twilio, when=when)

    await Organisation.all().update(quiet_hours_start=8, quiet_hours_end=21)
    atlanta = ZoneInfo("America/New_York")  # Maria's number (404)
    next_day = when.astimezone(atlanta).date() + timedelta(days=1)
    night = datetime.combine(next_day, time(3), tzinfo=atlanta)  # long past the lease, inside quiet hours
    assert await send_due(box, now=night) == 0  # recovered, then held until the morning
    held = await Message.get(id=text.id)
    assert held.outbox_state == OutboxState.RETRYING and held.outcome_unknown

    assert await send_due(box, now=datetime.combine(next_day, time(8, 1), tzinfo=atlanta)) == 1
    assert fake_twilio.count_to(MARIA) == 1  # looked up and adopted, never sent twice
    assert (await Message.get(id=text.id)).provider_sid == fake_twilio.messages[0]["sid"]
    assert await outcomes(text.id) == ["unknown", "accepted"]


# ---------------------------------------------------------------- Twilio out of reach


async def test_a_refused_connection_is_retried_and_nothing_is_looked_up(settings: Settings) -> None:
    nowhere = settings.with_changes(twilio_api_url=f"http://127.0.0.1:{free_port()}")
    async with running(nowhere) as app:
        staff, _ = await create_staff(email="sam@example.org", name="Sam", role="supervisor", password=PASSWORD)
        client = await create_client(name="Maria Lopez", phones=[PhoneInput(MARIA, "mobile", True)])
        case = await create_case(number="16E-20010001", title="Case", client_id=client.id, legal_problem="Housing")
        [text] = await stored_texts(app.state.outbox, staff, case.id, ["Your hearing is at 9."])
        assert await send_due(app.state.outbox) == 1
        first = await Message.get(id=text.id)
        assert first.outbox_state == OutboxState.RETRYING and not first.outcome_unknown
        assert first.error_message == "Twilio could not be reached."
        assert first.next_attempt_at is not None and first.next_attempt_at - clock.now() <= timedelta(seconds=10)
        assert await send_due(app.state.outbox, now=first.next_attempt_at) == 1
        second = await Message.get(id=text.id)
        assert second.outbox_state == OutboxState.RETRYING and second.next_attempt_at is not None
        assert second.next_attempt_at - first.next_attempt_at > first.next_attempt_at - first.created_at
        assert await outcomes(text.id) == ["retry", "retry"]
