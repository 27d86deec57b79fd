"""Admin → Webhooks: register endpoints for outgoing webhooks (the secret is shown once, on the answer to the
form), see each one's last delivery, its delivery log with "Send again", enable, disable and delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Staff
from inbox.services import outgoing_webhooks, webhook_recording
from inbox.services.errors import ServiceError
from inbox.web import checked_form, render, require_admin


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "manage outgoing webhooks")


async def _list_page(request: Request, status_code: int = 200, **context: object) -> Response:
    endpoints = await outgoing_webhooks.list_endpoints()
    context.setdefault("errors", {})
    context.setdefault("form", {"url": "", "events": []})
    context.setdefault("created", None)
    context |= {
        "endpoints": endpoints,
        "last": await outgoing_webhooks.last_deliveries([e.id for e in endpoints]),
        "event_types": webhook_recording.EVENT_TYPES,
    }
    return render(request, "admin/webhooks.html", context, status_code=status_code)


async def webhooks_page(request: Request) -> Response:
    await _admin(request)
    return await _list_page(request)


async def add_endpoint(request: Request) -> Response:
    admin = await _admin(request)
    form = await checked_form(request)
    url = str(form.get("url", "")).strip()
    events = [str(value) for value in form.getlist("events")]
    try:
        box, bus = request.app.state.webhooks.box, request.app.state.bus
        endpoint, secret = await outgoing_webhooks.create_endpoint(box, admin, url, events, bus)
    except ServiceError as exc:
        return await _list_page(request, exc.status, errors=exc.fields, form={"url": url, "events": events})
    # The secret appears in this answer only (never in a URL, a log, or any later page).
    response = await _list_page(request, 201, created={"id": endpoint.id, "url": endpoint.url, "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


async def endpoint_page(request: Request) -> Response:
    await _admin(request)
    endpoint = await outgoing_webhooks.get_endpoint(request.path_params["endpoint_id"])
    deliveries = await outgoing_webhooks.delivery_log(endpoint.id)
    context = {"endpoint": endpoint, "deliveries": deliveries, "resent": request.query_params.get("resent")}
    return render(request, "admin/webhook_endpoint.html", context)


async def enable(request: Request) -> Response:
    admin = await _admin(request)
    await checked_form(request)
    await outgoing_webhooks.set_enabled(admin, request.path_params["endpoint_id"], True, request.app.state.bus)
    return RedirectResponse("/admin/webhooks", status_code=303)


async def disable(request: Request) -> Response:
    admin = await _admin(request)
    await checked_form(request)
    await outgoing_webhooks.set_enabled(admin, request.path_params["endpoint_id"], False, request.app.state.bus)
    return RedirectResponse("/admin/webhooks", status_code=303)


async def delete(request: Request) -> Response:
    admin = await _admin(request)
    await checked_form(request)
    await outgoing_webhooks.delete_endpoint(admin, request.path_params["endpoint_id"], request.app.state.bus)
    return RedirectResponse("/admin/webhooks", status_code=303)


async def send_again(request: Request) -> Response:
    await _admin(request)
    await checked_form(request)
    endpoint_id = request.path_params["endpoint_id"]
    delivery = await outgoing_webhooks.send_again(endpoint_id, request.path_params["delivery_id"])
    return RedirectResponse(f"/admin/webhooks/{endpoint_id}?resent={delivery.id}", status_code=303)


routes = [
    Route("/admin/webhooks", webhooks_page, methods=["GET"]),
    Route("/admin/webhooks", add_endpoint, methods=["POST"]),
    Route("/admin/webhooks/{endpoint_id:int}", endpoint_page, methods=["GET"]),
    Route("/admin/webhooks/{endpoint_id:int}/enable", enable, methods=["POST"]),
    Route("/admin/webhooks/{endpoint_id:int}/disable", disable, methods=["POST"]),
    Route("/admin/webhooks/{endpoint_id:int}/delete", delete, methods=["POST"]),
    Route("/admin/webhooks/{endpoint_id:int}/deliveries/{delivery_id:int}/resend", send_again, methods=["POST"]),
]
