"""Each sending number's pace, shared by every worker: through the database by default, through Redis
when INBOX_PACING_URL names one. The same behaviour is asked of both: a burst, then the channel's
throughput; a 429 holds the whole channel until Twilio's Retry-After; two workers share one schedule.
Time is moved (`send_due(now=…)`), never slept on; what Twilio received is counted at the fake."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from starlette.applications import Starlette

from inbox import clock
from inbox.services.messaging import Outbox
from inbox.services.outbox import worker_name
from inbox.services.pacing import DatabasePacer, Pacer, RedisPacer, pacer_for
from inbox.worker import send_due
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import no_quiet_hours, stored_texts
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff

REDIS_URL = os.environ.get("INBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BURST = 5  # the settings' default: a long code's first five segments go at once


def make_pacer(kind: str) -> Pacer:
    # A prefix of its own: test runs side by side (or an installation) may share the Redis.
    return RedisPacer(REDIS_URL, prefix=f"inbox-test:{secrets.token_hex(4)}:") if kind == "redis" else DatabasePacer()


@pytest.fixture(params=["database", "redis"])
async def paced(request: pytest.FixtureRequest, app: Starlette) -> AsyncIterator[Outbox]:
    """The app's outbox with the pacer under test; the channel keeps its default throughput (1/s)."""
    pacer = make_pacer(request.param)
    if isinstance(pacer, RedisPacer):
        assert await pacer.answers(), f"Redis is not reachable at {REDIS_URL}: start it, or set INBOX_TEST_REDIS_URL"
    app.state.outbox = replace(app.state.outbox, pacer=pacer)
    try:
        yield app.state.outbox
    finally:
        await pacer.close()


async def texts_for_maria(outbox: Outbox, make_case: MakeCase, make_staff: MakeStaff, count: int) -> None:
    await no_quiet_hours()
    made = await make_case(phone=MARIA)
    await stored_texts(outbox, await make_staff("supervisor"), made.case_id, [f"Notice {n}" for n in range(count)])


async def test_a_channel_sends_its_burst_then_one_segment_a_second(
    paced: Outbox, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    await texts_for_maria(paced, make_case, make_staff, 9)
    start = clock.now()
    # Another worker, with its own connection to the same schedule.
    other = replace(paced, worker_id=worker_name("other"), pacer=paced.pacer)

    assert await send_due(paced, now=start) == BURST
    assert await send_due(other, now=start) == 0  # the burst is spent for every worker
    assert await send_due(other, now=start + timedelta(seconds=0.5)) == 0
    assert await send_due(other, now=start + timedelta(seconds=1)) == 1
    assert await send_due(paced, now=start + timedelta(seconds=1)) == 0
    assert await send_due(paced, now=start + timedelta(seconds=3)) == 2
    assert len(fake_twilio.messages) == BURST + 3


async def test_a_429_holds_the_whole_channel_until_retry_after(
    paced: Outbox, make_case: MakeCase, make_staff: MakeStaff, fake_twilio: FakeTwilio
) -> None:
    await texts_for_maria(paced, make_case, make_staff, 3)
    fake_twilio.fail_next(429, times=1, retry_after=30)
    start = clock.now()

    assert await send_due(paced, now=start) == 1  # tried once: Twilio said 429, Retry-After 30 s
    for seconds in (1, 10, 29):
        assert await send_due(paced, now=start + timedelta(seconds=seconds)) == 0
    assert len(fake_twilio.requests) == 1
    assert await send_due(paced, now=start + timedelta(seconds=31)) >= 1
    assert len(fake_twilio.messages) >= 1


def test_the_setting_chooses_the_pacer() -> None:
    assert isinstance(pacer_for("database"), DatabasePacer)
    redis = pacer_for(REDIS_URL)
    assert isinstance(redis, RedisPacer)
