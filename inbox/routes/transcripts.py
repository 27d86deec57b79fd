"""Transcripts for the case file: a printable page and a CSV, per case and per conversation. What is in them
(and who may see it) is inbox.services.transcripts'; here they are only rendered."""

from __future__ import annotations

import csv
import io
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.routes.surveys import safe_cell
from inbox.services import audit, transcripts
from inbox.services.transcripts import Entry, Transcript
from inbox.web import render, require_staff

CSV_COLUMNS = ("time", "kind", "direction", "sender", "status", "body", "attachments", "detail")
UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


async def case_page(request: Request) -> Response:
    staff = await require_staff(request)
    transcript = await transcripts.case_transcript(staff, request.path_params["case_id"])
    await audit.record(audit.Action.TRANSCRIPT_EXPORTED, staff, transcript.case, format="page")
    return _page(request, transcript, f"/cases/{request.path_params['case_id']}")


async def case_csv(request: Request) -> Response:
    staff = await require_staff(request)
    transcript = await transcripts.case_transcript(staff, request.path_params["case_id"])
    assert transcript.case is not None
    await audit.record(audit.Action.TRANSCRIPT_EXPORTED, staff, transcript.case, format="csv")
    return _csv(transcript, f"case-{transcript.case.number}")


async def conversation_page(request: Request) -> Response:
    staff = await require_staff(request)
    transcript = await transcripts.conversation_transcript(staff, request.path_params["conversation_id"])
    await audit.record(audit.Action.TRANSCRIPT_EXPORTED, staff, transcript.conversation, format="page")
    return _page(request, transcript, f"/conversations/{request.path_params['conversation_id']}")


async def conversation_csv(request: Request) -> Response:
    staff = await require_staff(request)
    transcript = await transcripts.conversation_transcript(staff, request.path_params["conversation_id"])
    assert transcript.conversation is not None
    await audit.record(audit.Action.TRANSCRIPT_EXPORTED, staff, transcript.conversation, format="csv")
    return _csv(transcript, f"conversation-{transcript.conversation.id}")


def _page(request: Request, transcript: Transcript, back: str) -> Response:
    context = {"transcript": transcript, "back": back, "csv_url": f"{back}/transcript.csv"}
    response = render(request, "transcripts/page.html", context)
    response.headers["Cache-Control"] = "no-store"  # a client's texts: no copy left in a shared browser's cache
    return response


def csv_row(entry: Entry) -> list[str]:
    """One entry as CSV cells. Message text is the client's to write: a cell a spreadsheet would run as a
    formula is neutralised (safe_cell), whichever column it is in."""
    cells = [
        entry.at.isoformat(timespec="seconds"),
        entry.kind.value,
        entry.direction,
        entry.sender,
        entry.status,
        entry.body,
        "; ".join(entry.attachments),
        entry.detail,
    ]
    return [safe_cell(cell) for cell in cells]


def filename_for(transcript: Transcript, what: str) -> str:
    """`transcript-case-16E-20010101-2026-12-06.csv`: only letters, digits, dot, dash and underscore, so the
    header needs no quoting rules and no path or quote can ride in on a case number."""
    safe = UNSAFE_IN_FILENAME.sub("_", what).strip("._") or "transcript"
    return f"transcript-{safe[:80]}-{transcript.printed_at:%Y-%m-%d}.csv"


def _csv(transcript: Transcript, what: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(entry) for entry in transcript.entries)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename_for(transcript, what)}"',
        "Cache-Control": "no-store",
    }
    # The BOM makes Excel read the file as UTF-8 (names and texts in any language).
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


routes = [
    Route("/cases/{case_id:int}/transcript", case_page, methods=["GET"]),
    Route("/cases/{case_id:int}/transcript.csv", case_csv, methods=["GET"]),
    Route("/conversations/{conversation_id:int}/transcript", conversation_page, methods=["GET"]),
    Route("/conversations/{conversation_id:int}/transcript.csv", conversation_csv, methods=["GET"]),
]
