"""Memory per open event stream: N real connections to a real `inbox serve` (uvicorn), both endpoints.

Each round starts a fresh server process from a source tree (this one, and with --before another, e.g. main's
code unpacked with `git archive`), signs in once, opens N streams on `/events` (the session cookie) and then N on
`/api/v1/events` (a bearer token), each read up to its `stream.open`, and takes the server's resident set
(VmRSS) before and after: the delta divided by N is the cost of one open stream, everything included (uvicorn's
connection, Starlette's request, our response, the tab and its queue). Trees alternate round by round so a
shared machine's noise falls on both.

    .venv/bin/python bench/streams.py [--streams 1000] [--rounds 2] [--before /tmp/main-tree]

Prints the figures and appends them to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent.parent
EMAIL = "bench@example.org"
PASSWORD = "bench-password-1"
SETTLE_SECONDS = 1.0  # let the server finish answering the last streams before its RSS is read


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1))


def start(tree: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A fresh database, a supervisor and their API token, and `inbox serve` from `tree`: (process, URL, token)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "INBOX_DATABASE_URL": f"sqlite://{tmp / 'bench.sqlite3'}",
        "INBOX_DATA_DIR": str(tmp),
        "INBOX_SECRET_KEY": "bench" * 8,
        "INBOX_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "INBOX_MEDIA_DIR": str(tmp / "media"),
    }

    def inbox(*args: str) -> str:
        command = [sys.executable, "-m", "inbox", *args]
        return subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout

    inbox("migrate")
    inbox("create-user", "--email", EMAIL, "--name", "Bench", "--role", "supervisor", "--password", PASSWORD)
    token = inbox("create-token", "--email", EMAIL).strip().splitlines()[-1]
    command = [sys.executable, "-m", "inbox", "serve", "--port", str(port), "--no-worker"]
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}", token


def stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # not a graceful stop: main's code waits for its open streams
    process.wait(10)


@asynccontextmanager
async def server(tree: Path) -> AsyncIterator[tuple[str, int, str]]:
    """`inbox serve` from `tree` on a fresh database; yields (base URL, pid, API token)."""
    process, base, token = await asyncio.to_thread(start, tree)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.get(f"{base}/login")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield base, process.pid, token
    finally:
        await asyncio.to_thread(stop, process)


async def session_cookie(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        answer = await http.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf.group(1)})
        assert answer.status_code == 303, answer.text
        return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def open_stream(port: int, path: str, header: str) -> asyncio.StreamWriter:
    """One raw connection (no client library in the way), read up to the stream's first event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{header}\r\n\r\n".encode())
    seen = b""
    while b"stream.open" not in seen:
        chunk = await reader.read(4096)
        assert chunk, seen.decode()
        seen += chunk
    return writer


async def per_stream_kb(pid: int, port: int, path: str, header: str, count: int) -> float:
    warm = [await open_stream(port, path, header) for _ in range(20)]  # first-use allocations are not per stream
    await asyncio.sleep(SETTLE_SECONDS)
    before = rss_kb(pid)
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, 100):
        writers += await asyncio.gather(*(open_stream(port, path, header) for _ in range(min(100, count - start))))
    await asyncio.sleep(SETTLE_SECONDS)
    after = rss_kb(pid)
    for writer in warm + writers:
        writer.close()
    return (after - before) / count


async def measure(tree: Path, count: int) -> dict[str, float]:
    # A fresh server per endpoint: memory freed by one endpoint's closed streams would be reused by the next.
    result = {}
    for kind in ("html", "json"):
        async with server(tree) as (base, pid, token):
            port = int(base.rsplit(":", 1)[1])
            if kind == "html":
                header, path = f"Cookie: {await session_cookie(base)}", "/events"
            else:
                header, path = f"Authorization: Bearer {token}", "/api/v1/events"
            result[kind] = await per_stream_kb(pid, port, path, header, count)
    return result


async def run(trees: dict[str, Path], count: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {name: {"html": [], "json": []} for name in trees}
    for n in range(rounds):
        order = list(trees.items()) if n % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            started = time.perf_counter()
            result = await measure(tree, count)
            for kind, kb in result.items():
                figures[name][kind].append(kb)
            print(f"round {n + 1} {name}: /events {result['html']:.1f} KB, /api/v1/events {result['json']:.1f} KB "
                  f"per stream ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    return figures


def record(figures: dict[str, dict[str, list[float]]], count: int) -> None:
    def cell(name: str) -> str:
        html, json_kb = statistics.median(figures[name]["html"]), statistics.median(figures[name]["json"])
        return f"{name}: /events {html:.1f} KB · /api/v1/events {json_kb:.1f} KB"

    parts = [cell(name) for name in figures]
    if "before" in figures:
        ratio = statistics.median(figures["after"]["html"]) / statistics.median(figures["before"]["html"])
        ratio_json = statistics.median(figures["after"]["json"]) / statistics.median(figures["before"]["json"])
        parts.append(f"after/before {ratio:.2f}× (pages), {ratio_json:.2f}× (API)")
    rounds = len(next(iter(figures.values()))["html"])
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d} | streams (RSS delta / N, real uvicorn, shared 2-core machine) | "
        f"{count} open streams per endpoint, median of {rounds} alternated rounds | {' · '.join(parts)} |\n"
    )
    with Path(__file__).with_name("RESULTS.md").open("a") as out:
        out.write(line)
    print(line, end="")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="another source tree to measure alternately (the baseline)")
    args = parser.parse_args()
    trees = {"after": HERE} if args.before is None else {"before": args.before.resolve(), "after": HERE}
    record(asyncio.run(run(trees, args.streams, args.rounds)), args.streams)


if __name__ == "__main__":
    main()
