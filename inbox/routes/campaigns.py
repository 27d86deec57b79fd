"""Bulk messages: the list, compose and preview, a campaign's page with its live progress, and its buttons
(test to my phone, start, pause, resume, cancel). Supervisors and admins only (the service says so)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Campaign, CampaignState, Staff
from inbox.services import campaigns
from inbox.services.campaigns import CampaignInput, FilterWords
from inbox.services.errors import Refused, ServiceError
from inbox.web import checked_form, is_htmx, render, require_staff, send_after

DONE = {
    "created": "Draft saved. Check who gets it and who is left out, send yourself a test, then start it.",
    "test": "A test is on its way to your phone.",
    "started": "Started: the texts are in the outbox and leave at the sending number's pace.",
    "paused": "Paused: no more texts leave until you resume.",
    "resumed": "Resumed.",
    "canceled": "Cancelled: texts not yet sent will not be sent.",
}
STATE_WORDS = {
    CampaignState.DRAFT: "draft (not started)",
    CampaignState.SENDING: "sending",
    CampaignState.PAUSED: "paused",
    CampaignState.CANCELED: "cancelled",
    CampaignState.FINISHED: "finished",
}
FILTER_FIELDS = tuple(FilterWords.__dataclass_fields__)


def _words_of(form: FormData) -> FilterWords:
    return FilterWords(**{name: str(form.get(name, "")) for name in FILTER_FIELDS})


def _input_of(form: FormData) -> CampaignInput:
    days = str(form.get("reply_window_days", "") or "7").strip()
    return CampaignInput(
        name=str(form.get("name", "")),
        body=str(form.get("body", "")),
        filter=_words_of(form),
        options=tuple(o.strip() for o in str(form.get("options", "")).split(",") if o.strip()),
        reply_window_days=int(days) if days.isdigit() and len(days) < 5 else 0,
        alerts_on_replies=form.get("alerts_on_replies") == "on",
    )


async def _manager(request: Request) -> Staff:
    staff = await require_staff(request)
    campaigns.require_manager(staff)
    return staff


async def index(request: Request) -> Response:
    staff = await _manager(request)
    rows = await campaigns.list_campaigns(staff)
    shown = [(c, await campaigns.progress(c.id)) for c in rows]
    return render(request, "campaigns/index.html", {"rows": shown, "state_words": STATE_WORDS})


async def _form_values(staff: Staff, request: Request) -> dict[str, object]:
    """The form's starting values: empty, or a copy of the campaign named by ?from= (to change a draft)."""
    source = request.query_params.get("from", "")
    if not source.isdigit():
        return {"case_state": "any", "reply_window_days": 7}
    campaign = await campaigns.get_campaign(staff, int(source))
    return await campaigns.form_values(campaign)


async def new_form(request: Request) -> Response:
    staff = await _manager(request)
    return render(request, "campaigns/new.html", {"values": await _form_values(staff, request), "errors": {}})


async def create(request: Request) -> Response:
    staff = await _manager(request)
    form = await checked_form(request)
    try:
        campaign = await campaigns.create_campaign(request.app.state.bus, staff, _input_of(form))
    except ServiceError as exc:
        values = {name: str(value) for name, value in form.items() if name != "csrf_token"}
        context = {"values": values, "errors": exc.fields, "error": exc.message}
        return render(request, "campaigns/new.html", context, status_code=exc.status)
    return RedirectResponse(f"/campaigns/{campaign.id}?done=created", status_code=303)


async def _detail_context(request: Request, campaign: Campaign) -> dict[str, object]:
    return {
        "campaign": campaign,
        "progress": await campaigns.progress(campaign.id),
        "left_out": await campaigns.left_out(campaign.id),
        "refused": await campaigns.refused_at_send(campaign.id),
        "filter_words": await campaigns.describe_filter(campaign),
        "reason_words": campaigns.REASON_WORDS,
        "state_words": STATE_WORDS,
    }


async def detail(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    staff = await _manager(request)
    campaign = await campaigns.get_campaign(staff, request.path_params["campaign_id"])
    context = await _detail_context(request, campaign)
    context.update(done=DONE.get(request.query_params.get("done", "")), error=error)
    return render(request, "campaigns/detail.html", context, status_code=status_code)


async def progress_pane(request: Request) -> Response:
    """The live pane alone: static/app.js re-fetches it after a reconnect."""
    staff = await _manager(request)
    campaign = await campaigns.get_campaign(staff, request.path_params["campaign_id"])
    context = {"progress": await campaigns.progress(campaign.id), "oob": False}
    return render(request, "campaigns/_progress.html", context)


async def _act(request: Request, done: str) -> Response:
    staff = await _manager(request)
    await checked_form(request)
    campaign_id = request.path_params["campaign_id"]
    bus = request.app.state.bus
    actions = {
        "started": campaigns.start,
        "paused": campaigns.pause,
        "resumed": campaigns.resume,
        "canceled": campaigns.cancel,
    }
    try:
        await actions[done](bus, staff, campaign_id)
    except Refused as exc:  # moved on meanwhile (another supervisor): said on the page
        if is_htmx(request):  # the page as it is now says what happened instead
            return _to_page(request, f"/campaigns/{campaign_id}")
        return await detail(request, error=exc.message, status_code=exc.status)
    worker = getattr(request.app.state, "worker", None)
    if worker is not None and done in ("started", "resumed"):
        worker.wake()
    return _to_page(request, f"/campaigns/{campaign_id}?done={done}")


def _to_page(request: Request, url: str) -> Response:
    """Back to the campaign's page: a redirect, or htmx told to go there (the live pane's buttons post with htmx)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def start(request: Request) -> Response:
    return await _act(request, "started")


async def pause(request: Request) -> Response:
    return await _act(request, "paused")


async def resume(request: Request) -> Response:
    return await _act(request, "resumed")


async def cancel(request: Request) -> Response:
    return await _act(request, "canceled")


async def send_test(request: Request) -> Response:
    staff = await _manager(request)
    await checked_form(request)
    campaign_id = request.path_params["campaign_id"]
    outbox = request.app.state.outbox
    try:
        message = await campaigns.send_test(outbox, staff, campaign_id)
    except Refused as exc:
        return await detail(request, error=exc.message, status_code=exc.status)
    response = RedirectResponse(f"/campaigns/{campaign_id}?done=test", status_code=303)
    return send_after(response, outbox, message)


routes = [
    Route("/campaigns", index, methods=["GET"]),
    Route("/campaigns/new", new_form, methods=["GET"]),
    Route("/campaigns/new", create, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}", detail, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/progress", progress_pane, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/test", send_test, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/start", start, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/pause", pause, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/resume", resume, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/cancel", cancel, methods=["POST"]),
]
