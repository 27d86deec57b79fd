"""Fast ingest (inbox.services.ingest): a text is acknowledged once stored and processed right after.

- a burst of webhooks at once: every one answered, every text processed exactly once, events for each;
- stored and not processed (the process was killed between the two): processed when the app starts;
- a real `inbox serve` killed with SIGKILL in the middle of 800 webhooks — alone, and with an `inbox
  worker` processing the burst on a Redis bus (both killed): every acknowledged text is in the database
  after a restart, and Twilio's retries of the others add each exactly once;
- the copy of the channels and the organisation's policies each process keeps: an admin's change applies
  to the next webhook, another process's change arrives through the bus, a channel added elsewhere is found.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from tortoise import Tortoise
from twilio.request_validator import RequestValidator

from inbox import clock, db
from inbox.app import simulator_token
from inbox.crypto import SecretBox
from inbox.events import MessageReceived, SettingsChanged
from inbox.models import Channel, LinkingPolicy, Message, MessageLink, Organisation, WebhookPayload
from inbox.services import settings_cache
from inbox.services.ingest import RECOVER_SECONDS, claim_texts, store_payloads
from inbox.services.organisation import OrganisationRules, update_rules
from inbox.settings import Secret, Settings
from inbox.sms.simulator import DEFAULT_FROM_NUMBER, SIMULATOR_ACCOUNT_SID
from tests.support import database
from tests.support.apps import asgi_client, running
from tests.support.channels import SECOND_NUMBER, SECOND_SID, SECOND_TOKEN
from tests.support.cli import cli_env
from tests.support.config import ACCOUNT_SID
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, MakeCase
from tests.support.redis_server import RedisServer
from tests.support.staff import MakeStaff
from tests.support.webhooks import INBOUND, inbound_params, inbound_params_for, new_sid, numbered_sid, signed_post_args

BURST = 800
AT_ONCE = 32  # webhooks in flight together, as wrk -c32 in bench/ingest.py
KILL_AFTER = 250  # acknowledged webhooks before the server is killed
WAIT_SECONDS = 180.0  # generous: the machine is shared; this bounds a hang, it measures nothing


async def test_a_burst_is_answered_and_every_text_processed_once(app: Starlette, make_case: MakeCase) -> None:
    await make_case(MARIA)
    sids = [new_sid() for _ in range(60)]
    async with app.state.bus.subscribe() as subscription, asgi_client(app) as client:
        # Two deliveries of the first text among them: Twilio's retry of a webhook it thought lost.
        posts = [signed_post_args(INBOUND, inbound_params(sid, MARIA, f"Text {n}")) for n, sid in enumerate(sids)]
        answers = await asyncio.gather(*(client.post(**args) for args in [posts[0], *posts]))
        assert [answer.status_code for answer in answers] == [200] * (len(sids) + 1)
        assert all(answer.text.endswith("<Response/>") for answer in answers)
        await app.state.ingest.drained()
        received = []
        while not subscription._queue.empty():
            event = subscription._queue.get_nowait()
            if isinstance(event, MessageReceived):
                received.append(event.provider_sid)
    stored = Counter(await Message.filter(provider_sid__in=sids).values_list("provider_sid", flat=True))
    assert stored == Counter(sids)  # every text once, the repeat not at all
    assert Counter(received) == Counter(sids)
    assert await WebhookPayload.filter(kind="message", processed_at=None).count() == 0
    assert await WebhookPayload.filter(error="duplicate").count() == 1
    # Each filed on the case, as a text processed before its answer is.
    assert await MessageLink.filter(message__provider_sid__in=sids).count() == len(sids)


async def test_texts_stored_but_never_processed_are_processed_when_the_app_starts(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    # What a process killed between the store and the processing leaves behind: rows, and no texts.
    sids = [numbered_sid(n) for n in range(5)]
    await db.connect(settings.database_url)
    try:
        forms = [(inbound_params(sid, MARIA, f"Stored {n}"), None) for n, sid in enumerate(sids)]
        await store_payloads(forms, clock.now())
        assert not await Message.filter(provider_sid__in=sids).exists()
    finally:
        await db.disconnect()
    async with running(settings, fake_twilio) as app:
        await app.state.ingest.drained()
        bodies = await Message.filter(provider_sid__in=sids).order_by("id").values_list("body", flat=True)
        assert bodies == [f"Stored {n}" for n in range(5)]
        assert await WebhookPayload.filter(processed_at=None).count() == 0


async def test_a_claim_never_overtakes_a_text_of_the_same_sender_being_processed(settings: Settings) -> None:
    async with database_only(settings.database_url):
        now = clock.now()
        lease = now + timedelta(seconds=60)
        forms = [
            (inbound_params(numbered_sid(0), MARIA, "First"), None),  # being processed inline elsewhere
            (inbound_params(numbered_sid(1), MARIA, "Second"), None),
            (inbound_params(numbered_sid(2), "+14045550199", "Someone else"), None),
        ]
        first, second, other = await store_payloads(forms, now, [lease, None, None])
        assert await claim_texts(10, now, lease) == [other]
        await WebhookPayload.filter(id=first).update(processed_at=now)
        assert await claim_texts(10, now, lease) == [second]
        assert await claim_texts(10, now, lease) == []  # each claimed once while its lease holds


async def test_a_claim_passes_over_texts_behind_one_being_processed_to_take_the_next_senders(
    settings: Settings,
) -> None:
    async with database_only(settings.database_url):
        now = clock.now()
        lease = now + timedelta(seconds=60)
        forms = [(inbound_params(numbered_sid(0), MARIA, "Being processed"), None)]
        forms += [(inbound_params(numbered_sid(n), MARIA, f"Behind it {n}"), None) for n in range(1, 4)]
        forms += [(inbound_params(numbered_sid(n), f"+1404555{n:04d}", "Someone else"), None) for n in range(4, 7)]
        ids = await store_payloads(forms, now, [lease] + [None] * 6)
        # The three behind the text in flight are passed over (they are among the oldest the claim looks at).
        assert await claim_texts(2, now, lease) == ids[4:6]
        assert await claim_texts(2, now, lease) == ids[6:7]


@pytest.mark.skipif(not database.database_url(Path()).startswith("sqlite"), reason="SQLite's one writer")
async def test_a_store_waits_for_the_writer_another_process_holds_and_then_succeeds(settings: Settings) -> None:
    """`inbox worker` holds SQLite's writer through each unit of work: the web's group store waits its turn
    (without the busy handler's sleeps) and stores every webhook; its connection keeps its busy timeout after."""
    async with database_only(settings.database_url):
        other = sqlite3.connect(settings.database_url.removeprefix("sqlite://"), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the other process's unit of work: the writer is taken
            forms = [(inbound_params(numbered_sid(n), MARIA, f"Waited {n}"), None) for n in range(3)]
            storing = asyncio.create_task(store_payloads(forms, clock.now()))
            await asyncio.sleep(0.2)
            assert not storing.done()  # it waits for the writer…
            other.execute("COMMIT")
            ids = await asyncio.wait_for(storing, 5)  # …and takes it once the other lets go
        finally:
            other.close()
        assert await WebhookPayload.filter(id__in=ids).count() == 3
        timeout = await Tortoise.get_connection("default").execute_query_dict("PRAGMA busy_timeout")
        assert list(timeout[0].values()) == [5000]  # aiosqlite's, for every other statement of the process


# ---------------------------------------------------------------- kill -9 in the middle of a burst


def serve_env(workdir: Path, database_url: str, bus: str) -> dict[str, str]:
    env = cli_env(workdir)
    env.update(INBOX_DATABASE_URL=database_url, INBOX_SECRET_KEY=SERVE_SECRET, INBOX_BROADCAST_URL=bus)
    return env


SERVE_SECRET = "ingest-kill-test-" + "k" * 32


def start_inbox(workdir: Path, database_url: str, bus: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "inbox", *args],
            cwd=workdir,
            env=serve_env(workdir, database_url, bus),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Processes:
    """`inbox serve --no-worker`, and with a network bus an `inbox worker` beside it (which then processes
    the texts the web process leaves in a burst)."""

    def __init__(self, workdir: Path, database_url: str, bus: str, port: int) -> None:
        self.workdir, self.database_url, self.bus, self.port = workdir, database_url, bus, port
        self.log = workdir / "serve.log"
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        """Starts them; the web process."""
        web = start_inbox(
            self.workdir, self.database_url, self.bus, self.log, "serve", "--no-worker", "--port", str(self.port)
        )
        self.running = [web]
        if self.bus != "memory://":
            self.running.append(start_inbox(self.workdir, self.database_url, self.bus, self.log, "worker"))
        return web

    def kill(self, signum: int) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signum)
        for process in self.running:
            process.wait(30)


async def until_serving(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if process.poll() is not None:
                pytest.fail(f"`inbox serve` exited with {process.returncode}; its log is {log}")
            try:
                if (await client.get("/login")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def database_only(database_url: str) -> AsyncIterator[None]:
    """The test's database, with no app of the test's own: an app in this process would claim texts too."""
    await db.connect(database_url)
    try:
        yield
    finally:
        await database.wipe()
        await db.disconnect()


@pytest.mark.parametrize("shape", ["alone", "with a worker"])
async def test_kill_9_during_a_burst_loses_no_acknowledged_text(settings: Settings, tmp_path: Path, shape: str) -> None:
    redis = RedisServer(tmp_path)
    if shape == "with a worker":
        await redis.start()
    processes = Processes(
        tmp_path, settings.database_url, redis.url if shape == "with a worker" else "memory://", free_port()
    )
    try:
        async with database_only(settings.database_url):
            await kill_9_during_a_burst(processes)
    finally:
        redis.stop()


async def test_a_worker_on_a_network_bus_processes_the_texts_the_web_process_left(
    settings: Settings, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    log = tmp_path / "worker.log"
    worker = start_inbox(tmp_path, settings.database_url, redis.url, log, "worker")
    sids = [numbered_sid(n) for n in range(5)]
    try:
        async with database_only(settings.database_url):
            async with asyncio.timeout(WAIT_SECONDS):
                while b"running" not in log.read_bytes():
                    assert worker.poll() is None, log.read_text()
                    await asyncio.sleep(0.1)
            # What a web process stores and leaves during a burst: rows nobody claimed, after the worker started.
            simulator = {"AccountSid": SIMULATOR_ACCOUNT_SID, "To": DEFAULT_FROM_NUMBER}
            forms = [({**inbound_params(sid, MARIA, f"Left {n}"), **simulator}, None) for n, sid in enumerate(sids)]
            await store_payloads(forms, clock.now())
            # Well within RECOVER_SECONDS, and no web process runs: the worker took them up.
            async with asyncio.timeout(RECOVER_SECONDS / 2):
                while await Message.filter(provider_sid__in=sids).count() < len(sids):
                    assert worker.poll() is None, log.read_text()
                    await asyncio.sleep(0.1)
            assert await WebhookPayload.filter(provider_sid__in=sids, processed_at=None).count() == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        redis.stop()


async def kill_9_during_a_burst(processes: Processes) -> None:
    port = processes.port
    base = f"http://127.0.0.1:{port}"
    token = simulator_token(Settings(secret_key=Secret(SERVE_SECRET)))
    validator = RequestValidator(token)
    sids = [numbered_sid(n) for n in range(BURST)]

    def signed(n: int) -> tuple[dict[str, str], dict[str, str]]:
        params = {
            **inbound_params(sids[n], f"+1404555{n % 50:04d}", f"Burst text {n}"),
            "AccountSid": SIMULATOR_ACCOUNT_SID,
            "To": DEFAULT_FROM_NUMBER,
        }
        return params, {"X-Twilio-Signature": validator.compute_signature(f"{base}{INBOUND}", params)}

    acknowledged: set[int] = set()
    log = processes.log
    server = processes.start()
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as client:
            await until_serving(client, server, log)
            killed = asyncio.Event()

            async def post(n: int) -> None:
                if killed.is_set():
                    return
                params, headers = signed(n)
                try:
                    answer = await client.post(INBOUND, data=params, headers=headers)
                except httpx.TransportError:
                    return  # not acknowledged: Twilio would try again
                if answer.status_code == 200:
                    acknowledged.add(n)
                    if len(acknowledged) >= KILL_AFTER and not killed.is_set():
                        killed.set()
                        processes.kill(signal.SIGKILL)

            pending = iter(range(BURST))

            async def lane() -> None:
                for n in pending:
                    await post(n)

            await asyncio.gather(*(lane() for _ in range(AT_ONCE)))
            server.wait()
            assert killed.is_set() and KILL_AFTER <= len(acknowledged) < BURST
            stored_at_kill = await Message.filter(provider_sid__in=sids).count()

            server = processes.start()
            await until_serving(client, server, log)
            # Every text acknowledged before the kill is processed after the restart, without any retry.
            async with asyncio.timeout(WAIT_SECONDS):
                while await Message.filter(provider_sid__in=[sids[n] for n in acknowledged]).count() < len(
                    acknowledged
                ):
                    await asyncio.sleep(0.2)
            # Twilio retries what it never heard back about; each text ends up stored exactly once.
            for n in range(BURST):
                if n not in acknowledged:
                    params, headers = signed(n)
                    assert (await client.post(INBOUND, data=params, headers=headers)).status_code == 200
            async with asyncio.timeout(WAIT_SECONDS):
                while await Message.filter(provider_sid__in=sids).count() < BURST:
                    await asyncio.sleep(0.2)
    finally:
        processes.kill(signal.SIGTERM)
    stored = Counter(await Message.filter(provider_sid__in=sids).values_list("provider_sid", flat=True))
    assert stored == Counter(sids), "a text was lost or stored twice"
    assert stored_at_kill < BURST


# ---------------------------------------------------------------- the settings each process keeps a copy of


async def test_an_admins_policy_change_applies_to_the_next_webhook(
    app: Starlette, make_staff: MakeStaff, make_case: MakeCase
) -> None:
    admin = await make_staff("admin")
    await make_case(MARIA)
    await make_case(MARIA)
    async with asgi_client(app) as client:
        assert (
            await client.post(**signed_post_args(INBOUND, inbound_params(new_sid(), MARIA, "one")))
        ).status_code == 200
        assert await MessageLink.filter(message__body="one").count() == 2  # the default policy: both cases
        organisation = await Organisation.first()
        assert organisation is not None
        async with app.state.bus.subscribe() as subscription:
            await update_rules(admin, rules_of(organisation, linking_policy="best_guess"), app.state.bus)
            assert await subscription.get() == SettingsChanged(what="organisation")
        assert (
            await client.post(**signed_post_args(INBOUND, inbound_params(new_sid(), MARIA, "two")))
        ).status_code == 200
        assert await MessageLink.filter(message__body="two").count() == 1  # best guess: one case


async def test_a_change_announced_by_another_process_is_read_again(app: Starlette, make_case: MakeCase) -> None:
    await make_case(MARIA)
    await make_case(MARIA)
    async with asgi_client(app) as client:
        assert (
            await client.post(**signed_post_args(INBOUND, inbound_params(new_sid(), MARIA, "one")))
        ).status_code == 200
        assert await MessageLink.filter(message__body="one").count() == 2
        # Another process saves the setting (its own write) and announces it on the bus.
        await Organisation.all().update(linking_policy=LinkingPolicy.BEST_GUESS)
        await app.state.bus.publish(SettingsChanged(what="organisation"))
        async with asyncio.timeout(WAIT_SECONDS):
            while settings_cache.is_cached(settings_cache.ORGANISATION):
                await asyncio.sleep(0)
        assert (
            await client.post(**signed_post_args(INBOUND, inbound_params(new_sid(), MARIA, "two")))
        ).status_code == 200
        assert await MessageLink.filter(message__body="two").count() == 1


async def test_a_channel_added_by_another_process_is_found_for_its_first_webhook(
    app: Starlette, settings: Settings
) -> None:
    async with asgi_client(app) as client:
        first = inbound_params(new_sid(), MARIA, "to the first number")
        assert (await client.post(**signed_post_args(INBOUND, first))).status_code == 200
        assert settings_cache.is_cached(settings_cache.CHANNELS)
        # Written by another process: this one's copy does not have it, and no event came.
        await Channel.create(
            label="Housing unit",
            account_sid=SECOND_SID,
            from_number=SECOND_NUMBER,
            auth_token_encrypted=SecretBox(settings.secret_key).encrypt(SECOND_TOKEN),
        )
        params = inbound_params_for(SECOND_SID, SECOND_NUMBER, new_sid(), body="to the new number")
        answer = await client.post(**signed_post_args(INBOUND, params, token=SECOND_TOKEN))
        assert answer.status_code == 200
        message = await Message.get(body="to the new number").prefetch_related("conversation")
        assert message.conversation.channel_id == (await Channel.get(account_sid=SECOND_SID)).id
        # A forged one for the same account is still refused, and nothing is stored.
        forged = inbound_params_for(SECOND_SID, SECOND_NUMBER, new_sid(), body="forged")
        assert (await client.post(**signed_post_args(INBOUND, forged, token="wrong"))).status_code == 403
        assert not await WebhookPayload.filter(provider_sid=forged["MessageSid"]).exists()
    assert ACCOUNT_SID != SECOND_SID


def text(sender: str, body: str) -> dict[str, object]:
    return signed_post_args(INBOUND, inbound_params(new_sid(), sender, body))


def rules_of(organisation: Organisation, **changes: object) -> OrganisationRules:
    rules = {
        "name": organisation.name,
        "char_limit": organisation.char_limit,
        "linking_policy": organisation.linking_policy.value,
        "alert_policy": organisation.alert_policy.value,
        "dismiss_alerts_on_reply": organisation.dismiss_alerts_on_reply,
        "delete_media_at_provider": organisation.delete_media_at_provider,
        "opt_in_requests": organisation.opt_in_requests,
        **changes,
    }
    return OrganisationRules(**rules)  # type: ignore[arg-type]
