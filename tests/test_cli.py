"""The `inbox` command, run for real as `python -m inbox …` in a fresh directory with its own SQLite
database; what it wrote is then checked in-process against that database."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inbox import db
from inbox.app import create_app
from inbox.services.staff import authenticate, staff_for_token
from inbox.settings import Secret, Settings
from tests.support.cli import DATABASE_FILE, cli_env, run_inbox
from tests.support.servers import free_port

SERVE_STARTUP_SECONDS = 90  # a deadline, not a measure: migrating a fresh SQLite on a busy 2-core machine


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def tables_of(database: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return list(connection.execute(sql))


@contextlib.asynccontextmanager
async def connected(workdir: Path) -> AsyncIterator[None]:
    """This test's own database, opened in-process and closed again (no `app` fixture is active)."""
    await db.connect(f"sqlite://{workdir / DATABASE_FILE}")
    try:
        yield
    finally:
        await db.disconnect()


def test_migrate_creates_the_schema_and_is_safe_to_repeat(empty_workdir: Path) -> None:
    workdir = empty_workdir
    assert "up to date" in ok(run_inbox(workdir, "migrate")).lower()
    database = workdir / DATABASE_FILE
    assert {"staff", "client", "client_phone", "case", "assignment", "message", "api_token"} <= tables_of(database)
    ok(run_inbox(workdir, "migrate"))
    assert {"staff", "message"} <= tables_of(database)


async def test_create_user_makes_an_account_that_signs_in(workdir: Path) -> None:
    out = ok(
        run_inbox(
            workdir,
            "create-user",
            "--email",
            "Alice@Example.org",
            "--name",
            "Alice Advocate",
            "--role",
            "advocate",
            "--password",
            "long enough pw",
            "--mobile",
            "(404) 555-0100",
        )
    )
    assert "alice@example.org" in out and "long enough pw" not in out
    async with connected(workdir):
        staff = await authenticate("alice@example.org", "long enough pw")
        assert staff is not None and staff.role == "advocate" and staff.name == "Alice Advocate"
        assert staff.mobile == "+14045550100"
        assert await authenticate("alice@example.org", "wrong password") is None


async def test_create_user_without_a_password_prints_a_generated_one(workdir: Path) -> None:
    out = ok(run_inbox(workdir, "create-user", "--email", "sam@example.org", "--name", "Sam", "--role", "supervisor"))
    match = re.search(r"Password: (\S+)", out)
    assert match, out
    async with connected(workdir):
        staff = await authenticate("sam@example.org", match.group(1))
        assert staff is not None and staff.role == "supervisor"


def test_duplicate_email_fails_with_a_clear_message(workdir: Path) -> None:
    ok(
        run_inbox(
            workdir,
            "create-user",
            "--email",
            "ada@example.org",
            "--name",
            "Ada",
            "--role",
            "admin",
            "--password",
            "long enough pw",
        )
    )
    again = run_inbox(
        workdir,
        "create-user",
        "--email",
        "ADA@example.org",
        "--name",
        "Ada Again",
        "--role",
        "admin",
        "--password",
        "long enough pw",
    )
    assert again.returncode != 0
    assert "already an account for ada@example.org" in again.stderr
    assert "Traceback" not in again.stderr
    assert rows(workdir / DATABASE_FILE, "SELECT name FROM staff") == [("Ada",)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--password", "short"], "at least 8 characters"),
        (["--mobile", "not a phone"], "mobile"),
        (["--email", "no-at-sign"], "email"),
    ],
    ids=["short-password", "bad-mobile", "bad-email"],
)
def test_invalid_account_details_fail_naming_the_problem(workdir: Path, args: list[str], words: str) -> None:
    base = {"--email": "lee@example.org", "--name": "Lee", "--role": "advocate", "--password": "long enough pw"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = run_inbox(workdir, "create-user", *[item for pair in base.items() for item in pair])
    assert result.returncode != 0 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_role_is_an_argument_error(empty_workdir: Path) -> None:
    workdir = empty_workdir
    result = run_inbox(workdir, "create-user", "--email", "x@example.org", "--name", "X", "--role", "janitor")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "janitor" in result.stderr
    assert not (workdir / DATABASE_FILE).exists()  # refused before touching the database


def test_an_unknown_command_is_an_argument_error(workdir: Path) -> None:
    result = run_inbox(workdir, "frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


async def test_create_token_prints_a_token_that_works_against_the_api(workdir: Path) -> None:
    ok(
        run_inbox(
            workdir,
            "create-user",
            "--email",
            "sam@example.org",
            "--name",
            "Sam",
            "--role",
            "supervisor",
            "--password",
            "long enough pw",
        )
    )
    out = ok(run_inbox(workdir, "create-token", "--email", "sam@example.org"))
    token = out.strip().splitlines()[-1].strip()
    assert token and " " not in token
    stored = rows(workdir / DATABASE_FILE, "SELECT token_hash FROM api_token")
    assert len(stored) == 1 and token not in stored[0]  # only the digest is kept

    async with connected(workdir):
        staff = await staff_for_token(token)
        assert staff is not None and staff.email == "sam@example.org"

    # And the real app, on that same database, accepts it.
    settings = Settings(
        database_url=f"sqlite://{workdir / DATABASE_FILE}",
        secret_key=Secret("cli-test-secret-" + "y" * 32),
        data_dir=workdir / "data",
        media_dir=workdir / "media",
        migrate_on_start=False,
        run_worker=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as client:
            answer = await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and answer.json() == []
            refused = await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {token}x"})
            assert refused.status_code == 401


def test_create_token_for_an_unknown_email_fails_clearly(workdir: Path) -> None:
    result = run_inbox(workdir, "create-token", "--email", "nobody@example.org")
    assert result.returncode != 0 and "nobody@example.org" in result.stderr
    assert "Traceback" not in result.stderr


async def test_demo_prints_three_logins_that_sign_in(workdir: Path) -> None:
    out = ok(run_inbox(workdir, "demo"))
    logins = re.findall(r"^\s*(advocate|supervisor|admin)\s+(\S+@\S+)\s+password:\s*(\S+)\s*$", out, re.MULTILINE)
    assert sorted(role for role, _, _ in logins) == ["admin", "advocate", "supervisor"], out
    async with connected(workdir):
        for role, email, password in logins:
            staff = await authenticate(email, password)
            assert staff is not None and staff.role == role, email
    database = workdir / DATABASE_FILE
    assert rows(database, "SELECT count(*) FROM client")[0][0] > 0
    assert rows(database, 'SELECT count(*) FROM "case"')[0][0] > 0
    # Its scheduled texts wait in the outbox for their time (so the worker sends them, and a STOP cancels them):
    # the hand-scheduled reminder and the reminders of Maria's hearing tomorrow (the day-before one only while
    # its time is still ahead).
    to_clients = "status = 'scheduled' AND (purpose IS NULL OR purpose != 'staff_reminder')"
    scheduled = rows(database, f"SELECT outbox_state, next_attempt_at = send_at FROM message WHERE {to_clients}")
    assert len(scheduled) in (2, 3) and set(scheduled) == {("waiting", 1)}
    # Alice's own reminders (her tasks, the hearing she attends) wait for her profile mobile: at least each task's
    # at-due one and the hearing's hour-before one.
    to_alice = rows(database, "SELECT DISTINCT to_number FROM message WHERE purpose = 'staff_reminder'")
    assert to_alice == [("+14045550177",)]
    assert rows(database, "SELECT count(*) FROM message WHERE purpose = 'staff_reminder'")[0][0] >= 3
    assert rows(database, "SELECT count(*) FROM task")[0][0] == 2
    assert rows(database, "SELECT kind, title FROM case_event") == [("hearing", "Eviction hearing")]
    hearing_texts = "SELECT m.purpose FROM event_reminder r JOIN message m ON m.id = r.message_id"
    assert rows(database, hearing_texts) == [("event_reminder",)] * (len(scheduled) - 1)
    # A survey sent to every demo client (Lee Park left out: no consent), answered by two of them already.
    survey = "SELECT count(*), count(message_id), count(excluded), count(reply_id) FROM campaign_recipient"
    assert rows(database, survey) == [(6, 5, 1, 2)]
    assert rows(database, "SELECT answer FROM campaign_recipient WHERE reply_id IS NOT NULL ORDER BY id") == [
        ("1",),
        (None,),
    ]
    # Its alerts are as old as the texts that raised them, and it has quick entries to try (one in Spanish too).
    alert_ages = "SELECT a.created_at = m.created_at FROM alert a JOIN message m ON m.id = a.message_id"
    demo_texts = "m.provider_sid LIKE 'SMdemo%'"
    assert set(rows(database, f"{alert_ages} WHERE {demo_texts}")) == {(1,)}
    assert (
        rows(database, f"SELECT count(*) FROM alert a JOIN message m ON m.id = a.message_id WHERE {demo_texts}")[0][0]
        >= 3
    )
    entries = "SELECT name, language FROM quick_entry ORDER BY position"
    assert rows(database, entries) == [
        ("Hearing reminder", None),
        ("Hearing reminder", "es"),
        ("Documents needed", None),
        ("Call us", None),
    ]
    # Running it again keeps everyone's password and adds no duplicates.
    again = ok(run_inbox(workdir, "demo"))
    assert "already existed" in again
    assert rows(database, "SELECT count(*) FROM staff")[0][0] == 3
    assert rows(database, "SELECT count(*) FROM campaign_recipient")[0][0] == 6
    assert rows(database, "SELECT count(*) FROM quick_entry")[0][0] == 4


def test_serve_migrates_sqlite_and_answers_the_login_page(empty_workdir: Path) -> None:
    workdir = empty_workdir
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inbox", "serve", "--port", str(port)],
            cwd=workdir,
            env=cli_env(workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            page = wait_for_login_page(process, port, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert 'name="email"' in page and 'type="password"' in page
    database = workdir / DATABASE_FILE
    assert database.exists()
    assert {"staff", "message", "channel", "organisation"} <= tables_of(database)
    # No Twilio settings in the environment: the built-in simulator is the provider.
    assert rows(database, "SELECT is_simulator FROM channel") == [(1,)]
    assert "simulator" in log_path.read_text()


def wait_for_login_page(process: subprocess.Popen[bytes], port: int, log_path: Path) -> str:
    deadline = time.monotonic() + SERVE_STARTUP_SECONDS
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"`inbox serve` exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                response = client.get(f"http://127.0.0.1:{port}/login")
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return response.text
            time.sleep(0.2)
    pytest.fail(f"`inbox serve` did not answer GET /login within {SERVE_STARTUP_SECONDS} s:\n{log_path.read_text()}")


def test_serve_stops_on_sigterm_with_an_event_stream_open(workdir: Path) -> None:
    """uvicorn waits for open responses before it stops; an event stream never ends by itself, so the stop
    signal ends every stream (the client reconnects elsewhere) and the process exits."""
    ok(run_inbox(workdir, "migrate"))
    ok(run_inbox(workdir, "create-user", "--email", "i@example.org", "--name", "I", "--role", "supervisor"))
    token = ok(run_inbox(workdir, "create-token", "--email", "i@example.org")).strip().splitlines()[-1]
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inbox", "serve", "--port", str(port), "--no-worker"],
            cwd=workdir,
            env=cli_env(workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_login_page(process, port, log_path)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(trust_env=False, timeout=15) as client:
                with client.stream("GET", f"http://127.0.0.1:{port}/api/v1/events", headers=headers) as stream:
                    lines = stream.iter_lines()
                    assert next(lines) == "event: stream.open"
                    process.terminate()
                    assert list(lines)[-1:] in ([""], [])  # the server ended the stream (no read timeout)
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert process.wait(timeout=15) in (0, -15), log_path.read_text()
            assert "Application shutdown complete" in log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
