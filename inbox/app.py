"""create_app(settings): the only place that wires things together."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from inbox import clock, db, metrics
from inbox.bus_transports import is_network_bus
from inbox.crypto import SecretBox
from inbox.events import Bus
from inbox.headers import ResponseHeaders
from inbox.live import LiveHub
from inbox.models import Channel, Organisation
from inbox.request_address import RequestAddress
from inbox.routes import (
    admin,
    alerts,
    api,
    auth,
    campaigns,
    case_events,
    channels,
    directory,
    events,
    health,
    inbox,
    media,
    messages,
    phone,
    quick_entries,
    staff_admin,
    surveys,
    webhook_endpoints,
    webhooks,
)
from inbox.routes import audit as audit_routes
from inbox.routes import importing as import_routes
from inbox.routes import queue as queue_routes
from inbox.routes import tasks as task_routes
from inbox.routes import transcripts as transcript_routes
from inbox.routes.errors import QueryStringGuard, http_error, server_error, service_error
from inbox.routes.events import StreamHandoff
from inbox.services import event_log, sessions, settings_cache
from inbox.services.channels import ensure_channel
from inbox.services.delivery_rules import OutboxRules
from inbox.services.errors import ServiceError
from inbox.services.ingest import Ingest
from inbox.services.messaging import Outbox
from inbox.services.outbox import worker_name
from inbox.services.outgoing_webhooks import WebhookSender, build_sender
from inbox.services.pacing import pacer_for
from inbox.services.providers import ProviderRegistry, RoutedProvider
from inbox.services.sessions import SessionRules
from inbox.services.throttle import Limits, Throttle
from inbox.session_middleware import ServerSessionMiddleware
from inbox.settings import Settings
from inbox.sms.base import ChannelCredentials, Provider, ProviderInfo
from inbox.web import ROOT, LoginRequired, OneVisibilityAnswer, login_redirect
from inbox.worker import OutboxWorker, stop_gracefully

log = logging.getLogger(__name__)


def simulator_token(settings: Settings) -> str:
    """The simulator's auth token: stable per installation, never configured by hand."""
    return hmac.new(settings.secret_key.encode(), b"simulator-auth-token", hashlib.sha256).hexdigest()[:32]


def build_simulator(settings: Settings, app: Starlette | None = None) -> Provider:
    """The simulator plays Twilio by calling our real webhook routes, signature and all: in-process
    when it runs inside the web app, over HTTP to INBOX_PUBLIC_URL from a separate worker."""
    from inbox.sms.simulator import SimulatorProvider

    transport = httpx.ASGITransport(app=app) if app is not None else None
    client = httpx.AsyncClient(transport=transport, base_url=settings.public_url)
    # Shared by every process on this machine, as Twilio's Messages list is (a recovering worker looks there).
    ledger = settings.data_dir / "simulator-sent.jsonl"
    return SimulatorProvider(simulator_token(settings), settings.public_url, client, ledger=ledger)


def build_twilio(settings: Settings, credentials: ChannelCredentials) -> Provider:
    """Twilio for one channel: its account, token and sender; INBOX_TWILIO_API_URL for every channel."""
    from inbox.sms.twilio import TwilioProvider

    return TwilioProvider(
        credentials.account_sid,
        credentials.auth_token,
        from_number=credentials.from_number,
        messaging_service_sid=credentials.messaging_service_sid,
        api_url=settings.twilio_api_url,
        label=credentials.label,
        send_timeout=settings.send_timeout_seconds,
    )


def bootstrap_info(settings: Settings) -> ProviderInfo:
    """The first channel: the one TWILIO_* names, or the simulator without them."""
    if settings.uses_simulator:
        from inbox.sms.simulator import DEFAULT_FROM_NUMBER, SIMULATOR_ACCOUNT_SID

        return ProviderInfo(SIMULATOR_ACCOUNT_SID, DEFAULT_FROM_NUMBER, None, label="Simulator", is_simulator=True)
    return ProviderInfo(
        settings.twilio_account_sid or "",
        settings.twilio_from_number,
        settings.twilio_messaging_service_sid,
        label="Twilio",
    )


def build_registry(settings: Settings, app: Starlette | None = None) -> ProviderRegistry:
    return ProviderRegistry(
        SecretBox(settings.secret_key, settings.secret_key_old),
        twilio=lambda credentials: build_twilio(settings, credentials),
        simulator=lambda: build_simulator(settings, app),
        env_account_sid=settings.twilio_account_sid,
        env_auth_token=settings.twilio_auth_token,
    )


def build_provider(settings: Settings, app: Starlette | None = None) -> Provider:
    """The environment's own provider (TWILIO_* or the simulator), for commands that need no registry."""
    info = bootstrap_info(settings)
    if info.is_simulator:
        return build_simulator(settings, app)
    credentials = ChannelCredentials(
        info.account_sid, str(settings.twilio_auth_token or ""), info.from_number, info.messaging_service_sid
    )
    return build_twilio(settings, credentials)


def outbox_rules(settings: Settings) -> OutboxRules:
    return OutboxRules(
        # A lease outlives a send and a look-up that both run to their timeout: a slow call is not
        # mistaken for a dead worker.
        lease=timedelta(seconds=max(settings.lease_seconds, 2 * settings.send_timeout_seconds + 5)),
        retry_for=timedelta(minutes=settings.retry_for_minutes),
        stuck_after=timedelta(minutes=settings.stuck_after_minutes),
        pacing_burst=settings.pacing_burst,
    )


def build_outbox(
    settings: Settings, bus: Bus, registry: ProviderRegistry, channel: Channel, role: str = "web"
) -> Outbox:
    """Sending through each channel's own provider; the first channel's serves what names no account."""
    return Outbox(
        provider=RoutedProvider(registry, registry.for_channel(channel)),
        bus=bus,
        public_url=settings.public_url,
        media_dir=settings.media_dir,
        media_key=str(settings.secret_key),
        provider_of=registry.for_channel,
        rules=outbox_rules(settings),
        pacer=pacer_for(settings.pacing_url),
        worker_id=worker_name(role),
    )


def build_webhook_sender(settings: Settings, worker_id: str, bus: Bus | None = None) -> WebhookSender:
    """Outgoing webhooks' sender: it decrypts each endpoint's secret to sign with."""
    box = SecretBox(settings.secret_key, settings.secret_key_old)
    # The receiver gets the time Twilio gets, and a claim lasts as long as a text's.
    return build_sender(box, worker_id, settings.send_timeout_seconds, outbox_rules(settings).lease, bus)


def build_throttle(settings: Settings) -> Throttle:
    return Throttle(
        settings.rate_limit_url,
        Limits(
            sign_ins_per_account=settings.failed_sign_ins_per_account,
            sign_ins_per_address=settings.failed_sign_ins_per_address,
            tokens_per_address=settings.failed_tokens_per_address,
        ),
    )


def session_rules(settings: Settings) -> SessionRules:
    return SessionRules(
        idle=timedelta(hours=settings.session_idle_hours), lifetime=timedelta(days=settings.session_max_days)
    )


# Expired sessions are deleted (and any stream still open on one closed) this often.
SESSION_SWEEP_SECONDS = 300


async def sweep_sessions(app: Starlette) -> None:
    while True:
        try:
            removed = await sessions.remove_expired(app.state.bus, app.state.clock())
            if removed:
                log.info("Removed %d expired sessions", removed)
        except Exception:  # a database hiccup must not stop the sweeping for good
            log.exception("Could not remove expired sessions")
        await asyncio.sleep(SESSION_SWEEP_SECONDS)


async def ensure_organisation() -> None:
    if not await Organisation.exists():
        await Organisation.create()


def leave_start_up_out_of_collections() -> None:
    """Everything loaded by now (modules, the ORM's models, settings, the hub) lives as long as the process: moved
    out of the garbage collector's sight, so its full collections stop walking ~190,000 objects each time. Measured
    (bench/RESULTS.md): a full collection with 10,000 open tabs took 140–200 ms, a pause for every tab's update,
    and 2–6 ms with these frozen. Undone when the app stops (the tests start many apps in one process)."""
    gc.freeze()


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.migrate_on_start and settings.is_sqlite:
            await db.migrate(settings.database_url)
        await db.connect(settings.database_url)
        await ensure_organisation()
        bus = Bus(settings.broadcast_url, journal=event_log.record, journal_all=event_log.record_all)
        await bus.connect()
        registry = build_registry(settings, app)
        settings_cache.forget()  # another app in this process (the tests) may have used another database
        channel = await ensure_channel(bootstrap_info(settings))
        app.state.providers = registry
        app.state.channel = channel
        # The first channel's provider: the simulator behind the client phone, or TWILIO_*'s.
        app.state.provider = registry.for_channel(channel)
        app.state.clock = clock.now  # tests set a fixed clock (office hours, once-a-day auto-replies)
        app.state.bus = bus
        app.state.outbox = build_outbox(settings, bus, registry, channel)
        app.state.hub = LiveHub(bus, app.state.outbox.rules)
        await app.state.hub.start()
        # Inbound webhooks: acknowledged once stored, processed right after (tests replace app.state.clock).
        # With --no-worker on a network bus the workers process bursts (their events reach this process's tabs).
        processes = settings.run_worker or not is_network_bus(settings.broadcast_url)
        app.state.ingest = Ingest(app.state.outbox, now=lambda: app.state.clock(), processes=processes)
        await app.state.ingest.start()
        app.state.webhooks = build_webhook_sender(settings, app.state.outbox.worker_id, bus)
        worker = (
            OutboxWorker(
                app.state.outbox,
                lanes=settings.worker_concurrency,
                heartbeat=settings.heartbeat_seconds,
                webhooks=app.state.webhooks,
            )
            if settings.run_worker
            else None
        )
        app.state.worker = worker
        working = asyncio.create_task(worker.run(), name="outbox-worker") if worker else None
        sweeper = asyncio.create_task(sweep_sessions(app), name="session-sweeper")
        following = asyncio.create_task(settings_cache.follow(bus), name="settings-cache")
        leave_start_up_out_of_collections()
        try:
            yield
        finally:
            gc.unfreeze()
            await app.state.ingest.stop()
            if worker is not None and working is not None:
                await stop_gracefully(worker, working)
            for task in (sweeper, following):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await app.state.hub.stop()
            await app.state.throttle.close()
            await bus.disconnect()
            await registry.close()
            await app.state.outbox.pacer.close()
            await app.state.webhooks.close()
            await db.disconnect()
            metrics.process_exited()

    routes = [
        # First: Starlette tries the routes in order, and Twilio's webhooks come in bursts of thousands; behind
        # every other route their path cost ~15 % of the web process's time under load (bench/ingest.py).
        *webhooks.routes,
        *health.routes,
        *auth.routes,
        *staff_admin.routes,
        *audit_routes.routes,
        *inbox.routes,
        *directory.routes,
        *case_events.routes,
        *task_routes.routes,
        *messages.routes,
        *admin.routes,
        *import_routes.routes,
        *webhook_endpoints.routes,
        *channels.routes,
        *quick_entries.routes,
        *queue_routes.routes,
        *alerts.routes,
        *surveys.routes,
        *campaigns.routes,
        *events.routes,
        *media.routes,
        *transcript_routes.routes,
        *(phone.routes if settings.development and settings.uses_simulator else []),
        Mount("/api/v1", routes=api.routes),
        Mount("/static", app=StaticFiles(directory=str(ROOT / "static")), name="static"),
    ]
    middleware = [
        # Counts every Twilio webhook by the status it was answered with, errors included.
        Middleware(metrics.WebhookMetrics),
        # Event streams' bodies are written from here, after the layers below have answered their headers.
        Middleware(StreamHandoff),
        # Outermost of the rest, so every answer gets its headers: error pages and login redirects too.
        Middleware(ResponseHeaders),
        Middleware(
            ServerSessionMiddleware,
            rules=session_rules(settings),
            secure=settings.secure_cookies,
            clock=clock.now,
        ),
        Middleware(QueryStringGuard),
        Middleware(OneVisibilityAnswer),
        Middleware(RequestAddress),  # for the audit trail's entries
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            LoginRequired: login_redirect,
            ServiceError: service_error,
            HTTPException: http_error,
            500: server_error,
        },
    )
    app.state.settings = settings
    app.state.throttle = build_throttle(settings)
    return app
