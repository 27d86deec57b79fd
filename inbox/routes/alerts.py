"""Alerts: each person's own, the supervisors' dashboard, the header badge, and dismissing.

The badge and the home page's block are fragments of their own, fetched by the page once it has
loaded (and again whenever its event stream reconnects): every page shows them without each route
computing them, and the event stream keeps them current.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.routes.guards import record_id
from inbox.services import alerts, conversations
from inbox.services.errors import Forbidden, ValidationFailed
from inbox.web import checked_form, is_htmx, render, require_staff


async def alerts_page(request: Request) -> Response:
    """Supervisors and admins: every open alert by office and assignee. Advocates: their own."""
    staff = await require_staff(request)
    context: dict[str, object] = {"alert_count": await alerts.open_alert_count(staff)}
    if staff.sees_everything:
        office, after = _page_of(request)
        context["sections"] = await alerts.dashboard(office, after)
        # One office's later page (the no-JavaScript "More alerts"): just that, no unmatched numbers below it.
        # The first page fetches the section after it (None): finding none unmatched reads every conversation.
        context["unmatched"] = [] if after is not None else None
    else:
        context["alerts"] = await alerts.alerts_for(staff)
    return render(request, "alerts/index.html", context)


async def badge(request: Request) -> Response:
    staff = await require_staff(request)
    return _fragment(request, "alerts/_badge.html", {"alert_count": await alerts.open_alert_count(staff)})


async def home_block(request: Request) -> Response:
    staff = await require_staff(request)
    return _fragment(request, "alerts/_block.html", {"alerts": await alerts.alerts_for(staff)})


async def alert_list(request: Request) -> Response:
    staff = await require_staff(request)
    return _fragment(request, "alerts/_list.html", {"alerts": await alerts.alerts_for(staff)})


async def dashboard(request: Request) -> Response:
    staff = await require_staff(request)
    _require_supervisor(staff)
    return _fragment(request, "alerts/_dashboard.html", {"sections": await alerts.dashboard()})


async def dashboard_more(request: Request) -> Response:
    """The next page of one office's open alerts, after the one the page ended with (htmx's "More alerts")."""
    staff = await require_staff(request)
    _require_supervisor(staff)
    office, after = _page_of(request)
    if office is None or after is None:
        raise ValidationFailed("Say which office's alerts to show, and after which alert.", {"after": "Required."})
    sections = await alerts.dashboard(office, after)
    return _fragment(request, "alerts/_office_page.html", {"section": sections[0] if sections else None})


def _page_of(request: Request) -> tuple[str | None, int | None]:
    """The office (its key) and the alert a page of the dashboard follows, when the query names them."""
    office = request.query_params.get("office")
    after = record_id(request.query_params.get("after")) if "after" in request.query_params else None
    if office is not None and office != alerts.NO_OFFICE and record_id(office) is None:
        raise ValidationFailed("No office has this key.", {"office": "An office's id, or none."})
    return office, after if office is not None else None


async def unmatched(request: Request) -> Response:
    """The dashboard's "Unmatched" section: texts from numbers on no client record (re-fetched live)."""
    staff = await require_staff(request)
    _require_supervisor(staff)
    return _fragment(request, "alerts/_unmatched.html", {"unmatched": await conversations.unmatched_waiting(staff)})


async def dismiss(request: Request) -> Response:
    """Gone for everyone. htmx gets an empty answer that removes the row at once (the event stream
    removes it from every other tab); a plain form post goes back to the alerts page."""
    staff = await require_staff(request)
    await checked_form(request)
    await alerts.dismiss(request.app.state.bus, staff, request.path_params["alert_id"])
    if is_htmx(request):
        return Response(status_code=200)
    return RedirectResponse("/alerts", status_code=303)


def _require_supervisor(staff: Staff) -> None:
    if not staff.sees_everything:
        raise Forbidden("The alerts dashboard is for supervisors and administrators.")


def _fragment(request: Request, name: str, context: dict[str, object]) -> Response:
    response = render(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


routes = [
    Route("/alerts", alerts_page, methods=["GET"]),
    Route("/alerts/badge", badge, methods=["GET"]),
    Route("/alerts/block", home_block, methods=["GET"]),
    Route("/alerts/list", alert_list, methods=["GET"]),
    Route("/alerts/dashboard", dashboard, methods=["GET"]),
    Route("/alerts/dashboard/more", dashboard_more, methods=["GET"]),
    Route("/alerts/unmatched", unmatched, methods=["GET"]),
    Route("/alerts/{alert_id:int}/dismiss", dismiss, methods=["POST"]),
]
