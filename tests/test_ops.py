"""Operations: /healthz, /readyz (database, bus, a worker's heartbeat), /metrics (Prometheus, behind a token
when one is set) and JSON logs. Metrics are read the way Prometheus reads them (its text format, parsed by
prometheus-client's own parser); counters are compared before and after, as other tests move them too."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from tortoise import Tortoise

from inbox import clock
from inbox.logs import AccessWithoutQuery, JsonFormatter
from inbox.models import Message, MessageStatus
from inbox.services import spool
from inbox.services.ingest import store_payloads
from inbox.services.messaging import SendRequest, send_text
from inbox.services.spool import Spool
from inbox.settings import Secret, SettingError, Settings, load_settings
from tests.support.apps import asgi_client, running
from tests.support.cli import cli_env
from tests.support.database import connection_broken
from tests.support.fake_twilio import FakeTwilio
from tests.support.live import event_stream, shows_bubble, signed_in_browser
from tests.support.outbox import out_of_the_outbox, until
from tests.support.records import MARIA
from tests.support.servers import free_port
from tests.support.webhooks import inbound_params, post_text, text_in
from tests.support.workers import start_worker, worker_env, workers_cleaned_up
from tests.support.workers import until as until_within

Labels = tuple[tuple[str, str], ...]
OTHER_CLIENT = "+14045550123"
REFUSED_CLIENT = "+14045550124"
STARTUP_SECONDS = 90.0  # importing, migrating a fresh SQLite file and serving, on a busy 2-core machine


async def scrape(http: httpx.AsyncClient, **headers: str) -> dict[tuple[str, Labels], float]:
    """Every sample /metrics shows, by name and labels."""
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ---------------------------------------------------------------- /healthz and /readyz


async def test_healthz_answers_without_the_database(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    await sweeper_done()
    async with connection_broken():
        broken = await anonymous.get("/healthz", headers={"Cookie": "inbox_session=an-old-sign-in"})
    assert broken.status_code == 200 and broken.json() == {"status": "ok"}
    assert broken.headers["cache-control"] == "no-store"


async def test_ready_with_a_worker_and_not_once_its_heartbeat_is_stale(settings: Settings, fake_twilio) -> None:
    async with running(settings.with_changes(run_worker=True), fake_twilio) as app, asgi_client(app) as http:
        await until(lambda: is_ready(http), "the worker's first heartbeat")
        ready = await http.get("/readyz")
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok", "worker": "ok"}}
        # Three intervals and a second later with no beat in between (the clock moves; the worker does not).
        app.state.clock = lambda: clock.now() + timedelta(seconds=3 * settings.heartbeat_seconds + 1)
        stale = await http.get("/readyz")
        assert stale.status_code == 503
        body = stale.json()
        assert body["failing"] == ["worker"] and "worker" in body["error"]
        assert "no outbox worker heartbeat since" in body["checks"]["worker"]
        # A load balancer in front of web processes may ask only what they need to take webhooks.
        assert (await http.get("/readyz?checks=database,bus")).status_code == 200


async def sweeper_done() -> None:
    """The app's session sweeper runs one transaction as it starts: wait it out before the connection is broken.
    (On SQLite a transaction that begins on a closed connection keeps Tortoise's connection lock for good,
    and every later query, the test's cleanup included, would wait for it.) Its lock is first come, first
    served, so a query of ours that gets through comes after the sweeper's round."""
    await Tortoise.get_connection("default").execute_query("SELECT 1")


async def is_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_not_ready_without_any_worker(anonymous: httpx.AsyncClient) -> None:
    # The test app runs no worker of its own (run_worker=False), and none runs elsewhere.
    response = await anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
    assert response.json()["checks"]["database"] == "ok" and response.json()["checks"]["bus"] == "ok"


async def test_not_ready_naming_the_database_when_it_does_not_answer(anonymous: httpx.AsyncClient) -> None:
    await sweeper_done()
    async with connection_broken():
        response = await anonymous.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"][0] == "database" and "database" in body["error"]
    assert "bus" not in body["failing"]
    assert (await anonymous.get("/readyz?checks=database")).status_code == 200  # back once it answers


async def test_an_unknown_check_is_named(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/readyz?checks=database,disk")
    assert response.status_code == 422 and "disk" in response.json()["error"]


async def test_a_separate_worker_process_makes_it_ready_and_its_clean_stop_does_not(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings, fake_twilio: FakeTwilio, workdir: Path
) -> None:
    assert (await anonymous.get("/readyz")).status_code == 503
    async with workers_cleaned_up() as started:
        worker = await start_worker(workdir, worker_env(settings, fake_twilio.base_url))
        started.append(worker)
        await until_within(lambda: is_ready(anonymous), STARTUP_SECONDS, "the worker's heartbeat", worker)
        worker.terminate()
        assert await worker.exit_code() == 0, worker.describe()
    # A worker that stops cleanly takes its heartbeat with it: not ready at once, not three beats later.
    response = await anonymous.get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["worker"]


# ---------------------------------------------------------------- /metrics


async def test_webhooks_are_counted_by_kind_and_outcome(anonymous: httpx.AsyncClient, make_case) -> None:
    await make_case(phone=MARIA)
    before = await scrape(anonymous)
    assert (await post_text(anonymous)).status_code == 200
    forged = await anonymous.post(
        "/webhooks/twilio/messages",
        data=inbound_params("SM" + "f" * 32, MARIA, "hi"),
        headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    )
    assert forged.status_code == 403
    after = await scrape(anonymous)
    for outcome in ("accepted", "forbidden"):
        counted = value(after, "inbox_webhooks_total", kind="message", outcome=outcome)
        assert counted == value(before, "inbox_webhooks_total", kind="message", outcome=outcome) + 1, outcome


async def test_texts_sent_failed_and_retried_through_twilio_are_counted(
    anonymous: httpx.AsyncClient, supervisor: httpx.AsyncClient, make_case, fake_twilio: FakeTwilio
) -> None:
    sent_case = await make_case(phone=MARIA)
    retried_case = await make_case(phone=OTHER_CLIENT, name="Ana Ruiz")
    refused_case = await make_case(phone=REFUSED_CLIENT, name="Jo Smith")
    fake_twilio.reject[REFUSED_CLIENT] = 21610
    before = await scrape(anonymous)
    sent = await send_over_api(supervisor, sent_case.case_id)
    refused = await send_over_api(supervisor, refused_case.case_id)
    await out_of_the_outbox(sent, refused)
    fake_twilio.fail_next(503)
    retried = await send_over_api(supervisor, retried_case.case_id)
    await until(lambda: has_attempts(retried), "the first attempt of the retried text")
    after = await scrape(anonymous)

    assert (await Message.get(id=refused)).status == MessageStatus.FAILED
    for name in ("inbox_texts_sent_total", "inbox_texts_failed_total", "inbox_texts_retried_total"):
        assert value(after, name) == value(before, name) + 1, name
    calls = "inbox_provider_call_seconds_count"
    assert (
        value(after, calls, operation="send", outcome="ok") == value(before, calls, operation="send", outcome="ok") + 1
    )
    errors = value(after, calls, operation="send", outcome="error") - value(
        before, calls, operation="send", outcome="error"
    )
    assert errors == 2  # Twilio's refusal and its 503 both raised


async def send_over_api(api: httpx.AsyncClient, case_id: int) -> int:
    response = await api.post("/api/v1/messages", json={"case_id": case_id, "body": "Your hearing is Monday."})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def has_attempts(message_id: int) -> bool:
    message = await Message.get(id=message_id)
    return message.attempt_count > 0


async def test_outbox_backlog_and_its_oldest_age_are_read_at_scrape_time(
    app: Starlette, anonymous: httpx.AsyncClient, make_staff, make_case
) -> None:
    staff = await make_staff("supervisor")
    case = await make_case(phone=MARIA)
    empty = await scrape(anonymous)
    assert value(empty, "inbox_outbox_backlog") == 0 and value(empty, "inbox_outbox_oldest_age_seconds") == 0
    for body in ("First.", "Second."):  # stored as a send stores them; no worker runs in the test app
        await send_text(app.state.outbox, staff, SendRequest(body=body, case_id=case.case_id))
    app.state.clock = lambda: clock.now() + timedelta(minutes=5)
    waiting = await scrape(anonymous)
    assert value(waiting, "inbox_outbox_backlog") == 2
    assert 300 <= value(waiting, "inbox_outbox_oldest_age_seconds") < 400


async def test_open_streams_and_event_delivery_are_measured(server: str, twilio, make_staff, make_case) -> None:
    supervisor = await make_staff("supervisor")
    await make_case(phone=MARIA)
    delivered = "inbox_event_delivery_seconds_count"
    async with signed_in_browser(server, supervisor) as http:
        before = await scrape(http)
        async with event_stream(http, "/events") as tab:
            message = await text_in(twilio, MARIA, "Which courtroom?")
            assert shows_bubble(message)(await tab.next_event())

            async def measured() -> bool:
                now = await scrape(http)
                return value(now, delivered, type="message.received") > value(
                    before, delivered, type="message.received"
                )

            await until(measured, "the delivery of message.received to be measured")
            assert value(await scrape(http), "inbox_open_streams") == value(before, "inbox_open_streams") + 1


async def test_event_streams_tell_nginx_not_to_buffer_them(server: str, make_staff) -> None:
    supervisor = await make_staff("supervisor")
    async with signed_in_browser(server, supervisor) as http:
        async with http.stream("GET", "/events", headers={"Accept": "text/event-stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"
        assert "x-accel-buffering" not in (await http.get("/")).headers


async def test_metrics_need_the_token_when_one_is_set(settings: Settings, fake_twilio: FakeTwilio) -> None:
    token = "metrics-token-for-the-test"
    async with running(settings.with_changes(metrics_token=Secret(token)), fake_twilio) as app:
        async with asgi_client(app) as http:
            missing = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
            unicode = await http.get("/metrics", headers={"Authorization": "Bearer not-ascii-é".encode()})
            right = await scrape(http, Authorization=f"Bearer {token}")
    for refused in (missing, wrong, unicode):
        assert refused.status_code == 401 and "INBOX_METRICS_TOKEN" in refused.json()["error"]
        assert token not in refused.text
    assert ("inbox_outbox_backlog", ()) in right


def test_metrics_token_and_log_format_settings() -> None:
    settings = load_settings({"INBOX_METRICS_TOKEN": " s3cret ", "INBOX_LOG_FORMAT": "JSON", "INBOX_SECRET_KEY": "k"})
    assert settings.metrics_token == "s3cret" and "s3cret" not in repr(settings)
    assert settings.log_format == "json"
    assert load_settings({"INBOX_SECRET_KEY": "k"}).metrics_token is None
    with pytest.raises(SettingError, match="INBOX_LOG_FORMAT must be one of text, json"):
        load_settings({"INBOX_LOG_FORMAT": "xml", "INBOX_SECRET_KEY": "k"})


def test_the_worker_can_run_at_a_lower_cpu_priority_than_the_web() -> None:
    assert load_settings({"INBOX_SECRET_KEY": "k"}).worker_nice == 0
    assert load_settings({"INBOX_WORKER_NICE": "10", "INBOX_SECRET_KEY": "k"}).worker_nice == 10
    for wrong in ("-1", "20", "high"):
        with pytest.raises(SettingError, match="INBOX_WORKER_NICE must be a whole number from 0 to 19"):
            load_settings({"INBOX_WORKER_NICE": wrong, "INBOX_SECRET_KEY": "k"})
    # In a process of its own: a process's priority, once lowered, stays lowered.
    code = "import os; from inbox.cli import lower_priority as lower; n = os.nice(0); lower(3); print(os.nice(0) - n)"
    lowered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert lowered.stdout.strip() == "3"


# ---------------------------------------------------------------- JSON logs


def test_json_lines_carry_the_extras_and_the_access_log_loses_its_query() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("inbox.test", logging.WARNING, __file__, 1, "Sent %d texts", (3,), None)
    record.message_id = 42
    line = json.loads(formatter.format(record))
    assert line["level"] == "WARNING" and line["logger"] == "inbox.test" and line["message"] == "Sent 3 texts"
    assert line["message_id"] == 42 and line["time"].endswith("+00:00")
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/media/public/1?expires=1&signature=abc", "1.1", 200),
        None,
    )
    assert AccessWithoutQuery().filter(access)
    assert access.getMessage() == '127.0.0.1:5000 - "GET /media/public/1 HTTP/1.1" 200'


async def test_inbox_serve_writes_json_lines_and_no_query_strings(workdir: Path) -> None:
    port = free_port()
    log = workdir / "serve.log"
    async with served(workdir, port, log, INBOX_LOG_FORMAT="json") as http:
        assert (await http.get("/healthz")).status_code == 200
        refused = await http.get("/media/public/1?expires=1&signature=SECRET-SIGNATURE")
        assert refused.status_code in (403, 404)
    lines = [line for line in contents(log).splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert {"path": "/media/public/1", "method": "GET"}.items() <= access[-1].items()
    assert any(entry["logger"] == "uvicorn.error" for entry in entries)
    assert "SECRET-SIGNATURE" not in contents(log)


@asynccontextmanager
async def served(workdir: Path, port: int, log: Path, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """`inbox serve` for real on `port`, its stderr in `log`; stopped with SIGTERM at the end."""
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inbox",
            "serve",
            "--port",
            str(port),
            cwd=workdir,
            env={**cli_env(workdir), **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(STARTUP_SECONDS):
                while not await answers(http):
                    assert process.returncode is None, contents(log)
                    await asyncio.sleep(0.2)
            yield http
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.wait()


async def answers(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


def contents(path: Path) -> str:
    return path.read_text(errors="replace")


# ---------------------------------------------------------------- several processes


RECORD = """
import os, sys
from inbox import metrics
metrics.text_attempt("accepted")
metrics.open_streams(int(sys.argv[1]))
if sys.argv[2] == "exits":
    metrics.process_exited()
"""
RENDER = "from inbox import metrics; print(metrics.render()[0].decode())"


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """uvicorn --workers: each process writes its values under PROMETHEUS_MULTIPROC_DIR; /metrics in any one
    of them shows the sum, and a process that stopped no longer counts its open streams."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**cli_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(shared)}

    def python(code: str, *args: str) -> str:
        done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    python(RECORD, "3", "stays")
    python(RECORD, "2", "stays")
    python(RECORD, "7", "exits")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(python(RENDER))
        for sample in family.samples
    }
    assert samples[("inbox_texts_sent_total", ())] == 3
    assert samples[("inbox_open_streams", ())] == 5


async def test_texts_answered_and_not_yet_processed_are_measured_at_scrape_time(
    app: Starlette, anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    empty = await scrape(anonymous)
    assert value(empty, "inbox_inbound_backlog") == 0 and value(empty, "inbox_inbound_oldest_age_seconds") == 0
    # What a worker that stopped leaves: stored five minutes ago and never processed (nothing tells this app's own
    # processor about rows stored behind its back, and it looks again only after a minute).
    received = clock.now() - timedelta(minutes=5)
    forms = [(inbound_params(f"SM{n:032d}", MARIA, f"Waiting {n}"), None) for n in range(2)]
    await store_payloads(forms, received)
    expected = 2
    database_file = spool.database_file()
    if database_file is not None:  # SQLite: one more answered and still in the spool
        spooling = Spool(spool.spool_path(database_file))
        await spooling.append([spool.spooled(inbound_params("SM" + "9" * 32, MARIA, "Spooled"), None, MARIA)], received)
        await spooling.close()
        expected = 3
    waiting = await scrape(anonymous)
    assert value(waiting, "inbox_inbound_backlog") == expected
    assert 300 <= value(waiting, "inbox_inbound_oldest_age_seconds") < 400
