"""Upload-page imports kept in the database (issue 12): the progress poll is answered by any web process, not only
the one doing the work, and a job whose process died is shown as failed instead of a bar that never moves.

The other process is `inbox serve` run for real on the test's database: two apps inside one test process would
share this module's memory and Tortoise's one connection, and prove nothing about a second process."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette

from inbox import clock
from inbox.models import Client, ImportJob
from inbox.services import import_jobs
from inbox.settings import Settings
from tests.support.fake_twilio import FakeTwilio
from tests.support.importing import job_id_of, sample_staff, samples, uploads
from tests.support.live import signed_in_browser
from tests.support.servers import inbox_serving
from tests.support.workers import worker_env


async def test_another_process_answers_the_progress_of_a_running_a_finished_and_an_abandoned_import(
    app: Starlette, settings: Settings, fake_twilio: FakeTwilio, make_staff, signed_in, tmp_path: Path
) -> None:
    await sample_staff()
    staff = await make_staff("admin")
    admin = await signed_in(staff)
    await admin.get("/admin/import")
    started = await admin.post(
        "/admin/import", {"mode": "import"}, files=uploads(*samples()), headers={"HX-Request": "true"}
    )
    finished_id = job_id_of(started.text)
    await import_jobs.wait(finished_id)
    assert await Client.all().count() == 3
    # Another process's jobs, as their rows say: one still beating at 40 %, one whose process stopped beating.
    now = clock.now()
    common = {"staff_id": staff.id, "file_names": ["clients.csv"], "dry_run": False, "started_at": now}
    await ImportJob.create(id="running-elsewhere", beat_at=now, done=40, total=100, **common)
    await ImportJob.create(id="died-elsewhere", beat_at=now - timedelta(minutes=10), done=40, total=100, **common)

    env = worker_env(settings, fake_twilio.base_url)
    async with inbox_serving(tmp_path / "other", env) as other, signed_in_browser(other, staff) as http:
        done = (await http.get(f"/admin/import/{finished_id}/progress")).text
        assert "Imported." in done and "clients: created 3, updated 0, unchanged 0" in done
        assert "hx-get" not in done  # finished: the poll stops
        running = (await http.get("/admin/import/running-elsewhere/progress")).text
        assert "40% done" in running and 'hx-get="/admin/import/running-elsewhere/progress"' in running
        died = (await http.get("/admin/import/died-elsewhere/progress")).text
        assert "stopped (a restart or a crash) before it finished" in died and "hx-get" not in died
        page = await http.get("/admin/import/died-elsewhere")  # the job's own page says the same
        assert page.status_code == 200 and "nothing was written" in page.text


async def test_the_job_row_holds_the_report_and_only_its_admin_sees_it(app: Starlette, make_staff, signed_in) -> None:
    await sample_staff()
    staff = await make_staff("admin")
    admin = await signed_in(staff)
    await admin.get("/admin/import")
    started = await admin.post("/admin/import", {"mode": "dry_run"}, files=uploads(*samples()))
    job_id = started.headers["location"].rsplit("/", 1)[1]
    await import_jobs.wait(job_id)
    row = await ImportJob.get(id=job_id)
    assert row.staff_id == staff.id and row.dry_run and row.finished_at is not None and row.failure is None
    assert row.report is not None and "clients: created 3, updated 0, unchanged 0" in row.report["lines"]
    other = await signed_in(await make_staff("admin"))
    assert (await other.get(f"/admin/import/{job_id}/progress")).status_code == 404


async def test_problems_are_stored_the_first_few_hundred_with_their_count(
    app: Starlette, make_staff, signed_in
) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/import")
    lines = "".join(f"C{n},Ana,555,true,\n" for n in range(import_jobs.PROBLEMS_KEPT + 20))
    bad = ("clients.csv", ("external_id,name,mobile,okay_to_text,preferred_language\n" + lines).encode(), "text/csv")
    started = await admin.post("/admin/import", {"mode": "import"}, files=[("files", bad)])
    job_id = started.headers["location"].rsplit("/", 1)[1]
    await import_jobs.wait(job_id)
    row = await ImportJob.get(id=job_id)
    assert (row.problem_count, len(row.problems)) == (import_jobs.PROBLEMS_KEPT + 20, import_jobs.PROBLEMS_KEPT)
    page = (await admin.get(f"/admin/import/{job_id}")).text
    assert f"Nothing was imported: {import_jobs.PROBLEMS_KEPT + 20} problem(s)" in page
    assert len(re.findall(r"is not a phone number", page)) == import_jobs.PROBLEMS_KEPT
    assert await Client.all().count() == 0
