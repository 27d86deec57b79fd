"""A redis-server of the test's (or benchmark's) own on a free port, without persistence, that can be
stopped, started again, or paused (SIGSTOP: its sockets stay open and it says nothing)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from .events import WAIT_SECONDS
from .servers import free_port


class RedisServer:
    """A redis-server of the test's own, without persistence, that the test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = spawn_redis(self.workdir, self.port)
        async with asyncio.timeout(WAIT_SECONDS):
            while not await self._answers():
                await asyncio.sleep(0.02)

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.write(b"PING\r\n")
        await writer.drain()
        answer = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return answer == b"+PONG\r\n"

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(WAIT_SECONDS)
            self.process = None


def spawn_redis(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    command = ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
