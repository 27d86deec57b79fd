"""Settings read once from the environment, with defaults that work on a laptop."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from limits import parse


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('**********')"


DEFAULT_DATABASE_URL = "sqlite://inbox.sqlite3"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broadcast_url: str = "memory://"
    public_url: str = DEFAULT_PUBLIC_URL
    secret_key: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    media_dir: Path = Path("media")
    data_dir: Path = Path("data")
    environment: str = "development"
    twilio_account_sid: str | None = None
    twilio_auth_token: Secret | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str | None = None
    # serve migrates a SQLite database on start; PostgreSQL is migrated by `inbox migrate`.
    migrate_on_start: bool = True
    # The outbox worker runs inside `inbox serve` unless a separate `inbox worker` is used.
    run_worker: bool = True
    # Earlier secret keys: stored provider tokens encrypted with them still decrypt until
    # `inbox rotate-secrets` re-encrypts them with secret_key.
    secret_key_old: tuple[Secret, ...] = ()
    # A signed-in session ends after this long without a request, and this long after sign-in at most.
    session_idle_hours: float = 12
    session_max_days: float = 7
    # Where failed sign-ins and API tokens are counted: memory:// (one process) or redis://… (shared; by
    # default the bus's Redis when INBOX_BROADCAST_URL is one).
    rate_limit_url: str = "memory://"
    # limits' notation ("10 per 15 minutes"): past it, further attempts answer 429 until the window frees.
    failed_sign_ins_per_account: str = "10 per 15 minutes"
    failed_sign_ins_per_address: str = "30 per 15 minutes"
    failed_tokens_per_address: str = "30 per 15 minutes"
    # The outbox (inbox.services.outbox): how long one call to Twilio may take before its outcome is
    # "unknown"; how long a worker's claim on a text lasts (a dead worker's texts are recovered after it);
    # how long a failing text is retried; when a text not yet accepted is shown as stuck; how many
    # segments a channel may send at once before its throughput paces it; parallel sends per worker.
    send_timeout_seconds: float = 20
    lease_seconds: float = 60
    retry_for_minutes: float = 30
    stuck_after_minutes: float = 15
    pacing_burst: int = 5
    # Where each sending number's pace is kept: the database, or redis://… (shared by every worker).
    pacing_url: str = "database"
    worker_concurrency: int = 4
    # How much lower `inbox worker` runs than the web on the CPU (nice), on PostgreSQL: on a machine both share,
    # Twilio hears back first during a burst, and the worker processes what was stored as the web leaves it time.
    # 0 by default: the worker also sends the outbox's texts, and a burst's texts would show in the inbox late.
    worker_nice: int = 0
    # Operations: every worker records a heartbeat this often (/readyz wants one within three of them);
    # a bearer token /metrics asks for when set; `json` writes logs as one JSON object per line.
    heartbeat_seconds: float = 10
    metrics_token: Secret | None = None
    log_format: str = "text"

    @property
    def uses_simulator(self) -> bool:
        return not (self.twilio_account_sid and self.twilio_auth_token)

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS: always in production (behind a TLS proxy the app itself may hear
        plain http), and wherever the public URL is https."""
        return self.production or self.public_url.startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("INBOX_DATA_DIR", "data"))
    token = env.get("TWILIO_AUTH_TOKEN")
    defaults = Settings
    return Settings(
        database_url=env.get("INBOX_DATABASE_URL", DEFAULT_DATABASE_URL),
        broadcast_url=env.get("INBOX_BROADCAST_URL", "memory://"),
        public_url=env.get("INBOX_PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/"),
        secret_key=Secret(env.get("INBOX_SECRET_KEY") or kept_secret_key(data_dir)),
        media_dir=Path(env.get("INBOX_MEDIA_DIR", "media")),
        data_dir=data_dir,
        environment=env.get("INBOX_ENV", "development"),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=Secret(token) if token else None,
        twilio_from_number=env.get("TWILIO_FROM_NUMBER") or None,
        twilio_messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
        twilio_api_url=(env.get("INBOX_TWILIO_API_URL") or "").rstrip("/") or None,
        secret_key_old=tuple(
            Secret(key.strip()) for key in env.get("INBOX_SECRET_KEY_OLD", "").split(",") if key.strip()
        ),
        session_idle_hours=_positive_number(env, "INBOX_SESSION_IDLE_HOURS", defaults.session_idle_hours),
        session_max_days=_positive_number(env, "INBOX_SESSION_MAX_DAYS", defaults.session_max_days),
        rate_limit_url=env.get("INBOX_RATE_LIMIT_URL") or _shared_redis(env.get("INBOX_BROADCAST_URL", "")),
        failed_sign_ins_per_account=_rate(
            env, "INBOX_FAILED_SIGN_INS_PER_ACCOUNT", Settings.failed_sign_ins_per_account
        ),
        failed_sign_ins_per_address=_rate(
            env, "INBOX_FAILED_SIGN_INS_PER_ADDRESS", Settings.failed_sign_ins_per_address
        ),
        failed_tokens_per_address=_rate(env, "INBOX_FAILED_TOKENS_PER_ADDRESS", Settings.failed_tokens_per_address),
        send_timeout_seconds=_positive_number(env, "INBOX_SEND_TIMEOUT_SECONDS", defaults.send_timeout_seconds),
        lease_seconds=_positive_number(env, "INBOX_OUTBOX_LEASE_SECONDS", defaults.lease_seconds),
        retry_for_minutes=_positive_number(env, "INBOX_RETRY_FOR_MINUTES", defaults.retry_for_minutes),
        stuck_after_minutes=_positive_number(env, "INBOX_STUCK_AFTER_MINUTES", defaults.stuck_after_minutes),
        pacing_burst=int(_positive_number(env, "INBOX_PACING_BURST", defaults.pacing_burst)),
        pacing_url=env.get("INBOX_PACING_URL") or "database",
        worker_concurrency=int(_positive_number(env, "INBOX_WORKER_CONCURRENCY", defaults.worker_concurrency)),
        worker_nice=_niceness(env, "INBOX_WORKER_NICE", defaults.worker_nice),
        heartbeat_seconds=_positive_number(env, "INBOX_HEARTBEAT_SECONDS", defaults.heartbeat_seconds),
        metrics_token=Secret(metrics_token) if (metrics_token := env.get("INBOX_METRICS_TOKEN", "").strip()) else None,
        log_format=_choice(env, "INBOX_LOG_FORMAT", LOG_FORMATS),
    )


def _shared_redis(broadcast_url: str) -> str:
    """Where failed sign-ins are counted when INBOX_RATE_LIMIT_URL is not set: the bus's Redis when the
    bus is one (every process counts in one place), else this process's memory."""
    return broadcast_url if broadcast_url.startswith(("redis://", "rediss://")) else "memory://"


def _listed(raw: str) -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [item.strip() for item in raw.split(",") if item.strip()]


class SettingError(ValueError):
    """An environment variable holds something the app cannot use; the message names it."""


def _positive_number(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if not value > 0:
        raise SettingError(f"{name} must be a positive number, like {default:g} (it is {raw!r}).")
    return value


LOG_FORMATS = ("text", "json")


def _niceness(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 19:
        raise SettingError(f"{name} must be a whole number from 0 to 19, like {default} (it is {raw!r}).")
    return int(raw)


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitive."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)} (it is {raw!r}).")
    return raw


def _rate(env: dict[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        parse(raw)
    except ValueError:
        raise SettingError(f"{name} must be a rate like {default!r} (it is {raw!r}).") from None
    return raw


def kept_secret_key(data_dir: Path) -> str:
    """The secret generated on first run, so stored auth tokens stay readable after a restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
