"""Browser tests: the demo served for real (`inbox demo`, then `inbox serve` with the simulator, in a process of
its own) and driven by Playwright through Debian's Chromium (Playwright's own browser builds cannot be fetched
here, so it is started by `executable_path`).

Without Chromium (or Playwright) the browser tests are skipped with a notice saying how to install it; with
INBOX_REQUIRE_BROWSER=1 (CI) that skip is a failure instead, so a CI run cannot pass without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from .cli import cli_env
from .servers import free_port

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, ConsoleMessage, Page

INSTALL_HINT = (
    "Browser tests need Chromium: `sudo apt-get install chromium` (Debian/Ubuntu), or point INBOX_CHROMIUM at a "
    "Chromium or Chrome binary. CI (INBOX_REQUIRE_BROWSER=1) fails instead of skipping them."
)
SERVER_START_SECONDS = 60.0
# Generous: the suite's machines are small and shared; a live update normally lands in well under a second.
WAIT_MS = 15_000
PHONE_SIZE = {"width": 390, "height": 844}
DESKTOP_SIZE = {"width": 1280, "height": 860}


def chromium_path() -> str | None:
    """Chromium to drive: INBOX_CHROMIUM, else the first of Debian's and others' names on PATH."""
    configured = os.environ.get("INBOX_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_or_fail(reason: str) -> None:
    """Skip (loudly) on a machine without a browser; fail where the browser tests are required (CI)."""
    message = f"{reason} {INSTALL_HINT}"
    if os.environ.get("INBOX_REQUIRE_BROWSER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_browser() -> str:
    """The Chromium binary, after checking that Playwright imports; skips or fails otherwise."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        skip_or_fail("Playwright is not installed (`pip install -e '.[test]'`).")
    path = chromium_path()
    if path is None:
        skip_or_fail("No Chromium found.")
    assert path is not None
    return path


@dataclass
class DemoServer:
    """`inbox serve` on the demo's data; the demo's sign-ins (email → password)."""

    url: str
    passwords: dict[str, str]
    workdir: Path
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)


DEMO_LOGIN = re.compile(r"^\s+\w+\s+(\S+@\S+)\s+password: (\S+)$", re.MULTILINE)


@contextlib.contextmanager
def demo_server(workdir: Path) -> Iterator[DemoServer]:
    """The demo on SQLite with the simulator, served on a free port, until the block ends."""
    env = {**cli_env(workdir), "INBOX_ENV": "development"}
    seeded = subprocess.run(
        [sys.executable, "-m", "inbox", "demo"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr
    passwords = dict(DEMO_LOGIN.findall(seeded.stdout))
    assert "alice@example.org" in passwords, seeded.stdout
    port = free_port()
    log_file = (workdir / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "inbox", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DemoServer(f"http://127.0.0.1:{port}", passwords, workdir, process)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _wait_until_serving(server: DemoServer) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(f"inbox serve exited: {(server.workdir / 'serve.log').read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/login", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"inbox serve did not answer in time: {(server.workdir / 'serve.log').read_text()}")


class ConsoleWatch:
    """Every console error and uncaught exception a page reports, for the test to assert there were none."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Console lines that are expected in this test (a stream cut on purpose logs htmx:sseError)."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        line = f"{message.location.get('url', '')}: {message.type}: {message.text}"
        if message.type in ("error", "warning") and not any(p.search(line) for p in self.allowed):
            self.errors.append(line)


async def sign_in(
    context: BrowserContext, server: DemoServer, email: str, console: ConsoleWatch, via: str | None = None
) -> Page:
    """A page in `context`, signed in through the sign-in form as `email`, on the inbox (of `via`, a proxy)."""
    base = via or server.url
    page = console.watch(await context.new_page())
    await page.goto(base + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(server.passwords[email])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/")
    return page


async def stream_open(page: Page) -> None:
    """Waits until the page's event stream is open (and its catch-up done): live updates reach it from now on."""
    # A locator, not wait_for_function: the pages' Content-Security-Policy forbids evaluating strings.
    await page.locator("body[data-stream=open]").wait_for(state="attached", timeout=WAIT_MS)


class CuttableProxy:
    """A TCP proxy in front of the served app, so a test can cut the connections that carry event streams the way
    a dropped network does (Chromium's offline emulation leaves an open stream alone). Runs in the test's loop."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.URL(upstream)
        self.url = ""
        # each open connection: its two writers and the last request line the browser sent on it
        self._connections: dict[asyncio.StreamWriter, tuple[asyncio.StreamWriter, list[bytes]]] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for client, (upstream, _) in list(self._connections.items()):
            client.close()
            upstream.close()

    def cut(self, path: str) -> int:
        """Closes every connection whose latest request was for `path`; how many."""
        wanted = f" {path}".encode()
        cut = 0
        for client, (upstream, request) in list(self._connections.items()):
            if request and wanted in request[0]:
                client.transport.abort()
                upstream.transport.abort()
                cut += 1
        return cut

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        except OSError:
            writer.close()
            return
        request: list[bytes] = []
        self._connections[writer] = (up_writer, request)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, request), self._pipe(up_reader, writer, None))
        finally:
            self._connections.pop(writer, None)
            writer.close()
            up_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: list[bytes] | None) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                if request is not None and chunk[:8].split(b" ")[0] in (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE"):
                    request[:] = [chunk.split(b"\r\n", 1)[0]]
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()
