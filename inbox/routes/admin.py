"""Administration: the organisation's texting rules."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.services import organisation
from inbox.services.errors import ServiceError
from inbox.services.organisation import OrganisationRules
from inbox.web import checked_form, render, require_admin


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "change the organisation's settings")


async def settings_page(request: Request) -> Response:
    await _admin(request)
    org = await organisation.current()
    rules = OrganisationRules(
        org.name,
        org.char_limit,
        org.linking_policy.value,
        org.alert_policy.value,
        org.dismiss_alerts_on_reply,
        org.delete_media_at_provider,
        org.opt_in_requests,
        org.opt_in_text,
    )
    return render(
        request, "admin/settings.html", {"rules": rules, "errors": {}, "saved": "saved" in request.query_params}
    )


async def save_settings(request: Request) -> Response:
    staff = await _admin(request)
    form = await checked_form(request)
    raw_limit = str(form.get("char_limit", ""))
    rules = OrganisationRules(
        name=str(form.get("name", "")),
        char_limit=int(raw_limit) if raw_limit.isdigit() else 0,
        linking_policy=str(form.get("linking_policy", "")),
        alert_policy=str(form.get("alert_policy", "")),
        dismiss_alerts_on_reply=form.get("dismiss_alerts_on_reply") == "on",
        delete_media_at_provider=form.get("delete_media_at_provider") == "on",
        opt_in_requests=form.get("opt_in_requests") == "on",
        opt_in_text=str(form["opt_in_text"]) if "opt_in_text" in form else None,
    )
    try:
        await organisation.update_rules(staff, rules, request.app.state.bus)
    except ServiceError as exc:
        context = {"rules": rules, "errors": exc.fields, "saved": False, "raw_limit": raw_limit}
        return render(request, "admin/settings.html", context, status_code=exc.status)
    return RedirectResponse("/admin/settings?saved=1", status_code=303)


routes = [
    Route("/admin/settings", settings_page, methods=["GET"]),
    Route("/admin/settings", save_settings, methods=["POST"]),
]
