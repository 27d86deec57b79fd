"""The `inbox` command: serve, worker, migrate, create-user, create-token, demo, import, rotate-secrets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging.config
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from inbox import db, logs
from inbox.services.errors import ServiceError
from inbox.settings import SettingError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inbox", description="Case Inbox: two-way SMS for legal aid.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the web app and the outbox worker in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="leave scheduled sends to `inbox worker`")
    serve.add_argument(
        "--workers",
        default="1",
        help="web processes on this port: a number (more than 1 needs a network bus), or auto (one per CPU with a "
        "network bus, else 1)",
    )
    commands.add_parser("worker", help="run the outbox worker alone (scheduled sends)")
    commands.add_parser("migrate", help="apply database migrations")
    user = commands.add_parser("create-user", help="create a staff account")
    user.add_argument("--email", required=True)
    user.add_argument("--name", required=True)
    user.add_argument("--role", required=True, choices=["advocate", "supervisor", "admin"])
    user.add_argument("--password")
    user.add_argument("--mobile")
    token = commands.add_parser("create-token", help="create an API token (printed as the last line)")
    token.add_argument("--email", required=True)
    commands.add_parser("demo", help="create sample offices, staff, clients, cases and texts")
    load = commands.add_parser(
        "import", help="import CSV files of clients, cases, assignments and case events (upserted by external id)"
    )
    load.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    load.add_argument(
        "--staff",
        help="email of the staff member credited (default: the first admin); events' reminders go in their name",
    )
    load.add_argument("files", nargs="+", metavar="FILE.csv")
    commands.add_parser(
        "rotate-secrets", help="re-encrypt stored auth tokens with INBOX_SECRET_KEY (old keys in INBOX_SECRET_KEY_OLD)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingError as exc:
        sys.exit(f"error: {exc}")
    logging.config.dictConfig(logs.config(settings.log_format))
    if args.command == "serve":
        workers = web_processes(settings, args.workers)
        serve(settings, args.host, args.port, run_worker=not args.no_worker, workers=workers)
        return
    commands: dict[str, Callable[[Settings, Any], Coroutine[Any, Any, None]]] = {
        "migrate": migrate,
        "worker": worker,
        "create-user": create_user,
        "create-token": create_token,
        "demo": demo,
        "import": import_files,
        "rotate-secrets": rotate_secrets,
    }
    try:
        asyncio.run(commands[args.command](settings, args))
    except ServiceError as exc:
        details = "".join(f"\n  {field}: {problem}" for field, problem in exc.fields.items())
        sys.exit(f"error: {exc.message}{details}")


def serve(settings: Settings, host: str, port: int, run_worker: bool, workers: int = 1) -> None:
    import uvicorn

    from inbox.app import create_app

    if "INBOX_PUBLIC_URL" not in os.environ:
        settings = settings.with_changes(public_url=f"http://{host}:{port}")
    print(f"Case Inbox on {settings.public_url}  (provider: {'simulator' if settings.uses_simulator else 'Twilio'})")
    if workers == 1:
        app = create_app(settings.with_changes(run_worker=run_worker))

        class Server(uvicorn.Server):
            # uvicorn waits for open responses before it stops, and an event stream never ends by itself.
            def handle_exit(self, sig: int, frame: Any) -> None:
                super().handle_exit(sig, frame)
                hub = getattr(app.state, "hub", None)
                if hub is not None:
                    hub.server_stopping()

        config = uvicorn.Config(
            app, host=host, port=port, proxy_headers=True, log_level="info", log_config=logs.config(settings.log_format)
        )
        Server(config).run()
        return
    problem = several_processes_problem(settings, workers)
    if problem:
        sys.exit(f"error: {problem}")
    if settings.is_sqlite and settings.migrate_on_start:
        asyncio.run(db.migrate(settings.database_url))  # once, here: not by every process at the same time
    # Each process builds its app from the environment (uvicorn starts them afresh): hand them what the
    # command line decided.
    os.environ["INBOX_PUBLIC_URL"] = settings.public_url
    os.environ[SERVE_RUN_WORKER] = "1" if run_worker else "0"
    uvicorn.run(
        "inbox.cli:served_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        proxy_headers=True,
        log_level="info",
        log_config=logs.config(settings.log_format),
    )


# Set by `inbox serve --workers N` for the processes it starts.
SERVE_RUN_WORKER = "INBOX_SERVE_RUN_WORKER"


def web_processes(settings: Settings, workers: str) -> int:
    """--workers as a number: auto is one per CPU when the processes can share live updates and sign-in
    throttling (a network bus and INBOX_RATE_LIMIT_URL), else one."""
    if workers == "auto":
        problem = several_processes_problem(settings, 2)
        if problem:
            print(f"One web process: {problem.replace('--workers 2 needs', 'several would need')}")
            return 1
        return os.cpu_count() or 1
    try:
        return int(workers)
    except ValueError:
        sys.exit(f"error: --workers must be a number or auto (it is {workers!r}).")


def several_processes_problem(settings: Settings, workers: int) -> str | None:
    """Why these settings cannot serve from several processes, or None when they can."""
    from inbox.bus_transports import is_network_bus

    if workers < 1:
        return f"--workers must be 1 or more (it is {workers})."
    if not is_network_bus(settings.broadcast_url):
        return (
            f"--workers {workers} needs an event bus every process shares: set INBOX_BROADCAST_URL to redis://… "
            "or postgres://… (with memory:// a tab would hear only the texts its own process handled)."
        )
    if settings.rate_limit_url.startswith("memory://"):
        return (
            f"--workers {workers} needs failed sign-ins counted in one place: set INBOX_RATE_LIMIT_URL to redis://… "
            "(with memory:// each process would allow the full number of attempts)."
        )
    return None


def served_app() -> Any:
    """The app of one of `inbox serve --workers N`'s processes."""
    from inbox.app import create_app

    settings = load_settings()
    # The parent migrated already.
    return create_app(settings.with_changes(run_worker=os.environ.get(SERVE_RUN_WORKER) != "0", migrate_on_start=False))


async def migrate(settings: Settings, _: Any) -> None:
    await db.migrate(settings.database_url)
    print("Database is up to date.")


async def _with_db(settings: Settings, work: Callable[[], Awaitable[None]]) -> None:
    if settings.is_sqlite:
        await db.migrate(settings.database_url)
    await db.connect(settings.database_url)
    try:
        await work()
    finally:
        await db.disconnect()


async def create_user(settings: Settings, args: Any) -> None:
    from inbox.services.staff import create_staff

    async def work() -> None:
        staff, password = await create_staff(
            email=args.email, name=args.name, role=args.role, password=args.password, mobile=args.mobile
        )
        print(f"Created {staff.role.value} {staff.email}")
        if not args.password:
            print(f"Password: {password}")

    await _with_db(settings, work)


async def create_token(settings: Settings, args: Any) -> None:
    from inbox.services.staff import create_api_token

    async def work() -> None:
        token = await create_api_token(args.email)
        print(f"API token for {args.email} (shown once; use as Authorization: Bearer …):")
        print(token)

    await _with_db(settings, work)


async def demo(settings: Settings, _: Any) -> None:
    from inbox.app import bootstrap_info
    from inbox.services.channels import ensure_channel
    from inbox.services.demo import create_demo

    async def work() -> None:
        channel = await ensure_channel(bootstrap_info(settings))
        logins = await create_demo(channel)
        print("Demo data is ready. Sign in at /login with:")
        for login in logins:
            print(f"  {login.role:<10} {login.email:<22} password: {login.password}")
        if not logins:
            print("  (the demo staff already existed; their passwords were printed when they were created)")

    await _with_db(settings, work)


def _read_files(names: list[str]) -> list[Any]:
    """The named files' bytes, read before any database work (small next to the import itself)."""
    from pathlib import Path

    from inbox.services.import_files import CsvFile

    files: list[CsvFile] = []
    for name in names:
        try:
            files.append(CsvFile(name, Path(name).read_bytes()))
        except OSError as exc:
            sys.exit(f"{name}: cannot be read ({exc.strerror}). Nothing was imported.")
    return files


async def import_files(settings: Settings, args: Any) -> None:
    """Prints `KIND: created N, updated N, unchanged N` per kind; every problem as `FILE line N: …` and exit
    status 1 (nothing changed) when any row is wrong."""
    from inbox.events import Bus
    from inbox.services.importing import ImportFailed, importing_staff, run_import

    files = _read_files(args.files)

    from inbox.app import bootstrap_info, ensure_organisation
    from inbox.services import event_log
    from inbox.services.channels import ensure_channel

    async def work() -> None:
        await ensure_organisation()
        await ensure_channel(bootstrap_info(settings))  # events' reminders are texts: they need a sending number
        staff = await importing_staff(args.staff)
        # Open pages hear of consent and event changes; API streams can resume past them (the event log).
        bus = Bus(settings.broadcast_url, journal=event_log.record, journal_all=event_log.record_all)
        await bus.connect()
        try:
            report = await run_import(bus, files, dry_run=args.dry_run, staff=staff)
        except ImportFailed as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            sys.exit(f"{exc.message}")
        finally:
            await bus.disconnect()
        for notice in report.notices:
            print(notice)
        for line in report.lines():
            print(line)
        if report.dry_run:
            print("Dry run: nothing was written.")

    await _with_db(settings, work)


async def rotate_secrets(settings: Settings, _: Any) -> None:
    from inbox.crypto import SecretBox
    from inbox.services.secret_rotation import reencrypt_channel_tokens, reencrypt_webhook_secrets

    async def work() -> None:
        box = SecretBox(settings.secret_key, settings.secret_key_old)
        result = await reencrypt_channel_tokens(box)
        print(f"Re-encrypted {result.rotated} stored auth token(s) with the current INBOX_SECRET_KEY.")
        hooks = await reencrypt_webhook_secrets(box)
        print(f"Re-encrypted {hooks.rotated} webhook signing secret(s).")
        if hooks.unreadable:
            print(
                "warning: no key decrypts the signing secret of these webhook endpoints (delete and register them "
                f"again under Admin → Webhooks): {', '.join(hooks.unreadable)}",
                file=sys.stderr,
            )
        if result.unreadable:
            names = ", ".join(result.unreadable)
            sys.exit(
                f"error: no key in INBOX_SECRET_KEY or INBOX_SECRET_KEY_OLD decrypts the auth token of: {names}. "
                "Add the key it was saved with to INBOX_SECRET_KEY_OLD, or enter the token again under "
                "Admin → Sending numbers."
            )
        print("Once every process runs with the new key, INBOX_SECRET_KEY_OLD can be emptied.")

    await _with_db(settings, work)


def lower_priority(nice: int) -> None:
    """This process's CPU priority lowered by `nice` (0: unchanged). Measured (bench/ingest.py, web and worker on one
    2-core machine, PostgreSQL): acknowledged 0.30× → ~0.5× a bare endpoint but processed while loaded fell to 0.01×."""
    if nice > 0:
        os.nice(nice)


async def worker(settings: Settings, _: Any) -> None:
    """The outbox alone, for deployments that run web and worker processes apart (Procfile). Any number
    may run beside each other and beside `inbox serve`. SIGTERM (or Ctrl-C) stops it gracefully: no
    new claims, the calls in flight finish, the rest is handed back."""
    import signal

    from inbox.app import bootstrap_info, build_outbox, build_registry, build_webhook_sender, ensure_organisation
    from inbox.bus_transports import is_network_bus
    from inbox.events import Bus
    from inbox.services import event_log, settings_cache
    from inbox.services.channels import ensure_channel
    from inbox.services.ingest import WORKER_POLL_SECONDS, Ingest
    from inbox.worker import OutboxWorker, stop_gracefully

    async def work() -> None:
        # Not on SQLite: there a worker holds the one writer through each unit of work, and what the web writes
        # (a quiet text, the spool's moves, pages' writes) waits for it — a worker held back by the CPU held them
        # back too (p99 58 → 567 ms in bench/ingest.py, before the spool).
        if not settings.is_sqlite:
            lower_priority(settings.worker_nice)
        await ensure_organisation()
        registry = build_registry(settings)  # each channel's own provider, as in the web process
        channel = await ensure_channel(bootstrap_info(settings))
        bus = Bus(settings.broadcast_url, journal=event_log.record, journal_all=event_log.record_all)
        await bus.connect()
        outbox = build_outbox(settings, bus, registry, channel, role="worker")
        webhooks = build_webhook_sender(settings, outbox.worker_id, bus)
        runner = OutboxWorker(
            outbox, lanes=settings.worker_concurrency, heartbeat=settings.heartbeat_seconds, webhooks=webhooks
        )
        task = asyncio.create_task(runner.run(), name="outbox-worker")
        # Inbound texts the web processes stored and left (a burst): processed here when the events this
        # sends reach their tabs, i.e. on a network bus; with memory:// the web process processes its own.
        ingest = (
            Ingest(outbox, processes=True, poll=WORKER_POLL_SECONDS) if is_network_bus(settings.broadcast_url) else None
        )
        following = asyncio.create_task(settings_cache.follow(bus), name="settings-cache")
        if ingest is not None:
            await ingest.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"Outbox worker {outbox.worker_id} running; Ctrl-C or SIGTERM stops it.", flush=True)
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                # Said before anything else runs: no lane claims again once this line is out.
                print("Stopping: no new claims; the calls in flight finish first.", flush=True)
            await stop_gracefully(runner, task)
            print(f"Outbox worker stopped after handing over {runner.handed_over} texts.", flush=True)
        finally:
            if ingest is not None:
                await ingest.stop()
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            await bus.disconnect()
            await registry.close()
            await outbox.pacer.close()
            await webhooks.close()

    await _with_db(settings, work)
