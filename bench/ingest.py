"""Ingest benchmark: the full inbound webhook against a bare endpoint that only checks Twilio's signature.

Both run in a uvicorn server process of their own, set up alike (one process, one loop, no access log),
and are loaded by `wrk -t1 -c32` with a Lua script that posts pre-signed forms, one MessageSid each
(a form is never posted twice within a round: a repeat would only measure the de-duplication). Rounds
alternate bare, full, bare, full… so both see the same machine. For the full app two figures:

- acknowledged: webhooks answered 200 per second (what Twilio sees);
- processed: texts that appeared in the database per second while wrk was running (sampled at its
  start and end), and the time the backlog took to drain after it stopped.

`--processing worker` (the default) runs the full app as the Procfile does: the web process with
--no-worker and an `inbox worker` process beside it, on a Redis bus (BUS below), so a burst's texts are
processed by the worker on the other core; `--processing web` runs the web process alone (memory bus),
storing and processing in one process.

Each text comes from one of CLIENTS clients with a case and an assigned advocate, so the webhook does
the whole inbound work: conversation, message, links, case notes, alerts, consent.

    .venv/bin/python bench/ingest.py [--database sqlite|postgres] [--processing worker|web] [--rounds 2]
        [--seconds 8] [--label …] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inbox import db  # noqa: E402
from inbox.app import create_app, simulator_token  # noqa: E402
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client  # noqa: E402
from inbox.services.staff import create_staff  # noqa: E402
from inbox.settings import Secret, Settings  # noqa: E402
from inbox.sms.simulator import DEFAULT_FROM_NUMBER, SIMULATOR_ACCOUNT_SID  # noqa: E402

SECRET = "ingest-bench-" * 4
CLIENTS = 50
CONNECTIONS = 32
PATH = "/webhooks/twilio/messages"
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"
BUS = "redis://127.0.0.1:6379/14"  # a database number of its own: the channel is named by it

LUA = r"""
local forms = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t")
    forms[#forms + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
  end
end
request = function()
  n = n + 1
  local form = forms[((n - 1) % #forms) + 1]
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = form[1]}, form[2])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def settings_for(database_url: str, data_dir: Path, port: int, bus: str = "memory://") -> Settings:
    return Settings(
        database_url=database_url,
        broadcast_url=bus,
        secret_key=Secret(SECRET),
        data_dir=data_dir,
        media_dir=data_dir / "media",
        public_url=f"http://127.0.0.1:{port}",
        run_worker=False,
    )


def phone(n: int) -> str:
    return f"+1404555{n:04d}"


# ---------------------------------------------------------------- the two servers (child processes)


def bare_app(token: str, public_url: str):  # type: ignore[no-untyped-def]
    """What any Twilio webhook must do at least: read the form, check the signature, answer empty TwiML."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    validator = RequestValidator(token)

    async def webhook(request: Request) -> Response:
        form = await request.form()
        params = {key: str(value) for key, value in form.multi_items()}
        if not validator.validate(f"{public_url}{PATH}", params, request.headers.get("X-Twilio-Signature", "")):
            return PlainTextResponse("Invalid or missing X-Twilio-Signature.", status_code=403)
        empty = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
        return Response(empty, media_type="text/xml")

    return Starlette(routes=[Route(PATH, webhook, methods=["POST"])])


def serve(kind: str, database_url: str, data_dir: Path, port: int, bus: str) -> None:
    import uvicorn

    settings = settings_for(database_url, data_dir, port, bus)
    if kind == "worker":  # `inbox worker`, as the Procfile runs it
        from inbox import cli

        asyncio.run(cli.worker(settings, None))
        return
    app = bare_app(simulator_token(settings), settings.public_url) if kind == "bare" else create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- the run


@dataclass
class Round:
    kind: str
    requests: int
    non_2xx: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    processed_in_window: int = 0
    drain_seconds: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)  # CPU each process used while wrk ran, in cores

    @property
    def per_second(self) -> float:
        return (self.requests - self.non_2xx - self.socket_errors) / self.seconds

    @property
    def processed_per_second(self) -> float:
        return self.processed_in_window / self.seconds


async def prepare(database_url: str, data_dir: Path) -> None:
    """The people every text is about: clients with a mobile, a case and an assigned advocate each."""
    if database_url.startswith("sqlite"):
        await db.migrate(database_url)
    app = create_app(settings_for(database_url, data_dir, 0))
    async with app.router.lifespan_context(app):  # makes the organisation and the simulator's channel
        for n in range(CLIENTS):
            staff, _ = await create_staff(email=f"a{n}@example.org", name=f"A{n}", role="advocate", password="x" * 8)
            client = await create_client(name=f"Client {n}", phones=[PhoneInput(phone(n), "mobile", True)])
            case = await create_case(number=f"16E-2001{n:04d}", title="Eviction", client_id=client.id)
            await create_assignment(case_id=case.id, staff_email=staff.email, primary=True)


def write_forms(path: Path, token: str, port: int, prefix: str, count: int) -> None:
    validator = RequestValidator(token)
    url = f"http://127.0.0.1:{port}{PATH}"
    with path.open("w") as out:
        for n in range(count):
            sid = f"SM{prefix}{n:030d}"[:34]
            params = {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": SIMULATOR_ACCOUNT_SID,
                "From": phone(n % CLIENTS),
                "To": DEFAULT_FROM_NUMBER,
                "Body": f"Which courtroom is it, {n}?",
                "NumMedia": "0",
                "NumSegments": "1",
            }
            out.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until_listening(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                await client.get(f"http://127.0.0.1:{port}/")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"The server on port {port} did not start")


async def count_messages(database_url: str) -> int:
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as connection:
            return int(connection.execute("SELECT count(*) FROM message WHERE direction = 'inbound'").fetchone()[0])
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM message WHERE direction = 'inbound'"))
    finally:
        await connection.close()


def start(kind: str, database_url: str, data_dir: Path, port: int, bus: str) -> subprocess.Popen[bytes]:
    arguments = ["--serve", kind, "--database-url", database_url, "--data-dir", str(data_dir), "--port", str(port)]
    return subprocess.Popen([sys.executable, __file__, *arguments, "--bus", bus], cwd=ROOT)


async def one_round(kind: str, number: int, database_url: str, data_dir: Path, seconds: int, processing: str) -> Round:
    port = free_port()
    forms = data_dir / f"forms-{kind}-{number}.tsv"
    # Enough distinct forms for a round at 6,000 requests/s: none is posted twice.
    token = simulator_token(settings_for(database_url, data_dir, port))
    write_forms(forms, token, port, f"{number:02d}", seconds * 6000)
    script = data_dir / "post.lua"
    script.write_text(LUA)
    bus = BUS if processing == "worker" and kind == "full" else "memory://"
    servers = [start(kind, database_url, data_dir, port, bus)]
    if bus != "memory://":
        servers.append(start("worker", database_url, data_dir, port, bus))
    try:
        await until_listening(port)
        before = await count_messages(database_url) if kind == "full" else 0
        names = ["web" if kind == "full" else kind, "worker"]
        cpu_before = {name: cpu_seconds(server.pid) for name, server in zip(names, servers, strict=False)}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk's, once it has been waited for
        started = time.perf_counter()
        wrk = await asyncio.create_subprocess_exec(
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{PATH}",
            "--",
            str(forms),
            stdout=asyncio.subprocess.PIPE,
        )
        output = (await wrk.communicate())[0].decode()
        elapsed = time.perf_counter() - started
        cores = {
            name: round((cpu_seconds(server.pid) - cpu_before[name]) / elapsed, 2)
            for name, server in zip(names, servers, strict=False)
        }
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_seconds = children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
        cores["wrk"] = round(wrk_seconds / elapsed, 2)
        at_end = await count_messages(database_url) if kind == "full" else 0
        match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", output)
        if match is None:
            raise RuntimeError(f"wrk said:\n{output}")
        requests, non_2xx, errors, p50, p99 = (int(group) for group in match.groups())
        result = Round(kind, requests, non_2xx, errors, elapsed, p50 / 1000, p99 / 1000, at_end - before, cores=cores)
        if kind == "full":
            result.drain_seconds = await drained(database_url, before + requests - non_2xx - errors, started + elapsed)
        return result
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: where the two cores went during a round."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drained(database_url: str, expected: int, since: float) -> float:
    """Seconds after wrk stopped until every acknowledged text is in the database (−1 if never, in 120 s)."""
    while time.perf_counter() - since < 120:
        if await count_messages(database_url) >= expected:
            return time.perf_counter() - since
        await asyncio.sleep(0.1)
    return -1.0


async def run(database: str, rounds: int, seconds: int, processing: str) -> list[Round]:
    data_dir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    admin = None
    if database == "sqlite":
        database_url = f"sqlite://{data_dir / 'bench.sqlite3'}"
    else:
        name = f"ingest_bench_{os.getpid()}"
        admin = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        database_url = f"{POSTGRES_SERVER}/{name}"
        await db.migrate(database_url)
    try:
        await prepare(database_url, data_dir)
        results = []
        for number in range(rounds):
            for kind in ("bare", "full"):
                result = await one_round(kind, number, database_url, data_dir, seconds, processing)
                print(json.dumps({**result.__dict__, "per_second": round(result.per_second, 1)}), flush=True)
                results.append(result)
        return results
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "ingest_bench_{os.getpid()}" WITH (FORCE)')
            await admin.close()


def summary(database: str, results: list[Round], label: str, processing: str) -> str:
    bare = [r.per_second for r in results if r.kind == "bare"]
    full = [r for r in results if r.kind == "full"]
    acknowledged = [r.per_second for r in full]
    processed = [r.processed_per_second for r in full]
    base = statistics.median(bare)
    shape = "web + `inbox worker` on a Redis bus" if processing == "worker" else "the web process alone"
    load = os.getloadavg()
    return (
        f"| {datetime.now(UTC):%Y-%m-%d} | ingest ({'SQLite' if database == 'sqlite' else 'PostgreSQL'}, {label}) "
        f"| wrk -t1 -c{CONNECTIONS}, {len(full)}×{round(full[0].seconds)} s rounds alternated with the bare endpoint, "
        f"{CLIENTS} clients each with a case and an assignee; full app: {shape}; `bench/ingest.py`; 2-core VM shared "
        f"with other work, load {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end "
        f"| bare {base:.0f}/s · acknowledged {statistics.median(acknowledged):.0f}/s "
        f"(ratio {statistics.median(acknowledged) / base:.2f}; p50 {statistics.median(r.p50_ms for r in full):.0f} ms, "
        f"p99 {statistics.median(r.p99_ms for r in full):.0f} ms) · processed while loaded "
        f"{statistics.median(processed):.0f}/s (ratio {statistics.median(processed) / base:.2f}) · backlog drained "
        f"{max(r.drain_seconds for r in full):.1f} s after the load stopped · "
        f"non-2xx {sum(r.non_2xx for r in full)} · cores while loaded {cores_used(full)} |\n"
    )


def cores_used(rounds: list[Round]) -> str:
    """Each process's CPU while wrk ran, the median over the rounds: where the two cores went."""
    names = list(rounds[0].cores)
    return ", ".join(f"{name} {statistics.median(r.cores[name] for r in rounds):.2f}" for name in names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--label", default="inline processing")
    parser.add_argument("--processing", choices=["worker", "web"], default="worker")
    parser.add_argument("--bus", default="memory://", help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help="append the summary to bench/RESULTS.md")
    parser.add_argument("--serve", choices=["bare", "full", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.database_url, args.data_dir, args.port, args.bus)
        return
    results = asyncio.run(run(args.database, args.rounds, args.seconds, args.processing))
    line = summary(args.database, results, args.label, args.processing)
    print(line, end="")
    if args.record:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write(line)


if __name__ == "__main__":
    main()
