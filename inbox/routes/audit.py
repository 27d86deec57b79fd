"""Admin → Audit trail: who did what, filtered, newest first, a page at a time, and as a CSV (itself audited).
What is in it and who may read it is inbox.services.audit's; here it is only rendered."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.models import AuditEntry
from inbox.routes.surveys import safe_cell
from inbox.services import audit
from inbox.services.errors import ServiceError
from inbox.web import render, require_admin

CSV_COLUMNS = ("id", "time", "actor_id", "actor", "action", "object_kind", "object_id", "detail", "ip")


def actor_name(entry: AuditEntry) -> str:
    if entry.actor is not None:
        return entry.actor.name
    return "nobody signed in" if entry.action == audit.Action.SIGN_IN_FAILED else "the system"


def detail_text(entry: AuditEntry) -> str:
    return json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")) if entry.detail else ""


async def audit_page(request: Request) -> Response:
    staff = await require_admin(request, "read the audit trail")
    raw = {key: value for key, value in request.query_params.items()}
    context: dict[str, object] = {"raw": raw, "errors": {}, "entries": [], "next_url": None, "csv_url": None}
    context.update(actors=await audit.actors(), actions=audit.actions(), actor_name=actor_name, detail=detail_text)
    try:
        filters = audit.parse_filters(raw)
        before = audit.parse_before(raw.get("before", ""))
    except ServiceError as exc:
        return render(request, "admin/audit.html", {**context, "errors": exc.fields}, status_code=exc.status)
    rows = await audit.entries(staff, filters, before, limit=audit.PAGE_SIZE + 1)
    query = filters.query_string()
    context["entries"] = rows[: audit.PAGE_SIZE]
    if len(rows) > audit.PAGE_SIZE:
        context["next_url"] = "/admin/audit?" + urlencode({**query, "before": str(rows[audit.PAGE_SIZE - 1].id)})
    context["csv_url"] = "/admin/audit.csv" + ("?" + urlencode(query) if query else "")
    response = render(request, "admin/audit.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


def csv_row(entry: AuditEntry) -> list[str]:
    """An email tried at sign-in is whatever someone typed: every cell is made safe for spreadsheets."""
    cells = [
        str(entry.id),
        entry.at.isoformat(timespec="seconds"),
        str(entry.actor_id or ""),
        actor_name(entry),
        entry.action,
        entry.object_kind,
        "" if entry.object_id is None else str(entry.object_id),
        detail_text(entry),
        entry.ip,
    ]
    return [safe_cell(cell) for cell in cells]


async def audit_csv(request: Request) -> Response:
    staff = await require_admin(request, "read the audit trail")
    filters = audit.parse_filters(dict(request.query_params.items()))  # a bad filter: 422 naming it
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(entry) for entry in await audit.export(staff, filters))
    headers = {"Content-Disposition": 'attachment; filename="audit-trail.csv"', "Cache-Control": "no-store"}
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


routes = [
    Route("/admin/audit", audit_page, methods=["GET"]),
    Route("/admin/audit.csv", audit_csv, methods=["GET"]),
]
