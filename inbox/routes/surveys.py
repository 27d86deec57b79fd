"""A survey's results: the page (tallies, an SVG bar chart, the free-text replies; kept current by the event
stream) and its CSV export. Supervisors and admins only: the services refuse anyone else with a 403."""

from __future__ import annotations

import csv
import io

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.services import surveys
from inbox.web import iso, render, require_staff

CSV_COLUMNS = ("client", "number", "case", "answer", "reply text", "replied at")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such a cell is
# prefixed with a quote, which the spreadsheet shows as text. Tabs and carriage returns start formulas too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


async def results_page(request: Request) -> Response:
    staff = await require_staff(request)
    results = await surveys.results_for(staff, request.path_params["campaign_id"])
    return render(request, "campaigns/results.html", {"results": results})


async def results_csv(request: Request) -> Response:
    """Every recipient the survey was sent to, one row each: their answer and reply, if any."""
    staff = await require_staff(request)
    campaign, rows = await surveys.rows_for_export(staff, request.path_params["campaign_id"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            safe_cell(value)
            for value in (
                row.client_name,
                row.number,
                row.case_number,
                row.answer or "",
                row.body,
                iso(row.replied_at.replace(microsecond=0)) if row.replied_at else "",
            )
        )
    headers = {
        "Content-Disposition": f'attachment; filename="survey-{campaign.id}-results.csv"',
        "Cache-Control": "no-store",
    }
    # The BOM makes Excel read the file as UTF-8 (names and replies in any language).
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


routes = [
    Route("/campaigns/{campaign_id:int}/results", results_page, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/results.csv", results_csv, methods=["GET"]),
]
