"""The `inbox` command run for real, as `python -m inbox …`, in a directory of its own with its own
SQLite database and none of the caller's Inbox or Twilio settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .paths import REPO

COMMAND_TIMEOUT_SECONDS = 120
DATABASE_FILE = "x.sqlite3"


def cli_env(workdir: Path) -> dict[str, str]:
    """The caller's environment without any Inbox or Twilio settings, pointed at `workdir`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("INBOX_", "TWILIO_"))}
    env.update(
        INBOX_DATABASE_URL=f"sqlite://{workdir / DATABASE_FILE}",
        INBOX_DATA_DIR=str(workdir / "data"),
        INBOX_MEDIA_DIR=str(workdir / "media"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_inbox(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`inbox ARGS…` run in `workdir`, with `env` added to its settings; what it printed and its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "inbox", *args],
        cwd=workdir,
        env={**cli_env(workdir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )


def empty_directory(path: Path) -> Path:
    path.mkdir()
    return path


def migrated_sqlite(directory: Path) -> Path:
    """`inbox migrate` run in `directory`; the SQLite database it made (checkpointed: one file holds it all)."""
    completed = run_inbox(directory, "migrate")
    assert completed.returncode == 0, completed.stderr
    database = directory / DATABASE_FILE
    assert database.exists() and not (directory / f"{DATABASE_FILE}-wal").exists(), list(directory.iterdir())
    return database
