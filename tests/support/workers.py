"""`inbox worker` run for real, as `python -m inbox worker` processes, against the test's database and
the fake Twilio running in the test's own event loop.

The fake answers from the test's loop, so a test must wait on these processes with `await` (never a
blocking call) or the fake stops answering them. A worker's output goes to a file (a pipe nobody reads
would fill and stall it) and is shown when something goes wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from inbox.models import Message
from inbox.settings import Settings

from .cli import cli_env
from .config import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL

STARTUP_SECONDS = 60.0  # importing the app and connecting, on a busy 2-core machine
EXIT_SECONDS = 30.0
POLL_SECONDS = 0.05
RUNNING = re.compile(r"Outbox worker (\S+) running")


def worker_env(settings: Settings, fake_url: str, **overrides: str) -> dict[str, str]:
    """The settings a worker process needs to share the test's database and reach the fake Twilio."""
    return {
        "INBOX_DATABASE_URL": settings.database_url,
        "INBOX_PUBLIC_URL": PUBLIC_URL,
        "INBOX_SECRET_KEY": str(settings.secret_key),
        "INBOX_TWILIO_API_URL": fake_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        # Short, so that a killed worker's texts are recovered within the test (the lease is at least
        # twice the send timeout plus 5 s: inbox.app.outbox_rules).
        "INBOX_SEND_TIMEOUT_SECONDS": "1",
        "INBOX_OUTBOX_LEASE_SECONDS": "2",
        **overrides,
    }


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log: Path
    worker_id: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def describe(self) -> str:
        who = f"worker {self.worker_id or '?'} (pid {self.process.pid}), exit {self.process.returncode}"
        return f"{who}:\n{self.output()}"

    async def wait_running(self) -> None:
        """Until it says it is running (its lanes are claiming from then on)."""
        async with asyncio.timeout(STARTUP_SECONDS):
            while True:
                found = RUNNING.search(self.output())
                if found:
                    self.worker_id = found.group(1)
                    return
                if self.process.returncode is not None:
                    raise AssertionError(f"the worker stopped before it ran: {self.describe()}")
                await asyncio.sleep(POLL_SECONDS)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is handed back; its leases simply stop being renewed."""
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def exit_code(self) -> int:
        try:
            async with asyncio.timeout(EXIT_SECONDS):
                return await self.process.wait()
        except TimeoutError:
            raise AssertionError(f"the worker did not exit within {EXIT_SECONDS} s: {self.describe()}") from None


async def start_worker(workdir: Path, env: dict[str, str], name: str = "worker") -> WorkerProcess:
    """`python -m inbox worker` in `workdir` with `env`; returns once it is running."""
    log = _new_log(workdir, name)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inbox",
            "worker",
            cwd=workdir,
            env={**cli_env(workdir), **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    worker = WorkerProcess(process, log)
    await worker.wait_running()
    return worker


def _new_log(workdir: Path, name: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / f"{name}.log"


@contextlib.asynccontextmanager
async def workers_cleaned_up() -> AsyncIterator[list[WorkerProcess]]:
    """A list to put started workers in; any still running when the block ends is killed and reaped,
    so a failing test leaves no process behind."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.returncode is None:
                worker.kill()
            await worker.process.wait()


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str, *workers: WorkerProcess) -> None:
    """Poll `condition` (awaiting, so the fake keeps answering) until it holds; else fail after
    `seconds`, showing the workers' output. A generous bound against a hang, not a speed check."""
    try:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        logs = "\n\n".join(worker.describe() for worker in workers)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}\n{logs}") from None


async def outbox_empty() -> bool:
    """No text left waiting, sending or retrying."""
    return not await Message.filter(outbox_state__isnull=False).exists()
