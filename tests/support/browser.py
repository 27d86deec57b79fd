"""Browser tests: the demo served for real (`inbox demo`, then `inbox serve` with the simulator, in a process of
its own) and driven by Playwright through Debian's Chromium (Playwright's own browser builds cannot be fetched
here, so it is started by `executable_path`).

Without Chromium (or Playwright) the browser tests are skipped with a notice saying how to install it; with
INBOX_REQUIRE_BROWSER=1 (CI) that skip is a failure instead, so a CI run cannot pass without them.
"""

from __future__ import annotations

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

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and not _expected(message.text):
            self.errors.append(f"{message.location.get('url', '')}: {message.type}: {message.text}")


def _expected(text: str) -> bool:
    """Console lines a browser writes on its own in normal use, not errors of the pages."""
    # A stream cut on purpose (the catch-up test) or ended when a page navigates.
    return "net::ERR_FAILED" in text and "/events" in text or "EventSource" in text and "aborted" in text


async def sign_in(context: BrowserContext, server: DemoServer, email: str, console: ConsoleWatch) -> Page:
    """A page in `context`, signed in through the sign-in form as `email`, on the inbox."""
    page = console.watch(await context.new_page())
    await page.goto(server.url + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(server.passwords[email])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(server.url + "/")
    return page


async def stream_open(page: Page) -> None:
    """Waits until the page's event stream is open (and its catch-up done): live updates reach it from now on."""
    # A locator, not wait_for_function: the pages' Content-Security-Policy forbids evaluating strings.
    await page.locator("body[data-stream=open]").wait_for(state="attached", timeout=WAIT_MS)
