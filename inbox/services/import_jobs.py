"""Imports started from the admin upload page: each runs as a task of the web process, so the page can answer at
once and show a progress bar while a large file loads.

The jobs live in this process's memory (an hour after they finish, they are forgotten): the page that started a
job must ask the same process for its progress. With several web processes behind a load balancer, give the
upload page sticky sessions, or run large imports with `inbox import` (the nightly cron does)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inbox import clock
from inbox.events import Bus
from inbox.models import Staff
from inbox.services.errors import NotFound
from inbox.services.import_files import CsvFile, Problem
from inbox.services.importing import ImportFailed, ImportReport, run_import

KEPT_FOR = timedelta(hours=1)
log = logging.getLogger(__name__)


@dataclass
class ImportJob:
    id: str
    staff_id: int
    file_names: list[str]
    dry_run: bool
    started_at: datetime
    done: int = 0
    total: int = 0
    report: ImportReport | None = None
    problems: list[Problem] = field(default_factory=list)
    failure: str | None = None  # an unexpected error: nothing was written (the unit of work rolled back)
    finished_at: datetime | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    async def wait(self) -> None:
        """Until the import has finished (tests; the page polls instead)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


_jobs: dict[str, ImportJob] = {}


def _forget_old(now: datetime) -> None:
    for job_id, job in list(_jobs.items()):
        if job.finished_at is not None and now - job.finished_at > KEPT_FOR:
            del _jobs[job_id]


def start_import(bus: Bus, staff: Staff, files: list[CsvFile], dry_run: bool) -> ImportJob:
    """The import (or dry run) of `files` begun in the background, credited to `staff` (an admin: the route
    checks)."""
    now = clock.now()
    _forget_old(now)
    job = ImportJob(secrets.token_urlsafe(12), staff.id, [f.name for f in files], dry_run, now)
    job._task = asyncio.create_task(_run(job, bus, staff, files), name=f"import-{job.id}")
    _jobs[job.id] = job
    return job


async def _run(job: ImportJob, bus: Bus, staff: Staff, files: list[CsvFile]) -> None:
    try:
        job.report = await run_import(bus, files, dry_run=job.dry_run, staff=staff, progress=job.progress)
    except ImportFailed as exc:
        job.problems = exc.problems
    except Exception:  # the page must say it failed, not spin for ever; the log has the details
        log.exception("import %s failed", job.id)
        job.failure = "The import failed unexpectedly and nothing was written. The server log has the details."
    finally:
        job.finished_at = clock.now()


def job_for(staff: Staff, job_id: str) -> ImportJob:
    """A job, to the admin who started it only."""
    job = _jobs.get(job_id)
    if job is None or job.staff_id != staff.id:
        raise NotFound("No import with this id is running or recently finished (they are kept for an hour).")
    return job
