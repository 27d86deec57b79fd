"""Outbox benchmark: how fast real `inbox worker` processes hand due texts to a zero-latency Twilio,
and how exactly a channel's throughput paces them.

Throughput: TEXTS due texts (default 10,000) in a fresh database — SQLite, then PostgreSQL — drained
by one and then two `python -m inbox worker` processes (each with its INBOX_WORKER_CONCURRENCY lanes,
4 by default) sending through the real twilio library to the tests' fake Twilio (tests/support/
fake_twilio.py), which answers at once and posts no callbacks. The channel's throughput is set to its
maximum and the burst to the whole batch, so pacing never holds a worker back. The rate is the fake's
own: accepted creates per second between the first and the last it accepted (worker start-up is not
counted), and per worker. The baseline, measured in the same run against the same fake: a process
that only calls TwilioProvider.send (the twilio library and our thin adapter, no database) with as
many sends at once as a worker has lanes. Ratio = texts per second per worker ÷ baseline.

Pacing: two worker processes share one channel configured at 10 and then 50 segments per second;
the rate is the slope of the fake's accept times after the burst (INBOX_PACING_BURST), over about
30 seconds each, against the configured rate.

    .venv/bin/python bench/outbox.py [--texts 10000] [--postgres postgres://postgres@127.0.0.1:5432]
                                     [--skip-postgres] [--pacing-seconds 30]

Prints the figures and appends them to bench/RESULTS.md. The test suite never runs it (bin/test runs
pytest on tests/ only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' fake Twilio and worker helpers


from inbox import clock, db  # noqa: E402
from inbox.app import create_app  # noqa: E402
from inbox.crypto import SecretBox  # noqa: E402
from inbox.models import Channel, Message, OutboxState  # noqa: E402
from inbox.services.channels import ChannelForm, save_channel  # noqa: E402
from inbox.services.directory import PhoneInput, create_case, create_client  # noqa: E402
from inbox.services.messaging import SendRequest, send_text  # noqa: E402
from inbox.services.staff import create_staff  # noqa: E402
from inbox.settings import Secret, Settings  # noqa: E402
from inbox.sms.base import OutboundText  # noqa: E402
from inbox.sms.twilio import TwilioProvider  # noqa: E402
from tests.support.config import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL  # noqa: E402
from tests.support.fake_twilio import FakeTwilio  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.sqlite import fresh_sqlite_database  # noqa: E402
from tests.support.workers import WorkerProcess, start_worker, worker_env  # noqa: E402

CLIENT_PHONE = "+14045387319"
LANES = 4  # INBOX_WORKER_CONCURRENCY's default: the baseline sends as many at once
MAX_THROUGHPUT = "1000"
BASELINE_TEXTS = 3000
DRAIN_TIMEOUT_SECONDS = 1800.0


def body(n: int) -> str:
    return f"Reminder {n:05d}: your hearing is on Monday at 9."


def accept_rate(times: list[float], skip: int = 0) -> float:
    """Accepted creates per second between the first counted and the last."""
    counted = sorted(times)[skip:]
    if len(counted) < 2:
        return 0.0
    return (len(counted) - 1) / (counted[-1] - counted[0])


# ---------------------------------------------------------------- databases


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class Run:
    backend: str
    workers: int
    texts: int
    rate: float  # texts accepted per second, all workers together
    doubles: int  # texts the fake accepted more than once (must be 0)

    @property
    def per_worker(self) -> float:
        return self.rate / self.workers


def bench_settings(url: str, fake: FakeTwilio, workdir: Path) -> Settings:
    return Settings(
        database_url=url,
        public_url=PUBLIC_URL,
        secret_key=Secret("bench-secret-key-" + "x" * 32),
        media_dir=workdir / "media",
        data_dir=workdir / "data",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        twilio_from_number=FROM_NUMBER,
        twilio_api_url=fake.base_url,
        migrate_on_start=False,
        run_worker=False,
    )


async def fill_outbox(settings: Settings, texts: int, throughput: str) -> None:
    """`texts` texts due now. The first is stored by the service a person's send uses; the rest are
    copies of its row with their own bodies (storing 10,000 one by one would take longer than sending them)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        admin, _ = await create_staff(email="admin@example.org", name="Ada", role="admin", password="x" * 12)
        channel = await Channel.get(id=app.state.channel.id)
        form = replace(ChannelForm.of(channel), throughput=throughput)
        await save_channel(admin, SecretBox(settings.secret_key), form, channel, env_account_sid=ACCOUNT_SID)
        client = await create_client(name="Maria Lopez", phones=[PhoneInput(CLIENT_PHONE, "mobile", True)])
        case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id)
        first = await send_text(app.state.outbox, admin, SendRequest(body=body(0), case_id=case.id))
        now = clock.now()
        copies = [
            Message(
                conversation_id=first.conversation_id,
                direction=first.direction,
                from_number=first.from_number,
                to_number=first.to_number,
                body=body(n),
                status=first.status,
                outbox_state=OutboxState.WAITING,
                next_attempt_at=now,
                segments=first.segments,
                encoding=first.encoding,
                sent_by_id=first.sent_by_id,
                case_id=first.case_id,
            )
            for n in range(1, texts)
        ]
        await Message.bulk_create(copies, batch_size=500)


async def outbox_left() -> int:
    return await Message.filter(outbox_state__isnull=False).count()


async def drain_with_workers(
    settings: Settings, fake: FakeTwilio, workers: int, workdir: Path, **env: str
) -> list[WorkerProcess]:
    """Start `workers` worker processes together and wait until the outbox is empty; then stop them."""
    environment = worker_env(settings, fake.base_url, INBOX_SEND_TIMEOUT_SECONDS="20", **env)
    started = await asyncio.gather(
        *(start_worker(workdir / f"worker-{n}", environment, f"worker-{n}") for n in range(workers))
    )
    await db.connect(settings.database_url)
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while await outbox_left():
            if time.monotonic() > deadline or any(w.process.returncode is not None for w in started):
                raise RuntimeError("the outbox did not drain:\n" + "\n".join(w.describe() for w in started))
            await asyncio.sleep(0.5)
    finally:
        await db.disconnect()
        for worker in started:
            if worker.process.returncode is None:
                worker.terminate()
        for worker in started:
            await worker.exit_code()
    return list(started)


async def throughput_run(backend: str, url: str, workers: int, texts: int, workdir: Path) -> Run:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.callbacks_enabled = False
        settings = bench_settings(url, fake, workdir)
        await fill_outbox(settings, texts, MAX_THROUGHPUT)
        await drain_with_workers(settings, fake, workers, workdir, INBOX_PACING_BURST=str(texts))
        bodies = [str(message["body"]) for message in fake.messages]
        doubles = len(bodies) - len(set(bodies))
        if len(set(bodies)) != texts:
            raise RuntimeError(f"{len(set(bodies))} of {texts} texts reached the fake")
        return Run(backend, workers, texts, accept_rate(fake.accepted_at), doubles)


# ---------------------------------------------------------------- the baseline


async def baseline_client(url: str, texts: int, lanes: int) -> None:
    """Run in its own process: only the twilio library (through TwilioProvider), no database."""
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=url, send_timeout=20)
    numbers = iter(range(texts))

    async def lane() -> None:
        for n in numbers:
            await provider.send(OutboundText(to=CLIENT_PHONE, body=body(n)))

    try:
        await asyncio.gather(*(lane() for _ in range(lanes)))
    finally:
        await provider.close()


async def baseline_rate(texts: int, lanes: int) -> float:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.callbacks_enabled = False
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--baseline-client", json.dumps([fake.base_url, texts, lanes])
        )
        if await process.wait() != 0:
            raise RuntimeError("the baseline client failed")
        return accept_rate(fake.accepted_at)


# ---------------------------------------------------------------- pacing


@dataclass(frozen=True)
class Pacing:
    configured: int
    measured: float
    texts: int
    burst: int

    @property
    def error(self) -> float:
        return (self.measured - self.configured) / self.configured


async def pacing_run(url: str, throughput: int, seconds: float, workdir: Path, workers: int = 2) -> Pacing:
    burst = 5  # INBOX_PACING_BURST's default
    texts = int(throughput * seconds) + burst
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.callbacks_enabled = False
        settings = bench_settings(url, fake, workdir)
        await fill_outbox(settings, texts, str(throughput))
        await drain_with_workers(settings, fake, workers, workdir, INBOX_PACING_BURST=str(burst))
        # The burst leaves at once; from the last text of it the channel's schedule sets the pace.
        return Pacing(throughput, accept_rate(fake.accepted_at, skip=burst - 1), texts, burst)


# ---------------------------------------------------------------- the whole benchmark


async def run(texts: int, postgres: str | None, pacing_seconds: float) -> list[str]:
    lines: list[str] = []
    base = await baseline_rate(BASELINE_TEXTS, LANES)
    print(f"baseline: {base:.0f} creates/s ({LANES} at once, twilio library only)", flush=True)
    backends: list[tuple[str, Callable[[], AbstractAsyncContextManager[str]]]] = [("SQLite", fresh_sqlite_database)]
    if postgres:
        server = postgres
        backends.append(("PostgreSQL", lambda: fresh_database(server, f"inbox_bench_outbox_{os.getpid()}")))
    for backend, database in backends:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                async with database() as url:
                    result = await throughput_run(backend, url, workers, texts, Path(tmp))
            line = (
                f"| {datetime.now(UTC):%Y-%m-%d} | outbox throughput ({backend}, {workers} worker process"
                f"{'es' if workers > 1 else ''} × {LANES} lanes) | {texts:,} due texts, zero-latency fake Twilio, "
                f"no callbacks; `bench/outbox.py`; 2-core VM shared with other work | "
                f"{result.rate:.0f} texts/s · {result.per_worker:.0f} per worker · baseline (twilio library alone, "
                f"{LANES} at once) {base:.0f} creates/s · ratio {result.per_worker / base:.2f} per worker · "
                f"{result.doubles} doubles |"
            )
            print(line, flush=True)
            lines.append(line)
    for throughput in (10, 50):
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_sqlite_database() as url:
                paced = await pacing_run(url, throughput, pacing_seconds, Path(tmp))
        line = (
            f"| {datetime.now(UTC):%Y-%m-%d} | outbox pacing (SQLite, 2 worker processes, one channel) | "
            f"{throughput} segments/s configured, {paced.texts} one-segment texts, burst {paced.burst}; "
            f"`bench/outbox.py`; 2-core VM | {paced.measured:.2f} texts/s after the burst · "
            f"{paced.error:+.2%} of configured (target ±2 %) |"
        )
        print(line, flush=True)
        lines.append(line)
    return lines


def record(lines: list[str]) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    if not path.exists():
        path.write_text("# Benchmark results\n\n| date | benchmark | load | figures |\n|---|---|---|---|\n")
    with path.open("a") as out:
        out.writelines(line + "\n" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument(
        "--postgres", default=os.environ.get("INBOX_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--pacing-seconds", type=float, default=30.0)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--baseline-client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_client:
        url, texts, lanes = json.loads(args.baseline_client)
        asyncio.run(baseline_client(url, texts, lanes))
        return
    lines = asyncio.run(run(args.texts, None if args.skip_postgres else args.postgres.rstrip("/"), args.pacing_seconds))
    if not args.no_record:
        record(lines)


if __name__ == "__main__":
    main()
