"""Seeing the outbox: the queue's states (scheduled, waiting, sending, retrying, stuck, failed today) counted per
sending number with the backlog's pace, "Retry now" on stuck texts and "Retry" on failed ones the outbox gave up on,
the status line while the outbox retries, the message page's attempts, and the API's `attempts`, `?state=` and
`POST /messages/{id}/retry` — every state driven for real through the fake Twilio, the clock moved, never slept on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from inbox.live import Tab
from inbox.models import (
    AttemptOutcome,
    Channel,
    ClientPhone,
    Message,
    MessageStatus,
    MessageStatusEvent,
    OutboxState,
    Staff,
)
from inbox.services import messaging, outbox, queue
from inbox.services.messaging import SendRequest
from inbox.services.queue import QueueState
from inbox.worker import send_due
from tests.support.events import WAIT_SECONDS
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import as_event
from tests.support.outbox import handed_over
from tests.support.pages import words
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff, StaffClient, sign_in

RETRYING_NUMBER = "+14045387321"
SENDING_NUMBER = "+14045387322"
REFUSED_NUMBER = "+14045387323"
WAITING_NUMBER = "+14045387324"


async def stored(app: Starlette, staff: Staff, case_id: int, body: str, send_at: datetime | None = None) -> Message:
    """A text written and put in the outbox, not yet handed over (no route answered, no worker ran)."""
    return await messaging.send_text(app.state.outbox, staff, SendRequest(body=body, case_id=case_id, send_at=send_at))


async def until(condition: Any) -> None:
    """Wait (a bounded number of loop turns, not a time) until `condition()` holds."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def states_of(entries: list[queue.QueueEntry]) -> dict[int, QueueState | None]:
    return {entry.message.id: entry.state for entry in entries}


class Scene:
    """One text in each state, each put there the way it happens: a person schedules one, writes one the
    outbox has not yet taken, one Twilio answers 503, one whose answer Twilio holds, one Twilio refuses."""

    def __init__(self, app: Starlette, fake: FakeTwilio) -> None:
        self.app, self.fake = app, fake
        self.gate = asyncio.Event()
        self.sending_task: asyncio.Task[Message | None] | None = None

    async def build(self, staff: Staff, make_case: MakeCase) -> Scene:
        cases = {}
        for number, name in [
            (MARIA, "Maria Lopez"),
            (RETRYING_NUMBER, "Rita Retry"),
            (SENDING_NUMBER, "Sid Sending"),
            (REFUSED_NUMBER, "Ray Refused"),
            (WAITING_NUMBER, "Wes Waiting"),
        ]:
            cases[number] = (await make_case(phone=number, name=name)).case_id
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        self.scheduled = await stored(self.app, staff, cases[MARIA], "Hearing tomorrow.", send_at=tomorrow)
        self.waiting = await stored(self.app, staff, cases[WAITING_NUMBER], "Waiting for a worker.")
        self.fake.busy[RETRYING_NUMBER] = [503]
        self.retrying = await handed_over(self.app, await stored(self.app, staff, cases[RETRYING_NUMBER], "Busy."))
        self.fake.reject[REFUSED_NUMBER] = 21211
        self.failed = await handed_over(self.app, await stored(self.app, staff, cases[REFUSED_NUMBER], "Refused."))
        self.fake.hold_gate[SENDING_NUMBER] = self.gate
        sending = await stored(self.app, staff, cases[SENDING_NUMBER], "Held at Twilio.")
        self.sending_task = asyncio.create_task(outbox.send_now(self.app.state.outbox, sending.id))
        await until(lambda: self.fake.count_to(SENDING_NUMBER) == 1)  # Twilio took it; its answer is held
        self.sending = await Message.get(id=sending.id)
        return self

    async def finish(self) -> None:
        self.gate.set()
        if self.sending_task is not None:
            await self.sending_task

    @property
    def expected_now(self) -> dict[int, QueueState]:
        return {
            self.scheduled.id: QueueState.SCHEDULED,
            self.waiting.id: QueueState.WAITING,
            self.retrying.id: QueueState.RETRYING,
            self.sending.id: QueueState.SENDING,
            self.failed.id: QueueState.FAILED,
        }


@pytest.fixture
async def scene(
    app: Starlette, fake_twilio: FakeTwilio, make_staff: MakeStaff, make_case: MakeCase
) -> AsyncIterator[Scene]:
    made = Scene(app, fake_twilio)
    try:
        yield await made.build(await make_staff("supervisor"), make_case)
    finally:
        await made.finish()


# ---------------------------------------------------------------- the states


async def test_each_text_is_in_its_state_and_counted_per_sending_number(
    app: Starlette, scene: Scene, make_staff: MakeStaff
) -> None:
    rules = app.state.outbox.rules
    boss = await make_staff("supervisor")
    seen: dict[int, QueueState | None] = {}
    for state in QueueState:
        entries = await queue.texts_in_state(boss, state, rules)
        assert all(entry.state == state for entry in entries), state
        seen.update(states_of(entries))
    assert seen == scene.expected_now
    assert (await Message.get(id=scene.retrying.id)).outbox_state == OutboxState.RETRYING

    summary = await queue.overview(boss, rules)
    one_each = {state: 0 if state == QueueState.STUCK else 1 for state in QueueState}
    assert summary.totals == one_each
    [line] = summary.channels  # every text went from the app's one number
    assert {state: line.counts.get(state, 0) for state in QueueState} == one_each
    # Due now: the waiting text and the one being sent (the retry is due later, the scheduled one tomorrow).
    assert (line.due_texts, line.due_segments) == (2, 2)
    assert line.pace_words == "under a minute at 1 segment/s"


async def test_a_text_owed_to_twilio_for_longer_than_stuck_after_is_stuck(
    app: Starlette, scene: Scene, make_staff: MakeStaff
) -> None:
    rules = app.state.outbox.rules
    boss = await make_staff("supervisor")
    later = datetime.now(UTC) + rules.stuck_after + timedelta(minutes=1)
    stuck = await queue.texts_in_state(boss, QueueState.STUCK, rules, now=later)
    # The waiting text, the retrying one, and the one whose worker has gone quiet (its lease expired meanwhile);
    # not the one scheduled for tomorrow.
    assert set(states_of(stuck)) == {scene.waiting.id, scene.retrying.id, scene.sending.id}
    for message in [scene.waiting, scene.retrying, scene.sending, scene.scheduled]:
        row = await Message.get(id=message.id)
        in_state = {s for s in QueueState if row.id in states_of(await queue.texts_in_state(boss, s, rules, now=later))}
        assert in_state == {queue.state_of(row, rules, later)}, row.body  # the query and the rule agree
    # While the lease lasts, a text in a worker's hands is being sent, however long ago it was due.
    row = await Message.get(id=scene.sending.id)
    assert row.lease_expires_at is not None
    while_held = row.lease_expires_at - timedelta(seconds=1)
    assert queue.state_of(row, replace(rules, stuck_after=timedelta(0)), while_held) == QueueState.SENDING


async def test_a_text_held_for_quiet_hours_is_scheduled_not_stuck(app: Starlette, make_staff, make_case) -> None:
    rules = app.state.outbox.rules
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    when = datetime.now(UTC) + timedelta(days=1)
    message = await stored(app, staff, made.case_id, "At night.", send_at=when)
    held_until = when + timedelta(hours=9)
    await Message.filter(id=message.id).update(next_attempt_at=held_until)  # what the claim does for a hold
    row = await Message.get(id=message.id)
    assert queue.state_of(row, rules, when + timedelta(hours=1)) == QueueState.SCHEDULED
    assert queue.state_of(row, rules, held_until + rules.stuck_after * 2) == QueueState.STUCK


def test_the_backlog_is_said_in_words() -> None:
    assert queue.duration_words(timedelta(seconds=20)) == "under a minute"
    assert queue.duration_words(timedelta(seconds=170)) == "about 3 min"
    assert queue.duration_words(timedelta(minutes=125)) == "about 2 h 5 min"


async def test_the_backlog_of_a_faster_number_is_paced_by_its_throughput(app: Starlette, make_staff, make_case) -> None:
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    fast = await Channel.create(
        label="Toll-free line", account_sid="AC" + "3" * 32, from_number="+18005550100", throughput=3
    )
    conversation = await messaging.conversation_with(fast, MARIA)
    long_body = "文" * 160  # UCS-2: 3 segments
    for _ in range(40):
        await messaging.send_text(
            app.state.outbox, staff, SendRequest(body=long_body, conversation_id=conversation.id, case_id=made.case_id)
        )
    summary = await queue.overview(staff, app.state.outbox.rules)
    [line] = summary.channels
    assert line.channel.id == fast.id and (line.due_texts, line.due_segments) == (40, 120)
    assert line.pace_words == "under a minute at 3 segments/s"  # 40 s
    await Channel.filter(id=fast.id).update(throughput=1)
    [line] = (await queue.overview(staff, app.state.outbox.rules)).channels
    assert line.pace_words == "about 2 min at 1 segment/s"


# ---------------------------------------------------------------- retrying


async def test_retry_now_makes_a_stuck_text_due_and_it_reaches_twilio_once(
    app: Starlette, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    rules = app.state.outbox.rules
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    fake_twilio.fail_next(429, retry_after=900)  # Twilio asks for a quarter of an hour
    message = await handed_over(app, await stored(app, staff, made.case_id, "Please call us."))
    assert message.outbox_state == OutboxState.RETRYING and message.next_attempt_at is not None
    later = datetime.now(UTC) + rules.stuck_after + timedelta(minutes=1)
    assert queue.state_of(message, rules, later) == QueueState.STUCK

    retried = await queue.retry_now(app.state.bus, staff, message.id, rules, now=later)
    assert retried.next_attempt_at == later and retried.outbox_state == OutboxState.RETRYING
    assert await send_due(app.state.outbox, now=later) == 1
    assert fake_twilio.count_to(MARIA) == 1
    assert await send_due(app.state.outbox, now=later + timedelta(hours=1)) == 0
    assert fake_twilio.count_to(MARIA) == 1


async def test_a_stuck_text_whose_worker_stopped_is_looked_up_before_it_is_sent_again(
    app: Starlette, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    rules = app.state.outbox.rules
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    message = await stored(app, staff, made.case_id, "Your hearing moved.")
    claimed = await outbox.claim_next(app.state.outbox, message_id=message.id)  # and then the worker died
    assert isinstance(claimed, outbox.Claimed)
    row = await Message.get(id=message.id)
    assert row.lease_expires_at is not None
    later = row.lease_expires_at + rules.stuck_after
    assert queue.state_of(row, rules, later) == QueueState.STUCK

    await queue.retry_now(app.state.bus, staff, message.id, rules, now=later)
    row = await Message.get(id=message.id).prefetch_related("attempts")
    assert row.outbox_state == OutboxState.RETRYING and row.outcome_unknown and row.lease_owner is None
    assert [a.outcome for a in row.attempts] == [AttemptOutcome.UNKNOWN]
    assert await send_due(app.state.outbox, now=later) == 1
    assert fake_twilio.count_to(MARIA) == 1  # Twilio had no record of it, so it was sent, once
    assert len(fake_twilio.list_queries) >= 1  # … after asking


async def test_a_retried_text_to_a_number_that_opted_out_meanwhile_is_canceled_as_it_leaves(
    app: Starlette, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    rules = app.state.outbox.rules
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    fake_twilio.fail_next(503)
    message = await handed_over(app, await stored(app, staff, made.case_id, "Reminder."))
    await ClientPhone.filter(number=MARIA).update(opted_out=True)  # a STOP arrived meanwhile
    later = datetime.now(UTC) + rules.stuck_after + timedelta(minutes=1)
    await queue.retry_now(app.state.bus, staff, message.id, rules, now=later)  # retry does not judge consent …
    assert await send_due(app.state.outbox, now=later) == 0  # … the outbox does, as the text leaves
    row = await Message.get(id=message.id)
    assert row.status == MessageStatus.CANCELED and "opted out" in (row.error_message or "")
    assert fake_twilio.count_to(MARIA) == 0


async def gave_up_on(app: Starlette, fake: FakeTwilio, message: Message, status: int = 503) -> tuple[Message, datetime]:
    """Twilio answers `status` every time until the outbox gives up on the text, the clock moved to each retry;
    the text then, and the moment of its last attempt."""
    fake.busy[message.to_number] = [status] * 50
    row, moment = await handed_over(app, message), datetime.now(UTC)
    while row.outbox_state is not None:
        assert row.next_attempt_at is not None
        moment = row.next_attempt_at
        await send_due(app.state.outbox, now=moment)
        row = await Message.get(id=message.id)
    fake.busy[message.to_number] = []
    return row, moment


async def refused_once(app: Starlette, fake: FakeTwilio, message: Message, status: int = 503) -> Message:
    """Twilio answers `status` to the text's one attempt, and the outbox — told to retry for no time at all —
    gives up at once: the end of a round of retries, on the real clock (pages read it)."""
    app.state.outbox = replace(app.state.outbox, rules=replace(app.state.outbox.rules, retry_for=timedelta(0)))
    fake.busy[message.to_number] = [status]
    return await handed_over(app, message)


async def test_a_text_the_outbox_gave_up_on_can_be_retried_and_goes_once(
    app: Starlette, make_staff, make_case, fake_twilio: FakeTwilio
) -> None:
    rules = app.state.outbox.rules
    staff = await make_staff("supervisor", name="Sam Boss")
    made = await make_case(phone=MARIA)
    message = await stored(app, staff, made.case_id, "Court is closed Friday.")
    failed, last = await gave_up_on(app, fake_twilio, message)
    assert failed.status == MessageStatus.FAILED and failed.attempt_count == rules.max_attempts
    [entry] = await queue.texts_in_state(staff, QueueState.FAILED, rules, now=last)
    assert entry.retryable and entry.may_retry_now

    next_morning = last + timedelta(hours=1)
    retried = await queue.retry_now(app.state.bus, staff, failed.id, rules, now=next_morning)
    assert retried.status == MessageStatus.QUEUED and retried.outbox_state == OutboxState.RETRYING
    assert retried.attempt_count == 0 and retried.error_message == "Retried by Sam Boss."
    steps = [s.status for s in await MessageStatusEvent.filter(message_id=failed.id).order_by("id")]
    assert steps[-2:] == [MessageStatus.FAILED, MessageStatus.QUEUED]
    assert await send_due(app.state.outbox, now=next_morning) == 1
    assert (await Message.get(id=failed.id)).provider_sid and fake_twilio.count_to(MARIA) == 1
    assert await send_due(app.state.outbox, now=next_morning + timedelta(hours=1)) == 0


@pytest.mark.parametrize("code", [21211, 21610, 21614])
async def test_a_text_twilio_refused_is_not_retried(
    app: Starlette, make_staff, make_case, fake_twilio: FakeTwilio, code: int
) -> None:
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    fake_twilio.reject[MARIA] = code
    failed = await handed_over(app, await stored(app, staff, made.case_id, "Hello."))
    assert failed.status == MessageStatus.FAILED
    with pytest.raises(queue.Refused) as refused:
        await queue.retry_now(app.state.bus, staff, failed.id, app.state.outbox.rules)
    assert "would refuse it again" in refused.value.message
    assert (await Message.get(id=failed.id)).status == MessageStatus.FAILED


async def test_retry_is_refused_for_texts_on_their_way_cancelled_or_being_sent(
    app: Starlette, scene: Scene, make_staff: MakeStaff
) -> None:
    rules, bus = app.state.outbox.rules, app.state.bus
    staff = await make_staff("supervisor")
    cases = [
        (scene.waiting, "not stuck"),
        (scene.retrying, "not stuck"),
        (scene.sending, "being handed to Twilio right now"),
    ]
    for message, why in cases:
        with pytest.raises(queue.Refused) as refused:
            await queue.retry_now(bus, staff, message.id, rules)
        assert why in refused.value.message, message.body
    await queue.cancel_scheduled(bus, staff, scene.scheduled.id)
    with pytest.raises(queue.Refused) as refused:
        await queue.retry_now(bus, staff, scene.scheduled.id, rules)
    assert "cancelled" in refused.value.message


# ---------------------------------------------------------------- the pages


@pytest.fixture
def stuck_app(app: Starlette) -> Starlette:
    """The app with `stuck_after` set to zero: a text is stuck as soon as it is owed to Twilio and not in a
    worker's hands — as if the quarter of an hour had passed (pages read the real clock)."""
    rules = replace(app.state.outbox.rules, stuck_after=timedelta(0))
    app.state.outbox = replace(app.state.outbox, rules=rules)
    app.state.hub.outbox_rules = rules
    return app


async def person(
    app: Starlette, make_staff: MakeStaff, role: str = "supervisor", name: str | None = None
) -> StaffClient:
    client = await sign_in(app, await make_staff(role, name=name))
    return client


def row_of(html: str, message_id: int) -> str:
    match = re.search(rf'<tr id="queue-{message_id}".*?</tr>', html, re.DOTALL)
    assert match, f"no row for text {message_id}"
    return match.group(0)


def section_ids(html: str, state: str) -> list[int]:
    match = re.search(rf'<section id="queue-{state}".*?</section>', html, re.DOTALL)
    assert match, f"no {state} section"
    return [int(i) for i in re.findall(r'<tr id="queue-(\d+)"', match.group(0))]


async def test_the_queue_page_shows_every_state_with_its_count(
    app: Starlette, scene: Scene, signed_in, make_staff
) -> None:
    staff = await signed_in(await make_staff("supervisor"))
    page = await staff.get("/queue")
    assert page.status_code == 200
    for state, message in [
        ("scheduled", scene.scheduled),
        ("waiting", scene.waiting),
        ("retrying", scene.retrying),
        ("sending", scene.sending),
        ("failed", scene.failed),
    ]:
        assert section_ids(page.text, state) == [message.id], state
    text = words(page.text)
    for title in [
        "Stuck (0)",
        "Failed today (1)",
        "Retrying (1)",
        "Being sent (1)",
        "Waiting to send (1)",
        "Scheduled (1)",
    ]:
        assert title in text
    assert "under a minute at 1 segment/s" in text
    # Retrying: what happened, when it is tried next, and which attempt that is.
    max_attempts = app.state.outbox.rules.max_attempts
    retrying = words(row_of(page.text, scene.retrying.id))
    assert re.search(rf"Twilio had a problem \(HTTP 503\) — trying again at .+, attempt 2 of {max_attempts}", retrying)
    assert "Sending…" in words(row_of(page.text, scene.sending.id))
    assert "Waiting to send" in words(row_of(page.text, scene.waiting.id))
    # A refusal is not offered a retry: it would be refused again.
    failed = row_of(page.text, scene.failed.id)
    assert "/retry" not in failed and "would fail the same way" in words(failed)

    only = await staff.get("/queue?state=retrying")
    assert section_ids(only.text, "retrying") == [scene.retrying.id] and 'id="queue-waiting"' not in only.text
    pane = await staff.get("/queue?state=retrying", headers={"HX-Request": "true"})
    assert (
        pane.text.lstrip().startswith('<div id="queue-pane"')
        and 'data-refresh-url="/queue?state=retrying"' in pane.text
    )


async def test_stuck_texts_offer_retry_now_and_cancel_and_retry_sends_once(
    stuck_app: Starlette, fake_twilio: FakeTwilio, make_case, make_staff
) -> None:
    app = stuck_app
    staff = await person(app, make_staff)
    made = await make_case(phone=MARIA)
    other = await make_case(phone=WAITING_NUMBER, name="Wes Waiting")
    first = await stored(app, staff.staff, made.case_id, "First, stuck.")
    second = await stored(app, staff.staff, other.case_id, "Second, stuck.")

    page = await staff.get("/queue")
    assert section_ids(page.text, "stuck") == [first.id, second.id]
    row = row_of(page.text, first.id)
    assert f'action="/queue/{first.id}/retry"' in row and "Retry now" in row
    assert f'action="/queue/{first.id}/cancel"' in row
    assert "Not sent yet — stuck since" in words(row) and 'href="/queue?state=stuck"' in row
    thread = await staff.get(f"/conversations/{first.conversation_id}")
    assert "Not sent yet — stuck since" in words(thread.text)  # the bubble says so too

    retried = await staff.post(f"/queue/{first.id}/retry")
    assert retried.status_code == 303 and retried.headers["location"] == "/queue?done=retried"
    assert fake_twilio.count_to(MARIA) == 1  # handed over after the answer
    assert (await Message.get(id=first.id)).provider_sid is not None
    again = await staff.post(f"/queue/{first.id}/retry")
    assert again.status_code == 409 and "Twilio already has this text" in words(again.text)
    assert fake_twilio.count_to(MARIA) == 1

    await staff.get("/queue")
    canceled = await staff.post(f"/queue/{second.id}/cancel", headers={"HX-Request": "true"})
    assert canceled.status_code == 200 and "Cancelled: it will not be sent." in words(canceled.text)
    assert (await Message.get(id=second.id)).status == MessageStatus.CANCELED
    assert await send_due(app.state.outbox) == 0 and fake_twilio.count_to(WAITING_NUMBER) == 0


async def test_htmx_retry_answers_the_row_and_the_text_goes(
    stuck_app: Starlette, fake_twilio: FakeTwilio, make_case, make_staff
) -> None:
    app = stuck_app
    staff = await person(app, make_staff)
    made = await make_case(phone=MARIA)
    message = await stored(app, staff.staff, made.case_id, "Stuck.")
    await staff.get("/queue")
    response = await staff.post(f"/queue/{message.id}/retry", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.text.lstrip().startswith(f'<tr id="queue-{message.id}"')
    assert fake_twilio.count_to(MARIA) == 1


async def test_a_failed_text_offers_retry_on_the_page(
    app: Starlette, fake_twilio: FakeTwilio, make_case, make_staff
) -> None:
    staff = await person(app, make_staff)
    made = await make_case(phone=MARIA)
    failed = await refused_once(app, fake_twilio, await stored(app, staff.staff, made.case_id, "Gave up."))
    assert failed.status == MessageStatus.FAILED and failed.error_code == 20503
    page = await staff.get("/queue?state=failed")
    row = row_of(page.text, failed.id)
    assert f'action="/queue/{failed.id}/retry"' in row and ">Retry<" in row
    retried = await staff.post(f"/queue/{failed.id}/retry")
    assert retried.status_code == 303
    assert fake_twilio.count_to(MARIA) == 1
    assert (await Message.get(id=failed.id)).provider_sid is not None


async def test_advocates_see_only_their_clients_texts_in_the_queue_and_its_counts(
    stuck_app: Starlette, make_case, make_staff
) -> None:
    app = stuck_app
    alice = await make_staff("advocate", name="Alice Jones")
    boss = await make_staff("supervisor")
    hers = await make_case(phone=MARIA, assignee=alice)
    theirs = await make_case(phone=WAITING_NUMBER, name="John Smith")
    mine = await stored(app, boss, hers.case_id, "Alice's client.")
    other = await stored(app, boss, theirs.case_id, "Someone else's client.")
    page = await (await sign_in(app, alice)).get("/queue")
    assert section_ids(page.text, "stuck") == [mine.id] and "Someone else" not in page.text
    assert "Stuck (1)" in words(page.text)
    everything = await (await sign_in(app, boss)).get("/queue")
    assert section_ids(everything.text, "stuck") == [mine.id, other.id] and "Stuck (2)" in words(everything.text)
    api = await queue.texts_in_state(alice, QueueState.STUCK, app.state.outbox.rules)
    assert [entry.message.id for entry in api] == [mine.id]
    advocate = await sign_in(app, alice)
    await advocate.get("/queue")
    assert (await advocate.post(f"/queue/{other.id}/retry")).status_code == 404


async def test_the_message_page_lists_each_attempt(
    app: Starlette, fake_twilio: FakeTwilio, make_case, make_staff
) -> None:
    staff = await person(app, make_staff)
    made = await make_case(phone=MARIA)
    fake_twilio.fail_next(503)
    message = await handed_over(app, await stored(app, staff.staff, made.case_id, "Try twice."))
    assert message.next_attempt_at is not None
    await send_due(app.state.outbox, now=message.next_attempt_at)
    page = await staff.get(f"/messages/{message.id}")
    attempts = re.search(r'<ol class="attempts".*?</ol>', page.text, re.DOTALL)
    assert attempts
    text = words(attempts.group(0))
    assert text.index("Not taken — tried again later") < text.index("Twilio took it")
    assert "Error 20503: Twilio was unavailable" in text and "Next attempt at" in text


async def test_open_tabs_hear_the_retry_in_the_bubbles_words(
    app: Starlette, fake_twilio: FakeTwilio, make_case, make_staff
) -> None:
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    message = await stored(app, staff, made.case_id, "Busy line.")
    tab = Tab(staff_id=staff.id, sees_everything=True)
    app.state.hub.attach(tab)
    try:
        fake_twilio.fail_next(429, retry_after=30)
        await handed_over(app, message)
        async with asyncio.timeout(WAIT_SECONDS):
            while True:  # the tab's updates, until the one that says what the outbox does with the text
                update = as_event(await tab.queue.get()).data
                if f'id="message-{message.id}-status"' in update and "trying again" in update:
                    break
    finally:
        app.state.hub.detach(tab)
    max_attempts = app.state.outbox.rules.max_attempts
    assert re.search(rf"Twilio is busy — trying again at .+, attempt 2 of {max_attempts}", words(update))
    assert 'hx-swap-oob="true"' in update  # it replaces the status line wherever the text is shown


# ---------------------------------------------------------------- the API


async def test_api_filters_the_queue_by_state(app: Starlette, scene: Scene, supervisor: httpx.AsyncClient) -> None:
    for state, message in [
        ("scheduled", scene.scheduled),
        ("waiting", scene.waiting),
        ("retrying", scene.retrying),
        ("sending", scene.sending),
        ("failed", scene.failed),
    ]:
        answer = await supervisor.get(f"/api/v1/queue?state={state}")
        assert answer.status_code == 200, answer.text
        assert [(item["id"], item["state"]) for item in answer.json()] == [(message.id, state)]
    assert (await supervisor.get("/api/v1/queue?state=stuck")).json() == []
    bad = await supervisor.get("/api/v1/queue?state=lost")
    assert bad.status_code == 422 and "state" in bad.json()["fields"]
    # Without a state, what it always answered: scheduled and queued texts.
    plain = {item["id"] for item in (await supervisor.get("/api/v1/queue")).json()}
    assert plain == {scene.scheduled.id, scene.waiting.id, scene.retrying.id, scene.sending.id}

    retrying = (await supervisor.get(f"/api/v1/messages/{scene.retrying.id}")).json()
    [attempt] = retrying["attempts"]
    assert attempt["outcome"] == "retry" and attempt["error_code"] == 20503
    assert attempt["next_attempt_at"] == retrying["next_attempt_at"] is not None


async def test_api_retry_answers_the_message_or_409(
    app: Starlette, make_staff, make_case, supervisor: httpx.AsyncClient, fake_twilio: FakeTwilio
) -> None:
    staff = await make_staff("supervisor")
    made = await make_case(phone=MARIA)
    failed = await refused_once(app, fake_twilio, await stored(app, staff, made.case_id, "Gave up."), status=429)
    assert failed.status == MessageStatus.FAILED and failed.error_code == 20429
    answer = await supervisor.post(f"/api/v1/messages/{failed.id}/retry")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "queued" and body["id"] == failed.id
    assert body["attempts"][-1]["outcome"] in ("retry", "unknown", "failed")
    assert fake_twilio.count_to(MARIA) == 1  # handed over after the answer
    sent = (await supervisor.get(f"/api/v1/messages/{failed.id}")).json()
    assert sent["attempts"][-1]["outcome"] == "accepted" and sent["next_attempt_at"] is None

    conflict = await supervisor.post(f"/api/v1/messages/{failed.id}/retry")
    assert conflict.status_code == 409 and "Twilio already has this text" in conflict.json()["error"]
    assert (await supervisor.post("/api/v1/messages/999999/retry")).status_code == 404
    assert fake_twilio.count_to(MARIA) == 1
