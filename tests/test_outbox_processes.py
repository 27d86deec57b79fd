"""The outbox across processes: real `inbox worker` processes (python -m inbox worker) sharing the
test's database, sending through the real twilio library to the fake Twilio in the test's own loop.

What is counted is what the fake accepted (its own log), never what the workers say they did:
- a worker killed with SIGKILL mid-batch, with a create held in flight, and a second worker started:
  every text reaches Twilio exactly once, and the one in flight is adopted by looking it up;
- two workers draining 1,000 texts on PostgreSQL at once: no text twice, and both did some;
- SIGTERM while a create is in flight: the call finishes, the worker exits 0, nothing stays `sending`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette

from inbox.crypto import SecretBox
from inbox.models import AttemptOutcome, Channel, Message, MessageStatus, OutboxState, SendAttempt, Staff
from inbox.services.channels import ChannelForm, save_channel
from inbox.services.directory import PhoneInput, create_case, create_client
from inbox.services.messaging import SendRequest, send_text
from inbox.services.staff import create_staff
from inbox.settings import Settings
from tests.support.apps import running
from tests.support.config import ACCOUNT_SID
from tests.support.fake_twilio import FakeTwilio
from tests.support.postgres import scratch_database
from tests.support.records import MARIA, MakeCase
from tests.support.staff import PASSWORD, MakeStaff
from tests.support.workers import outbox_empty, start_worker, until, worker_env, workers_cleaned_up

ANA = "+14045550177"  # a second client: the text held in flight goes to her, so only it is held
HIGH_THROUGHPUT = "1000"  # segments per second: pacing is not what these tests are about
TEXTS_AT_ONCE = 8  # texts stored concurrently while a test fills a large outbox


def reminder(n: int) -> str:
    return f"Reminder {n:04d}: your hearing is on Monday at 9."


async def texts_due(app: Starlette, staff: Staff, case_id: int, count: int) -> list[int]:
    """`count` texts due now (bodies `reminder(n)`), stored as a person's send stores them; their ids.
    A few at a time, as several people sending at once would."""
    ids: list[int] = []
    for start in range(0, count, TEXTS_AT_ONCE):
        numbers = range(start, min(start + TEXTS_AT_ONCE, count))
        requests = [SendRequest(body=reminder(n), case_id=case_id) for n in numbers]
        stored = await asyncio.gather(*(send_text(app.state.outbox, staff, request) for request in requests))
        ids.extend(message.id for message in stored)
    return ids


async def fast_channel(app: Starlette, settings: Settings, admin: Staff) -> None:
    """The test's sending number with a throughput high enough that pacing never holds a worker back."""
    channel = await Channel.get(id=app.state.channel.id)
    box = SecretBox(settings.secret_key, settings.secret_key_old)
    form = replace(ChannelForm.of(channel), throughput=HIGH_THROUGHPUT)
    await save_channel(admin, box, form, channel, env_account_sid=ACCOUNT_SID)


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    app: Starlette,
    settings: Settings,
    fake_twilio: FakeTwilio,
    make_staff: MakeStaff,
    make_case: MakeCase,
    tmp_path: Path,
) -> None:
    fake_twilio.callbacks_enabled = False  # texts stay queued at Twilio: only a look-up can find them
    admin = await make_staff("admin")
    await fast_channel(app, settings, admin)
    maria = await make_case()
    ana = await make_case(phone=ANA, name="Ana Ruiz")
    held_at = 60  # the 61st text goes to Ana, whose creates the fake holds until the test lets go
    held_gate = fake_twilio.hold_gate.setdefault(ANA, asyncio.Event())
    ids = []
    for n in range(200):
        case = ana if n == held_at else maria
        message = await send_text(app.state.outbox, admin, SendRequest(body=reminder(n), case_id=case.case_id))
        ids.append(message.id)
    held_id = ids[held_at]
    env = worker_env(settings, fake_twilio.base_url)

    async with workers_cleaned_up() as started:
        first = await start_worker(tmp_path / "first", env, "first")
        started.append(first)

        async def held_create_in_flight() -> bool:
            return fake_twilio.count_to(ANA) == 1

        await until(held_create_in_flight, 60, "the held create to reach the fake", first)
        first.kill()
        assert await first.exit_code() == -9
        accepted_before_restart = len(fake_twilio.messages)
        held_gate.set()  # the dead worker's connection is gone; nothing waits for this answer any more

        second = await start_worker(tmp_path / "second", env, "second")
        started.append(second)
        await until(outbox_empty, 90, "every text to leave the outbox", second)
        second.terminate()
        assert await second.exit_code() == 0, second.describe()

    # Mid-batch: some texts had reached Twilio when the worker died, and some had not.
    assert held_at <= accepted_before_restart < 200
    # Each of the 200 texts reached Twilio exactly once, by the fake's own log.
    at_twilio = Counter(str(message["body"]) for message in fake_twilio.messages)
    assert at_twilio == Counter(reminder(n) for n in range(200))
    assert fake_twilio.count_to(ANA) == 1
    # None lost: every one was accepted, with the SID Twilio gave it.
    sids = {str(message["body"]): message["sid"] for message in fake_twilio.messages}
    messages = await Message.filter(id__in=ids)
    assert {m.status for m in messages} == {MessageStatus.QUEUED}
    assert {m.id: m.provider_sid for m in messages} == {m.id: sids[m.body] for m in messages}
    # The text in flight when the worker died was looked up and adopted, not sent again.
    attempts = await SendAttempt.filter(message_id=held_id).order_by("id")
    first_attempt, *looked_up, adopted = attempts
    assert first_attempt.outcome == AttemptOutcome.UNKNOWN and first_attempt.worker == first.worker_id
    # Killed mid-call — or, on a loaded machine, its 1 s send timeout came first: unknown either way.
    assert "stopped before Twilio answered" in first_attempt.detail or "did not answer in time" in first_attempt.detail
    # A look-up that outlasts the 1 s timeout under load is tried again later, never turned into a send.
    assert all(a.outcome == AttemptOutcome.RETRY and "could not be asked" in a.detail for a in looked_up), looked_up
    assert adopted.outcome == AttemptOutcome.ACCEPTED and adopted.worker == second.worker_id
    assert "found by looking it up" in adopted.detail


async def test_sigterm_lets_the_call_in_flight_finish_and_claims_nothing_more(
    app: Starlette,
    settings: Settings,
    fake_twilio: FakeTwilio,
    make_staff: MakeStaff,
    make_case: MakeCase,
    tmp_path: Path,
) -> None:
    fake_twilio.callbacks_enabled = False
    admin = await make_staff("admin")
    await fast_channel(app, settings, admin)
    maria = await make_case()
    ana = await make_case(phone=ANA, name="Ana Ruiz")
    gate = fake_twilio.hold_gate.setdefault(ANA, asyncio.Event())
    outbox = app.state.outbox
    held = await send_text(outbox, admin, SendRequest(body="Your hearing moved to Tuesday.", case_id=ana.case_id))
    behind = []
    for n in range(5):
        message = await send_text(outbox, admin, SendRequest(body=reminder(n), case_id=maria.case_id))
        behind.append(message.id)
    # One lane: the texts behind the held one wait for it, so a worker that kept claiming would send them.
    # A send timeout longer than the test: the call stays in flight until the gate opens.
    env = worker_env(settings, fake_twilio.base_url, INBOX_WORKER_CONCURRENCY="1", INBOX_SEND_TIMEOUT_SECONDS="120")

    async with workers_cleaned_up() as started:
        worker = await start_worker(tmp_path / "worker", env)
        started.append(worker)

        async def held_create_in_flight() -> bool:
            return fake_twilio.count_to(ANA) == 1

        async def stopping() -> bool:
            return "Stopping: no new claims" in worker.output()

        await until(held_create_in_flight, 60, "the held create to reach the fake", worker)
        worker.terminate()
        await until(stopping, 60, "the worker to take in SIGTERM", worker)
        assert worker.process.returncode is None  # still waiting for Twilio's answer
        gate.set()
        assert await worker.exit_code() == 0, worker.describe()

    assert "stopped after handing over 1 texts" in worker.output()
    # The call in flight finished and was recorded: accepted once, with the SID Twilio gave it.
    assert fake_twilio.count_to(ANA) == 1
    after = await Message.get(id=held.id)
    assert after.provider_sid == fake_twilio.messages[0]["sid"]
    assert after.status == MessageStatus.QUEUED and after.outbox_state is None and after.lease_owner is None
    attempts = await SendAttempt.filter(message_id=held.id)
    assert [(a.outcome, a.worker) for a in attempts] == [(AttemptOutcome.ACCEPTED, worker.worker_id)]
    # Nothing more was claimed after SIGTERM, and nothing stays `sending` under the stopped worker's name.
    assert fake_twilio.count_to(MARIA) == 0
    assert not await Message.filter(outbox_state=OutboxState.SENDING).exists()
    waiting = await Message.filter(id__in=behind)
    assert {(m.outbox_state, m.attempt_count, m.lease_owner) for m in waiting} == {(OutboxState.WAITING, 0, None)}


async def test_two_workers_on_postgresql_drain_a_thousand_texts_without_a_double(
    settings: Settings, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    fake_twilio.callbacks_enabled = False
    async with scratch_database("procs") as url:
        pg_settings = settings.with_changes(database_url=url)
        async with running(pg_settings, fake_twilio) as app:
            admin, _ = await create_staff(email="admin@example.org", name="Ada Admin", role="admin", password=PASSWORD)
            await fast_channel(app, pg_settings, admin)
            client = await create_client(name="Maria Lopez", phones=[PhoneInput(MARIA, "mobile", True)])
            case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id)
            # A send timeout well above a create's time on a busy machine: no look-ups, just claims.
            env = worker_env(pg_settings, fake_twilio.base_url, INBOX_SEND_TIMEOUT_SECONDS="10")

            ids = await texts_due(app, admin, case.id, 1000)

            async with workers_cleaned_up() as started:
                # Started together on a full outbox: from their first claim they compete for the same rows.
                workers = await asyncio.gather(
                    start_worker(tmp_path / "one", env, "one"), start_worker(tmp_path / "two", env, "two")
                )
                started.extend(workers)
                await until(outbox_empty, 120, "every text to leave the outbox", *workers)
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    assert await worker.exit_code() == 0, worker.describe()

            # No text twice at Twilio, and none missing.
            assert Counter(str(message["body"]) for message in fake_twilio.messages) == Counter(
                reminder(n) for n in range(1000)
            )
            messages = await Message.filter(id__in=ids)
            assert {m.status for m in messages} == {MessageStatus.QUEUED}
            assert len({m.provider_sid for m in messages}) == 1000
            # Each text accepted once, by one of the two workers; both did some.
            accepted = await SendAttempt.filter(outcome=AttemptOutcome.ACCEPTED).values_list("message_id", "worker")
            assert sorted(message_id for message_id, _ in accepted) == sorted(ids)
            by_worker = Counter(worker for _, worker in accepted)
            assert set(by_worker) == {worker.worker_id for worker in workers}, by_worker
