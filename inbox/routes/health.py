"""For load balancers and monitoring: /healthz (the process answers), /readyz (it can do its work) and
/metrics (Prometheus). None of them needs a session; none shows a secret, a name or a message."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox import clock, metrics
from inbox.services import operations
from inbox.settings import Settings

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    """Answers while the process runs, touching nothing else (a liveness probe restarts what does not)."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    """200 when the database answers, the bus is reachable and an outbox worker's heartbeat is fresh;
    503 naming what is not. `?checks=database,bus` asks only those (see README: load balancers)."""
    asked = [name.strip() for name in request.query_params.get("checks", "").split(",") if name.strip()]
    unknown = [name for name in asked if name not in operations.CHECKS]
    if unknown:
        known = ", ".join(operations.CHECKS)
        return JSONResponse(
            {"error": f"Unknown check {', '.join(unknown)}: choose from {known}.", "fields": {"checks": known}},
            status_code=422,
            headers=NO_STORE,
        )
    state = request.app.state
    settings: Settings = state.settings
    result = await operations.readiness(
        state.bus, state.clock(), settings.heartbeat_seconds, tuple(asked) or operations.CHECKS
    )
    if result.ready:
        return JSONResponse({"status": "ready", "checks": result.checks}, headers=NO_STORE)
    body = {"error": f"Not ready: {', '.join(result.failing)}.", "failing": result.failing, "checks": result.checks}
    return JSONResponse(body, status_code=503, headers=NO_STORE)


async def metrics_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None and not _bearer_matches(request, str(settings.metrics_token)):
        return JSONResponse(
            {"error": "Send the metrics token (INBOX_METRICS_TOKEN) as Authorization: Bearer …"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', **NO_STORE},
        )
    try:
        backlog = await operations.outbox_backlog(request.app.state.clock())
        metrics.outbox_backlog(backlog.due, backlog.oldest_seconds)
    except Exception:  # the counters are still worth scraping while the database is away
        log.warning("/metrics could not read the outbox backlog", exc_info=True)
    try:
        spooled = await request.app.state.ingest.spooled()
        inbound = await operations.inbound_backlog(clock.now(), spooled)
        metrics.inbound_backlog(inbound.waiting, inbound.oldest_seconds)
    except Exception:
        log.warning("/metrics could not read the inbound backlog", exc_info=True)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type, headers=NO_STORE)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII str).
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


routes = [
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
    Route("/metrics", metrics_page, methods=["GET"]),
]
