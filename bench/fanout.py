"""Fan-out benchmark: webhook to bubble with many open tabs.

Starts the real app (SQLite in a temp dir, the simulator provider), attaches TABS live tabs to the
process's hub (a mix of advocates who may and may not see the conversation, and supervisors),
posts ROUNDS signed inbound webhooks through the app, and measures, per round, the time from the
POST to the moment the last permitted tab has the new bubble in its queue. Each text is filed on
the case and raises an alert, so the webhook does the full inbound work; tabs that may not see
the conversation must receive nothing.

    .venv/bin/python bench/fanout.py [--tabs 1000] [--rounds 50] [--kind html|json] [--label after]

`--kind json` opens API tabs instead of pages. `--processes 2` measures across processes instead: a redis-server of
its own, two `inbox serve` processes on one SQLite database and that Redis bus, TABS real `/events` streams (raw
sockets, signed-in sessions of the same mix of people) open on the first, and each webhook posted alternately to the
second (the two-process figure) and to the first (the one-process figure, the same run's baseline): the time from the
POST to the last permitted stream reading the new bubble off its socket.

In one process the time is to the last permitted tab's queue (writing to the sockets is the streams' own work, after
the hub's). Run it with the tree to measure first on PYTHONPATH (`PYTHONPATH=. .venv/bin/python bench/fanout.py`:
otherwise the installed package's tree is imported); to compare with another tree (main's code), run it with that
tree on PYTHONPATH and `--label before`, alternating with this tree's runs. `--processes 2` runs the servers from
this file's tree.

Prints the figures and appends them to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from inbox import db
from inbox.app import create_app, simulator_token
from inbox.events import MessageReceived
from inbox.live import Tab
from inbox.models import Message, Staff
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.settings import Secret, Settings
from inbox.sms.simulator import DEFAULT_FROM_NUMBER, SIMULATOR_ACCOUNT_SID

CLIENT_PHONE = "+14045387319"
PASSWORD = "x" * 8
TREE = Path(__file__).resolve().parent.parent


async def setup_people(advocates: int, supervisors: int) -> tuple[list[int], list[int], list[int]]:
    client = await create_client(name="Maria Lopez", phones=[PhoneInput(CLIENT_PHONE, "mobile", True)])
    case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id)
    permitted, others, bosses = [], [], []
    for n in range(advocates):
        staff, _ = await create_staff(email=f"a{n}@example.org", name=f"A{n}", role="advocate", password=PASSWORD)
        if n % 2 == 0:
            await create_assignment(case_id=case.id, staff_email=staff.email, primary=n == 0)
            permitted.append(staff.id)
        else:
            others.append(staff.id)
    for n in range(supervisors):
        staff, _ = await create_staff(email=f"s{n}@example.org", name=f"S{n}", role="supervisor", password=PASSWORD)
        bosses.append(staff.id)
    return permitted, others, bosses


async def run(tabs: int, rounds: int, kind: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        database_url=f"sqlite://{tmp / 'bench.sqlite3'}", secret_key=Secret("bench" * 8), data_dir=tmp, run_worker=False
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        permitted, others, bosses = await setup_people(advocates=40, supervisors=10)
        hub = app.state.hub
        all_tabs = []
        people = [(i, False) for i in permitted + others] + [(i, True) for i in bosses]
        for n in range(tabs):
            staff_id, boss = people[n % len(people)]
            tab = Tab(staff_id=staff_id, sees_everything=boss, kind=kind)  # type: ignore[arg-type]
            hub.attach(tab)
            all_tabs.append(tab)
        watched = [t for t in all_tabs if t.sees_everything or t.staff_id in permitted]
        validator = RequestValidator(simulator_token(settings))
        latencies = []
        cpu_started = time.process_time()  # the process's CPU: webhook, hub and this loop's reading, per webhook
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
            for n in range(rounds):
                params = {
                    "MessageSid": f"SM{n:032d}",
                    "AccountSid": app.state.channel.account_sid,
                    "From": CLIENT_PHONE,
                    "To": app.state.channel.from_number,
                    "Body": f"Message {n}",
                    "NumMedia": "0",
                }
                url = f"{settings.public_url}/webhooks/twilio/messages"
                headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
                started = time.perf_counter()
                response = await client.post("/webhooks/twilio/messages", data=params, headers=headers)
                assert response.status_code == 200
                for tab in watched:
                    await until_bubble(tab, f"Message {n}", kind)
                latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.05)  # let the alert updates that follow the bubble arrive
                for tab in watched:
                    drain(tab)
                assert all(t.queue.empty() for t in all_tabs), "a tab got an event it may not see"
        cpu_ms = (time.process_time() - cpu_started) * 1000 / rounds
    latencies.sort()
    return {
        "tabs": tabs,
        "kind": kind,
        "permitted_tabs": len(watched),
        "rounds": rounds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
        "cpu_ms": cpu_ms,
    }


async def hub_only(tabs: int, rounds: int, kind: str) -> list[float]:
    """The hub's own share, without the webhook and its database work: one text's `message.received` delivered
    again and again (`hub.deliver`, rows loaded, views rendered, every permitted tab's queue filled), in ms."""
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        database_url=f"sqlite://{tmp / 'bench.sqlite3'}", secret_key=Secret("bench" * 8), data_dir=tmp, run_worker=False
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        permitted, others, bosses = await setup_people(advocates=40, supervisors=10)
        validator = RequestValidator(simulator_token(settings))
        params = {
            "MessageSid": "SM" + "1" * 32,
            "AccountSid": app.state.channel.account_sid,
            "From": CLIENT_PHONE,
            "To": app.state.channel.from_number,
            "Body": "Hello",
            "NumMedia": "0",
        }
        url = f"{settings.public_url}/webhooks/twilio/messages"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            assert (await client.post("/webhooks/twilio/messages", data=params, headers=headers)).status_code == 200
        hub = app.state.hub
        people = [(i, False) for i in permitted + others] + [(i, True) for i in bosses]
        for n in range(tabs):
            staff_id, boss = people[n % len(people)]
            hub.attach(Tab(staff_id=staff_id, sees_everything=boss, kind=kind))  # type: ignore[arg-type]
        message = await Message.get(body="Hello")
        event = MessageReceived(message_id=message.id, conversation_id=message.conversation_id)
        times = []
        for _ in range(rounds):
            for tab in hub.tabs:
                drain(tab)
            started = time.perf_counter()
            await hub.deliver(event)
            times.append((time.perf_counter() - started) * 1000)
        return sorted(times)


# ---------------------------------------------------------------- two processes on a Redis bus


class ServedTabs:
    """Real `/events` streams on one server, each read by a task of its own that notes when the awaited text's
    bubble came off its socket."""

    def __init__(self) -> None:
        self.awaited = ""  # the body of the text now awaited
        self.seen: dict[int, float] = {}  # stream number -> when it read the awaited bubble
        self.leaked: list[int] = []  # streams that read a text they may not see
        self.permitted: set[int] = set()
        self.all_seen = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, port: int, cookie: str, permitted: bool) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = "GET /events?page=1&list=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        writer.write(f"{head}Cookie: {cookie}\r\n\r\n".encode())
        seen = b""
        while b"stream.open" not in seen:
            chunk = await reader.read(4096)
            assert chunk, seen.decode()
            seen += chunk
        number = len(self._tasks)
        if permitted:
            self.permitted.add(number)
        self._tasks.append(asyncio.create_task(self._read(number, reader, writer)))

    async def _read(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tail = b""
        try:
            while chunk := await reader.read(65536):
                text = (tail + chunk).decode(errors="replace")
                tail = chunk[-200:]
                if self.awaited and self.awaited in text and number not in self.seen:
                    self.seen[number] = time.perf_counter()
                    if number not in self.permitted:
                        self.leaked.append(number)
                    elif self.permitted <= self.seen.keys():
                        self.all_seen.set()
        finally:
            writer.close()

    def await_text(self, body: str) -> None:
        self.awaited, self.seen = body, {}
        self.all_seen.clear()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


def serve_env(tmp: Path, redis_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "TWILIO_"))},
        "PYTHONPATH": str(TREE),
        "INBOX_DATABASE_URL": f"sqlite://{tmp / 'bench.sqlite3'}",
        "INBOX_BROADCAST_URL": redis_url,
        "INBOX_DATA_DIR": str(tmp),
        "INBOX_MEDIA_DIR": str(tmp / "media"),
        "INBOX_SECRET_KEY": "bench" * 8,
        "INBOX_PUBLIC_URL": "http://inbox.bench",  # what webhooks are signed for, whichever process gets them
        "INBOX_ARGON2_PROFILE": "CHEAPEST",  # 50 sign-ins, not what is measured
    }


@asynccontextmanager
async def serving(env: dict[str, str], port: int) -> AsyncIterator[str]:
    command = [sys.executable, "-m", "inbox", "serve", "--port", str(port), "--no-worker"]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=TREE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    if (await http.get(f"{base}/login")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield base
    finally:
        process.kill()  # not a graceful stop: it would wait for the open streams
        await process.wait()


async def sign_in(base: str, email: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        answer = await http.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)})
        assert answer.status_code == 303, answer.text
        return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def prepared_database(env: dict[str, str]) -> list[tuple[str, bool]]:
    """The people of `setup_people` in a migrated database: (email, may see the text) each."""
    command = [sys.executable, "-m", "inbox", "migrate"]
    await asyncio.to_thread(subprocess.run, command, cwd=TREE, env=env, check=True, capture_output=True)
    os.environ["INBOX_ARGON2_PROFILE"] = env["INBOX_ARGON2_PROFILE"]
    await db.connect(env["INBOX_DATABASE_URL"])
    try:
        permitted, others, bosses = await setup_people(advocates=40, supervisors=10)
        emails = dict(await Staff.all().values_list("id", "email"))
        return [(emails[i], i in permitted) for i in permitted + others] + [(emails[i], True) for i in bosses]
    finally:
        await db.disconnect()


async def two_processes(tabs: int, rounds: int) -> dict[str, Any]:
    from tests.support.redis_server import RedisServer  # a redis-server of the benchmark's own
    from tests.support.servers import free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    redis = RedisServer(tmp)
    await redis.start()
    served = ServedTabs()
    try:
        env = serve_env(tmp, redis.url)
        people = await prepared_database(env)
        async with AsyncExitStack() as stack:
            one_port, two_port = free_port(), free_port()
            one = await stack.enter_async_context(serving(env, one_port))
            two = await stack.enter_async_context(serving(env, two_port))
            cookies = {email: await sign_in(one, email) for email, _ in people}
            for n in range(tabs):
                email, sees = people[n % len(people)]
                await served.open(one_port, cookies[email], sees)
            return await post_alternately(served, {"one process": one, "two processes": two}, rounds, tabs)
    finally:
        served.close()
        redis.stop()


async def post_alternately(served: ServedTabs, targets: dict[str, str], rounds: int, tabs: int) -> dict[str, Any]:
    validator = RequestValidator(simulator_token(Settings(secret_key=Secret("bench" * 8))))
    url = "http://inbox.bench/webhooks/twilio/messages"
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    async with httpx.AsyncClient() as http:
        for n in range(rounds * len(targets)):
            name, base = list(targets.items())[n % len(targets)]
            body = f"Bench text {n}."
            params = {"MessageSid": f"SM{n:032d}", "AccountSid": SIMULATOR_ACCOUNT_SID, "From": CLIENT_PHONE,
                      "To": DEFAULT_FROM_NUMBER, "Body": body, "NumMedia": "0"}  # fmt: skip
            served.await_text(body)
            started = time.perf_counter()
            signed = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            answer = await http.post(f"{base}/webhooks/twilio/messages", data=params, headers=signed)
            assert answer.status_code == 200, answer.text
            await asyncio.wait_for(served.all_seen.wait(), 30)
            latencies[name].append((max(served.seen.values()) - started) * 1000)
            await asyncio.sleep(0.1)  # the alert updates that follow the bubble
            assert not served.leaked, f"streams {served.leaked} read a text they may not see"
    return {"tabs": tabs, "permitted_tabs": len(served.permitted), "rounds": rounds,
            "figures": {name: percentiles(times) for name, times in latencies.items()}}  # fmt: skip


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
            "max_ms": times[-1]}  # fmt: skip


def record_two(result: dict[str, Any], label: str) -> None:
    figures = result["figures"]
    cells = [
        f"{name}: p50 {f['p50_ms']:.1f} ms · p99 {f['p99_ms']:.1f} ms · max {f['max_ms']:.1f} ms"
        for name, f in figures.items()
    ]
    ratio = figures["two processes"]["p50_ms"] / figures["one process"]["p50_ms"]
    what = f"{result['tabs']} /events streams on one process ({result['permitted_tabs']} permitted)"
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d} | fanout (real `inbox serve` × 2, Redis bus, SQLite)"
        f"{' ' + label if label else ''} | {what}, {result['rounds']} webhooks to each, alternated; load {load()} | "
        f"{' · '.join(cells)} · two/one p50 {ratio:.2f}× |\n"
    )
    append(line)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def append(line: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    with path.open("a") as out:
        out.write(line)
    print(line, end="")


# ---------------------------------------------------------------- reading the in-process tabs


async def until_bubble(tab: Tab, body: str, kind: str) -> None:
    """The tab's deliveries up to the one carrying the new bubble or event (alert updates may come after it).

    The hub fills every tab's queue in one go, so only the first tab is waited for; the others are read without a
    timer (a timer per tab would cost more than the delivery being measured)."""
    while True:
        delivery = tab.queue.get_nowait() if not tab.queue.empty() else await asyncio.wait_for(tab.queue.get(), 10)
        assert delivery is not None, "the hub closed a tab"
        if kind == "json" and delivery.event == "message.received":
            return
        if body in delivery.data and "message-" in delivery.data:
            return


def drain(tab: Tab) -> None:
    while not tab.queue.empty():
        tab.queue.get_nowait()


def record(result: dict[str, Any], label: str) -> None:
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d} | fanout (in-process hub, SQLite){' ' + label if label else ''} | "
        f"{result['tabs']} {result['kind']} tabs "
        f"({result['permitted_tabs']} permitted), {result['rounds']} webhooks; load {load()} | "
        f"p50 {result['p50_ms']:.1f} ms · "
        f"p99 {result['p99_ms']:.1f} ms · max {result['max_ms']:.1f} ms · CPU {result['cpu_ms']:.1f} ms per webhook |\n"
    )
    append(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tabs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--kind", choices=["html", "json"], default="html")
    parser.add_argument("--label", default="", help="what this run measures (e.g. before, after)")
    parser.add_argument("--processes", type=int, choices=[1, 2], default=1, help="2: across processes on Redis")
    parser.add_argument("--hub-only", action="store_true", help="time hub.deliver alone (prints, records nothing)")
    args = parser.parse_args()
    if args.hub_only:
        times = asyncio.run(hub_only(args.tabs, args.rounds, args.kind))
        print(f"hub.deliver, {args.tabs} {args.kind} tabs, {args.label}: p50 {statistics.median(times):.1f} ms, "
              f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms ({len(times)} rounds)")  # fmt: skip
        return
    if args.processes == 2:
        record_two(asyncio.run(two_processes(args.tabs, args.rounds)), args.label)
        return
    record(asyncio.run(run(args.tabs, args.rounds, args.kind)), args.label)


if __name__ == "__main__":
    main()
