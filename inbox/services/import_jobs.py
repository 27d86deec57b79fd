"""Imports started from the admin upload page: each runs as a task of the web process that received the upload,
so the page can answer at once and show a progress bar while a large file loads.

The job's state (progress, report, problems, failure) is a row of `import_job`, so any web process behind a load
balancer answers the progress poll. The process doing the work writes its progress every BEAT_SECONDS (the same
write renews `beat_at`); an unfinished job whose beat is older than ABANDONED_AFTER lost its process (a restart,
a crash) and is shown as failed. Its import wrote nothing unless its report was stored: the report of a real
import is written in the import's own transaction.

On SQLite the one connection is the import's while it writes (a few seconds for 50,000 rows), so the bar waits
with it; on PostgreSQL progress is written from its own connection throughout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from inbox import clock
from inbox.events import Bus
from inbox.models import ImportJob, Staff
from inbox.services.errors import NotFound
from inbox.services.import_files import CsvFile
from inbox.services.importing import ImportFailed, ImportReport, run_import

KEPT_FOR = timedelta(days=7)  # finished jobs (their reports) are kept this long, then deleted
BEAT_SECONDS = 1.0
# An unfinished job without a beat for this long lost its process. Far above BEAT_SECONDS: on SQLite no beat can
# be written while the import's transaction holds the connection.
ABANDONED_AFTER = timedelta(minutes=2)
PROBLEMS_KEPT = 500  # problems stored for the page; problem_count has them all
FAILED = "The import failed unexpectedly and nothing was written. The server log has the details."
ABANDONED = (
    "The process running this import stopped (a restart or a crash) before it finished, so nothing was written. "
    "Upload the files again."
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobView:
    """A job as the page shows it, read from its row."""

    row: ImportJob
    now: datetime

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def dry_run(self) -> bool:
        return self.row.dry_run

    @property
    def file_names(self) -> list[str]:
        return self.row.file_names

    @property
    def abandoned(self) -> bool:
        return self.row.finished_at is None and self.now - self.row.beat_at > ABANDONED_AFTER

    @property
    def finished(self) -> bool:
        return self.row.finished_at is not None or self.abandoned

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.row.done / self.row.total) if self.row.total else 0

    @property
    def problems(self) -> list[str]:
        return self.row.problems

    @property
    def problem_count(self) -> int:
        return self.row.problem_count

    @property
    def failure(self) -> str | None:
        return ABANDONED if self.abandoned else self.row.failure

    @property
    def report_lines(self) -> list[str]:
        return (self.row.report or {}).get("lines", [])

    @property
    def notices(self) -> list[str]:
        return (self.row.report or {}).get("notices", [])

    @property
    def has_report(self) -> bool:
        return self.row.report is not None


# This process's running imports (for tests to wait on, and so a task is not collected while it runs). Their
# state is in the database, never here.
_tasks: dict[str, asyncio.Task[None]] = {}


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


async def start_import(bus: Bus, staff: Staff, files: list[CsvFile], dry_run: bool) -> JobView:
    """The import (or dry run) of `files` begun in the background, credited to `staff` (an admin: the route
    checks)."""
    now = clock.now()
    await ImportJob.filter(finished_at__lt=now - KEPT_FOR).delete()
    row = await ImportJob.create(
        id=secrets.token_urlsafe(12),
        staff_id=staff.id,
        file_names=[f.name for f in files],
        dry_run=dry_run,
        started_at=now,
        beat_at=now,
        process=_process(),
    )
    task = asyncio.create_task(_run(row.id, bus, staff, files, dry_run), name=f"import-{row.id}")
    _tasks[row.id] = task
    task.add_done_callback(lambda _: _tasks.pop(row.id, None))
    return JobView(row, now)


class _Progress:
    """The import's progress, as it reports it (a plain call, many times a second); written out by `beat`."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total


async def _beat(job_id: str, progress: _Progress) -> None:
    """Every BEAT_SECONDS: the progress, and a sign this process still works on the job."""
    while True:
        await asyncio.sleep(BEAT_SECONDS)
        try:
            await ImportJob.filter(id=job_id, finished_at__isnull=True).update(
                done=progress.done, total=progress.total, beat_at=clock.now()
            )
        except Exception:  # a missed beat is not the import's failure; the next one tries again
            log.exception("could not write the progress of import %s", job_id)


async def _run(job_id: str, bus: Bus, staff: Staff, files: list[CsvFile], dry_run: bool) -> None:
    progress = _Progress()
    beating = asyncio.create_task(_beat(job_id, progress), name=f"import-beat-{job_id}")
    outcome: dict[str, object] = {}
    try:
        report = await run_import(bus, files, dry_run=dry_run, staff=staff, progress=progress, written=_storing(job_id))
        if dry_run:
            outcome = _finished(report)
    except ImportFailed as exc:
        texts = [str(problem) for problem in exc.problems]
        outcome = {"problems": texts[:PROBLEMS_KEPT], "problem_count": len(texts), "finished_at": clock.now()}
    except Exception:  # the page must say it failed, not spin for ever; the log has the details
        log.exception("import %s failed", job_id)
        outcome = {"failure": FAILED, "finished_at": clock.now()}
    finally:
        beating.cancel()
    if outcome:
        await ImportJob.filter(id=job_id).update(**outcome)


def _finished(report: ImportReport) -> dict[str, object]:
    return {"report": {"lines": report.lines(), "notices": report.notices}, "finished_at": clock.now()}


def _storing(job_id: str) -> Callable[[ImportReport], Awaitable[None]]:
    async def store(report: ImportReport) -> None:
        """Inside the import's transaction: the job and what it wrote commit (or roll back) together."""
        await ImportJob.filter(id=job_id).update(**_finished(report))

    return store


async def job_for(staff: Staff, job_id: str) -> JobView:
    """A job, to the admin who started it only."""
    row = await ImportJob.get_or_none(id=job_id[:24], staff_id=staff.id)
    if row is None:
        raise NotFound("No import with this id is running or recently finished (they are kept for a week).")
    return JobView(row, clock.now())


async def wait(job_id: str) -> None:
    """Until this process's import `job_id` has finished (tests; the page polls instead)."""
    task = _tasks.get(job_id)
    if task is not None:
        await asyncio.shield(task)
