"""Fan-out benchmark: webhook to bubble with many open tabs.

Starts the real app (SQLite in a temp dir, the simulator provider), attaches TABS live tabs to the
process's hub (a mix of advocates who may and may not see the conversation, and supervisors),
posts ROUNDS signed inbound webhooks through the app, and measures, per round, the time from the
POST to the moment the last permitted tab has the new bubble in its queue. Each text is filed on
the case and raises an alert, so the webhook does the full inbound work; tabs that may not see
the conversation must receive nothing.

    .venv/bin/python bench/fanout.py [--tabs 1000] [--rounds 50] [--kind html|json] [--label after]

`--kind json` opens API tabs instead of pages. The time is to the last permitted tab's queue (writing to the
sockets is the streams' own work, after the hub's). To compare with another tree (main's code), run this file with
that tree first on PYTHONPATH and `--label before`, alternating with this tree's runs.

Prints the figures and appends them to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from inbox.app import create_app, simulator_token
from inbox.events import MessageReceived
from inbox.live import Tab
from inbox.models import Message
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.settings import Secret, Settings

CLIENT_PHONE = "+14045387319"


async def setup_people(advocates: int, supervisors: int) -> tuple[list[int], list[int], list[int]]:
    client = await create_client(name="Maria Lopez", phones=[PhoneInput(CLIENT_PHONE, "mobile", True)])
    case = await create_case(number="16E-20010101", title="Eviction", client_id=client.id)
    permitted, others, bosses = [], [], []
    for n in range(advocates):
        staff, _ = await create_staff(email=f"a{n}@example.org", name=f"A{n}", role="advocate", password="x" * 8)
        if n % 2 == 0:
            await create_assignment(case_id=case.id, staff_email=staff.email, primary=n == 0)
            permitted.append(staff.id)
        else:
            others.append(staff.id)
    for n in range(supervisors):
        staff, _ = await create_staff(email=f"s{n}@example.org", name=f"S{n}", role="supervisor", password="x" * 8)
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
    latencies.sort()
    return {
        "tabs": tabs,
        "kind": kind,
        "permitted_tabs": len(watched),
        "rounds": rounds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
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
        f"({result['permitted_tabs']} permitted), {result['rounds']} webhooks | p50 {result['p50_ms']:.1f} ms · "
        f"p99 {result['p99_ms']:.1f} ms · max {result['max_ms']:.1f} ms |\n"
    )
    path = Path(__file__).with_name("RESULTS.md")
    if not path.exists():
        path.write_text("# Benchmark results\n\n| date | benchmark | load | figures |\n|---|---|---|---|\n")
    with path.open("a") as out:
        out.write(line)
    print(line, end="")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tabs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--kind", choices=["html", "json"], default="html")
    parser.add_argument("--label", default="", help="what this run measures (e.g. before, after)")
    parser.add_argument("--hub-only", action="store_true", help="time hub.deliver alone (prints, records nothing)")
    args = parser.parse_args()
    if args.hub_only:
        times = asyncio.run(hub_only(args.tabs, args.rounds, args.kind))
        print(f"hub.deliver, {args.tabs} {args.kind} tabs, {args.label}: p50 {statistics.median(times):.1f} ms, "
              f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms ({len(times)} rounds)")  # fmt: skip
        return
    record(asyncio.run(run(args.tabs, args.rounds, args.kind)), args.label)


if __name__ == "__main__":
    main()
