"""Settings read once from the environment, with defaults that work on a laptop."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path


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

    @property
    def uses_simulator(self) -> bool:
        return not (self.twilio_account_sid and self.twilio_auth_token)

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("INBOX_DATA_DIR", "data"))
    token = env.get("TWILIO_AUTH_TOKEN")
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
    )


def kept_secret_key(data_dir: Path) -> str:
    """The secret generated on first run, so sessions survive a restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
