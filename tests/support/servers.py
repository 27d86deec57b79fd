"""Real HTTP servers for tests, run inside the test's own event loop.

uvicorn runs as a task in the current loop rather than in a thread: the app's ORM connections and
the event bus are bound to the loop that created them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from .cli import cli_env
from .events import WAIT_SECONDS

STARTUP_TIMEOUT_SECONDS = 15.0
SERVE_STARTUP_SECONDS = 60  # `inbox serve`: importing and starting the app on a busy 2-core machine
SHUTDOWN_TIMEOUT_SECONDS = 3.0


class _TestServer(uvicorn.Server):
    """uvicorn's server, stopped without its 0.1 s steps: it checks `should_exit` every 0.1 s, pauses 0.1 s for
    connections to wind down and polls them in 0.1 s steps. A test starts and stops a server or two, so those
    steps were minutes of every run; here a stop is noticed at once and connections are polled every 5 ms."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop_requested = asyncio.Event()

    def request_stop(self, *, force: bool = False) -> None:
        self.should_exit = True
        self.force_exit = self.force_exit or force
        self._stop_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest: uvicorn would otherwise swallow it to shut itself down.
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the Date header, as uvicorn's first tick sets it
        await self._stop_requested.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close at once; busy ones after their response
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
                    await asyncio.sleep(0.005)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp, *, lifespan: str = "on") -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; yields its base URL, e.g. "http://127.0.0.1:54321"."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,  # the OS picks a free port; read back from the bound socket below
        lifespan=lifespan,  # type: ignore[arg-type]
        log_level="warning",
        # "auto" imports the websockets package, whose legacy modules raise DeprecationWarning.
        ws="none",
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS,
    )
    server = _TestServer(config)
    task = asyncio.get_running_loop().create_task(_run(server), name="uvicorn test server")
    try:
        await _wait_until_started(server, task)
    except BaseException:
        await _abandon(server, task)
        raise
    try:
        yield f"http://127.0.0.1:{_bound_port(server)}"
    finally:
        await _stop(server, task)


async def _run(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exit:
        # uvicorn exits the process when the app's lifespan startup fails; in a test that would stop
        # the event loop itself, so it becomes an ordinary error.
        raise RuntimeError(f"uvicorn could not start the app (exit code {exit.code})") from None


async def _wait_until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
        while not server.started:
            if task.done():
                await task  # raises the startup error
                raise RuntimeError("uvicorn stopped before it started serving")
            await asyncio.sleep(0.01)


def _bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("uvicorn started without a listening socket")


async def _abandon(server: _TestServer, task: asyncio.Task[None]) -> None:
    """Stop a server that never came up; its own error is already on its way to the test."""
    server.request_stop(force=True)
    task.cancel()  # it may be stuck in the app's lifespan startup
    await asyncio.gather(task, return_exceptions=True)


async def _stop(server: _TestServer, task: asyncio.Task[None]) -> None:
    server.request_stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), SHUTDOWN_TIMEOUT_SECONDS + 1)
    except TimeoutError:
        # Open streams (SSE) keep a graceful shutdown waiting; stop waiting for them.
        server.request_stop(force=True)
        await task


def free_port() -> int:
    """A loopback port nothing listens on now (the system's pick), for a server run in another process
    or for an address where nothing answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- `inbox serve` as a process of its own


@contextlib.asynccontextmanager
async def inbox_serving(workdir: Path, env: dict[str, str], *args: str) -> AsyncIterator[str]:
    """`inbox serve` run for real on a free port, with `env`; yields its URL once it answers."""
    port = free_port()
    log = new_log(workdir, port)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "inbox", "serve", "--port", str(port), "--no-worker", *args),
            cwd=workdir,
            env={**cli_env(workdir), **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await until_answering(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


def new_log(workdir: Path, port: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / f"serve-{port}.log"


def output(log: Path) -> str:
    return log.read_text(errors="replace")


async def until_answering(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(SERVE_STARTUP_SECONDS):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"inbox serve stopped (exit {process.returncode}):\n{output(log)}")
            try:
                if (await http.get("/login")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
