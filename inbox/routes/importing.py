"""Admin → Import: upload CSV files of clients, cases, assignments and case events; a dry run or the import runs
in the background (inbox.services.import_jobs) while the page shows its progress, then its report or every
problem. The form is posted by htmx and stays as it was (files chosen, dry run or not), so a person can fix a
file and send it again; without JavaScript it is a plain form that leads to the job's own page."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.services import import_jobs
from inbox.services.import_files import COLUMNS, CsvFile
from inbox.web import checked_form, is_htmx, render, require_admin

MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # far above a nightly export of 50,000 rows (about 5 MB)


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "import clients, cases, assignments and events")


def _page(request: Request, status_code: int = 200, **context: object) -> Response:
    context.setdefault("job", None)
    context.setdefault("error", None)
    context.setdefault("dry_run", True)
    context["columns"] = {kind.value: columns for kind, columns in COLUMNS.items()}
    return render(request, "admin/import.html", context, status_code=status_code)


async def import_page(request: Request) -> Response:
    await _admin(request)
    return _page(request)


async def start(request: Request) -> Response:
    admin = await _admin(request)
    form = await checked_form(request)
    dry_run = form.get("mode") != "import"
    uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile) and item.filename]
    files = [CsvFile(upload.filename or "upload.csv", await upload.read()) for upload in uploads]
    await form.close()  # the spooled uploads: their bytes are in `files` now
    error = None
    if not files:
        error = "Choose one or more CSV files to import."
    elif sum(len(f.data) for f in files) > MAX_UPLOAD_BYTES:
        error = f"These files are larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB together: use `inbox import`."
    if error is not None:
        if is_htmx(request):
            return render(request, "admin/_import_job.html", {"job": None, "error": error}, status_code=422)
        return _page(request, 422, error=error, dry_run=dry_run)
    job = await import_jobs.start_import(request.app.state.bus, admin, files, dry_run)
    if is_htmx(request):
        return render(request, "admin/_import_job.html", {"job": job, "error": None}, status_code=202)
    return RedirectResponse(f"/admin/import/{job.id}", status_code=303)


async def job_page(request: Request) -> Response:
    """The job's page (where the plain form leads, and a bookmark): its progress, report or problems."""
    admin = await _admin(request)
    job = await import_jobs.job_for(admin, request.path_params["job_id"])
    return _page(request, job=job, dry_run=job.dry_run)


async def job_progress(request: Request) -> Response:
    """The job's panel alone, which htmx polls until the job has finished."""
    admin = await _admin(request)
    job = await import_jobs.job_for(admin, request.path_params["job_id"])
    return render(request, "admin/_import_job.html", {"job": job, "error": None})


routes = [
    Route("/admin/import", import_page, methods=["GET"]),
    Route("/admin/import", start, methods=["POST"]),
    Route("/admin/import/{job_id:str}", job_page, methods=["GET"]),
    Route("/admin/import/{job_id:str}/progress", job_progress, methods=["GET"]),
]
