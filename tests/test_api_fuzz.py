"""Schemathesis against /api/v1/openapi.json: the app on a real uvicorn server with a real database seeded
with clients, cases, texts and alerts, called with a supervisor's token. Bounded (a few examples per operation,
a fixed seed), it must find no server error and no answer that breaks the document: a status it does not list,
a body or header that does not match, a 405 without the right `Allow`, invalid input accepted, a missing
token ignored. `/events` is an endless stream: documented, but not fuzzed."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from inbox.models import Alert, Message
from inbox.routes.api import OPERATIONS
from inbox.services.staff import create_api_token
from tests.support.records import MARIA
from tests.support.servers import serve_asgi
from tests.support.webhooks import inbound_params, signed_post_args

SEED = 20261121
EXAMPLES_PER_OPERATION = 10
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
]
RUN_SECONDS = 110  # the whole run stays under two minutes on a 2-core machine, or the test fails
JOHN, STRANGER = "+14045550142", "+14045550199"


async def seed_office(anonymous: httpx.AsyncClient, supervisor: httpx.AsyncClient, make_staff, make_case) -> None:
    """Two clients with cases and an advocate each, texts both ways, an alert, a scheduled text, a stranger."""
    for phone, name in ((MARIA, "Maria Lopez"), (JOHN, "John Smith")):
        case = await make_case(phone=phone, name=name, assignee=await make_staff("advocate"))
        sent = await supervisor.post("/api/v1/messages", json={"case_id": case.case_id, "body": "Hearing Monday at 9."})
        assert sent.status_code == 201, sent.text
        later = {"case_id": case.case_id, "body": "Reminder", "send_at": "2099-01-01T15:00:00Z"}
        assert (await supervisor.post("/api/v1/messages", json=later)).status_code == 201
    for number, sid in ((MARIA, "SM" + "1" * 32), (STRANGER, "SM" + "2" * 32)):
        params = inbound_params(sid, number, "Which courtroom?")
        assert (await anonymous.post(**signed_post_args("/webhooks/twilio/messages", params))).status_code == 200
    assert await Alert.exists() and await Message.filter(direction="inbound").count() == 2


def schemathesis_command(base_url: str, token: str, report: Path) -> list[str]:
    return [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--seed", str(SEED), "--max-examples", str(EXAMPLES_PER_OPERATION), "--workers", "1",
        "--exclude-path", "/events",
        "--checks", ",".join(CHECKS),
        "--generation-database", "none", "--no-shrink", "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report),
    ]  # fmt: skip


def tally(report: Path) -> tuple[Counter[int], Counter[str], set[str]]:
    """Statuses of every answer, failed checks by name, and the operations that were called."""
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    operations: set[str] = set()
    for line in report.read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder")
        if not recorder:
            continue
        for interaction in (recorder.get("interactions") or {}).values():
            if interaction.get("response"):
                statuses[interaction["response"]["status_code"]] += 1
                operations.add(recorder["label"])
        for checks in (recorder.get("checks") or {}).values():
            failures.update(check["name"] for check in checks if check["status"] == "failure")
    return statuses, failures, operations


async def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    app: Starlette, anonymous: httpx.AsyncClient, make_staff, make_case, api_client, tmp_path: Path, fake_twilio
) -> None:
    staff = await make_staff("supervisor")
    await seed_office(anonymous, await api_client(staff), make_staff, make_case)
    token = await create_api_token(staff.email)
    report = tmp_path / "schemathesis.ndjson"
    async with serve_asgi(app, lifespan="off") as base_url:
        process = await asyncio.create_subprocess_exec(
            *schemathesis_command(base_url, token, report),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        async with asyncio.timeout(RUN_SECONDS):
            output, _ = await process.communicate()
    text = output.decode(errors="replace")
    statuses, failures, operations = tally(report)
    requests = sum(statuses.values())
    print(f"schemathesis: {requests} requests, statuses {dict(sorted(statuses.items()))}, failures {dict(failures)}")
    assert process.returncode == 0, text[-6000:]
    assert not [status for status in statuses if status >= 500], text[-6000:]
    assert failures == Counter(), text[-6000:]
    # Every operation was called but the stream and the document itself, which schemathesis loads but never calls.
    fuzzed = {f"{o.method} {o.path}" for o in OPERATIONS if o.path not in ("/events", "/openapi.json")}
    assert fuzzed <= operations, fuzzed - operations
    assert requests > 500 and statuses[422] > 100 and statuses[200] > 100
