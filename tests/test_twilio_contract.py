"""Contract test: the app's outbound Messages request, as twilio-python sends it through TwilioProvider,
is accepted by Stoplight Prism validating against Twilio's published OpenAPI spec.

Needs `npm ci --prefix tests/contract` first (Prism is pinned in tests/contract/package.json).

Prism runs with `--errors`, so a request that breaks the spec (a missing `To`, a malformed
MessagingServiceSid, an unparseable StatusCallback, no basic auth) is answered with an error instead
of a mocked message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inbox.sms.base import OutboundText, ProviderRejected
from inbox.sms.twilio import TwilioProvider
from tests.support.paths import REPO
from tests.support.servers import free_port

SPEC = REPO / "tests" / "contract" / "twilio-oai" / "twilio_api_v2010.json"
CONTRACT_DIR = REPO / "tests" / "contract"
PRISM = CONTRACT_DIR / "node_modules" / ".bin" / "prism"
INSTALL_HINT = "run `npm ci --prefix tests/contract` to install the pinned Stoplight Prism"
STARTUP_TIMEOUT_SECONDS = 90.0  # parsing the 1.8 MB spec takes a while on a slow machine

MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
ACCOUNT_SID = "AC" + "c3" * 16
AUTH_TOKEN = "contract-test-token"
FROM_NUMBER = "+15557654321"
SERVICE_SID = "MG" + "d4" * 16
CLIENT_NUMBER = "+15551234567"
STATUS_CALLBACK = "https://inbox.example.org/webhooks/twilio/status?message=42"
MEDIA_URLS = ("https://inbox.example.org/media/1/notice.pdf", "https://inbox.example.org/media/2/map.png")
MESSAGE_STATUSES = {"queued", "accepted", "sending", "sent", "delivered", "scheduled"}


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PRISM.exists():
        pytest.fail(f"Stoplight Prism is not installed ({PRISM} is missing): {INSTALL_HINT}")
    if shutil.which("node") is None:
        pytest.fail(f"node is not on PATH; Prism needs it: install Node.js, then {INSTALL_HINT}")
    if not SPEC.exists():
        pytest.fail(f"Twilio's spec is missing at {SPEC}")
    workdir = tmp_path_factory.mktemp("prism")
    spec = spec_with_explicit_form_encoding(workdir / "twilio_api_v2010.json")
    port = free_port()
    log_path = workdir / "prism.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(PRISM), "mock", str(spec), "--errors", "--host", "127.0.0.1", "--port", str(port)],
            cwd=CONTRACT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so teardown ends Prism and only Prism
        )
    try:
        wait_until_listening(process, port, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def spec_with_explicit_form_encoding(destination: Path) -> Path:
    """Twilio's spec with the OpenAPI default encoding of array form fields spelled out.

    Prism 5.14 deserialises an array in an x-www-form-urlencoded body only when the media type
    declares `encoding` for it; Twilio's spec relies on the OpenAPI default (style form, explode
    true: `MediaUrl=a&MediaUrl=b`), so Prism would refuse every MediaUrl with "must be array".
    Stating the default changes nothing in the contract. (Prism also keeps only the last of
    repeated keys, so with several MediaUrl only the last is validated.)
    """
    document: dict[str, Any] = json.loads(SPEC.read_text())
    content = document["paths"][MESSAGES_PATH]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    properties = content["schema"]["properties"]
    content["encoding"] = {
        name: {"style": "form", "explode": True} for name, schema in properties.items() if schema.get("type") == "array"
    }
    destination.write_text(json.dumps(document))
    return destination


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Prism exited with {process.returncode} before listening:\n{log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"Prism did not listen within {STARTUP_TIMEOUT_SECONDS:.0f} s:\n{log_tail(log_path)}")


def log_tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
async def provider(prism_url: str) -> AsyncIterator[TwilioProvider]:
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=prism_url)
    yield provider
    await provider.close()


async def test_a_send_from_a_number_matches_the_spec(provider: TwilioProvider) -> None:
    result = await provider.send(
        OutboundText(
            to=CLIENT_NUMBER,
            body="Your hearing is Monday at 9. Reply STOP to opt out.",
            status_callback=STATUS_CALLBACK,
        )
    )

    assert result.provider_sid.startswith(("SM", "MM")) and len(result.provider_sid) == 34
    assert result.status in MESSAGE_STATUSES


async def test_a_messaging_service_send_with_media_matches_the_spec(provider: TwilioProvider) -> None:
    result = await provider.send(
        OutboundText(
            to=CLIENT_NUMBER,
            body="Your notice and a map",
            messaging_service_sid=SERVICE_SID,
            media_urls=MEDIA_URLS,
            status_callback=STATUS_CALLBACK,
        )
    )

    assert result.provider_sid.startswith(("SM", "MM")) and len(result.provider_sid) == 34
    assert result.status in MESSAGE_STATUSES


async def test_prism_refuses_a_request_without_to(prism_url: str) -> None:
    """Proves validation is on: otherwise the tests above would pass whatever we sent."""
    url = prism_url + MESSAGES_PATH.replace("{AccountSid}", ACCOUNT_SID)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data={"From": FROM_NUMBER, "Body": "hi"}, auth=(ACCOUNT_SID, AUTH_TOKEN))

    assert response.status_code == 422
    assert "To" in response.text


async def test_prism_refuses_a_request_without_credentials(prism_url: str) -> None:
    url = prism_url + MESSAGES_PATH.replace("{AccountSid}", ACCOUNT_SID)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data={"To": CLIENT_NUMBER, "From": FROM_NUMBER, "Body": "hi"})

    assert response.status_code == 401


async def test_a_request_prism_refuses_reaches_the_app_as_a_rejection(provider: TwilioProvider) -> None:
    with pytest.raises(ProviderRejected) as refused:
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi", messaging_service_sid="MG-not-a-sid"))

    assert refused.value.code == 422
