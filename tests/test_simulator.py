"""The built-in simulator against a tiny webhook target that checks signatures the way the app does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from inbox.phones import is_phone_number, normalise
from inbox.sms.base import (
    MediaTooLarge,
    OutboundText,
    ProviderRejected,
    ProviderUnavailable,
    parse_inbound,
    parse_status,
)
from inbox.sms.simulator import SIMULATOR_ACCOUNT_SID, SimulatorProvider
from tests.support.config import PUBLIC_URL

AUTH_TOKEN = "simulator-token"
# Where the webhook client really sends requests: not the public URL, as when the app listens on
# loopback behind a proxy. Signatures must still be over the public URL.
INTERNAL_URL = "http://app.internal:8000"
STATUS_CALLBACK = f"{PUBLIC_URL}/webhooks/twilio/status?message=7"
CLIENT_NUMBER = "+15551234567"
STEP = 0.01
PNG = b"\x89PNG\r\n\x1a\n" + b"\1" * 100


@dataclass(frozen=True)
class Received:
    path: str
    params: dict[str, str]
    signed: bool


class WebhookTarget:
    """Records what arrives, validating X-Twilio-Signature against PUBLIC_URL + path + query."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.app = Starlette(
            routes=[
                Route("/webhooks/twilio/status", self.record, methods=["POST"]),
                Route("/webhooks/twilio/messages", self.record, methods=["POST"]),
                Route("/media/photo", lambda request: RedirectResponse("/media/stored/photo.png", status_code=307)),
                Route("/media/stored/photo.png", lambda request: Response(PNG, media_type="image/png")),
                Route("/media/huge", lambda request: Response(b"\0" * (5 * 1024 * 1024 + 1), media_type="image/png")),
            ]
        )

    async def record(self, request: Request) -> Response:
        form = await request.form()
        params = {key: str(value) for key, value in form.items()}
        url = PUBLIC_URL + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signed = RequestValidator(AUTH_TOKEN).validate(url, params, request.headers.get("X-Twilio-Signature", ""))
        self.received.append(Received(request.url.path, params, signed))
        if not signed:
            return Response(status_code=403)
        if request.url.path.endswith("/messages"):
            return Response("<Response/>", media_type="text/xml")
        return Response(status_code=200)

    def statuses(self) -> list[tuple[str, str | None]]:
        return [
            (update.status, str(update.error_code) if update.error_code else None)
            for update in (parse_status(item.params) for item in self.received if item.path.endswith("/status"))
        ]


@pytest.fixture
def target() -> WebhookTarget:
    return WebhookTarget()


@pytest.fixture
async def simulator(target: WebhookTarget) -> AsyncIterator[SimulatorProvider]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app), base_url=INTERNAL_URL) as client:
        simulator = SimulatorProvider(AUTH_TOKEN, PUBLIC_URL, client, step_delay=STEP)
        yield simulator
        await simulator.close()


async def test_info_says_it_is_the_simulator(simulator: SimulatorProvider) -> None:
    assert simulator.info.is_simulator
    assert simulator.info.account_sid == SIMULATOR_ACCOUNT_SID
    assert len(SIMULATOR_ACCOUNT_SID) == 34 and SIMULATOR_ACCOUNT_SID.startswith("AC")
    assert AUTH_TOKEN not in repr(simulator)


async def test_send_answers_queued_then_signed_callbacks_sent_and_delivered(
    simulator: SimulatorProvider, target: WebhookTarget
) -> None:
    result = await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi", status_callback=STATUS_CALLBACK))

    assert result.status == "queued"
    assert result.provider_sid.startswith("SM") and len(result.provider_sid) == 34
    assert target.received == []  # the story arrives later, like Twilio's
    await simulator.wait_idle()

    assert target.statuses() == [("sent", None), ("delivered", None)]
    for item in target.received:
        assert item.signed
        assert item.path == "/webhooks/twilio/status"
        assert item.params["MessageSid"] == result.provider_sid
        assert item.params["AccountSid"] == SIMULATOR_ACCOUNT_SID
        assert item.params["To"] == CLIENT_NUMBER
        assert item.params["From"] == simulator.info.from_number


async def test_callbacks_wait_step_delay_between_steps(target: WebhookTarget) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app), base_url=INTERNAL_URL) as client:
        simulator = SimulatorProvider(AUTH_TOKEN, PUBLIC_URL, client, step_delay=0.2)
        try:
            await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi", status_callback=STATUS_CALLBACK))
            await asyncio.sleep(0.3)
            assert target.statuses() == [("sent", None)]
            await simulator.wait_idle()
            assert target.statuses() == [("sent", None), ("delivered", None)]
        finally:
            await simulator.close()


async def test_a_number_ending_0003_is_unreachable(simulator: SimulatorProvider, target: WebhookTarget) -> None:
    await simulator.send(OutboundText(to="+15551230003", body="hi", status_callback=STATUS_CALLBACK))
    await simulator.wait_idle()

    assert target.statuses() == [("sent", None), ("undelivered", "30003")]
    assert all(item.signed for item in target.received)


async def test_a_number_ending_0006_is_a_landline(simulator: SimulatorProvider, target: WebhookTarget) -> None:
    await simulator.send(OutboundText(to="+15551230006", body="hi", status_callback=STATUS_CALLBACK))
    await simulator.wait_idle()

    assert target.statuses() == [("failed", "30006")]


@pytest.mark.parametrize(
    ("number", "code"),
    [("+15005550001", 21211), ("+15005550009", 21614), ("+15005550004", 21610)],
)
async def test_twilios_magic_numbers_are_refused_at_once(
    simulator: SimulatorProvider, target: WebhookTarget, number: str, code: int
) -> None:
    with pytest.raises(ProviderRejected) as refused:
        await simulator.send(OutboundText(to=number, body="hi", status_callback=STATUS_CALLBACK))
    await simulator.wait_idle()

    assert refused.value.code == code
    assert target.received == []


async def test_a_messaging_service_send_is_accepted(simulator: SimulatorProvider) -> None:
    result = await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi", messaging_service_sid="MG" + "1" * 32))

    assert result.status == "accepted"


# --- the retry demo numbers --------------------------------------------------------------------

BUSY_NUMBER = "+15005550429"
FAILING_NUMBER = "+15005550503"
SLOW_NUMBER = "+15005550408"


@pytest.mark.parametrize("number", [BUSY_NUMBER, FAILING_NUMBER, SLOW_NUMBER])
def test_the_retry_numbers_are_phone_numbers_to_the_app(number: str) -> None:
    assert is_phone_number(number)
    assert normalise(number) == number


async def test_the_busy_number_answers_429_twice_then_delivers(
    simulator: SimulatorProvider, target: WebhookTarget
) -> None:
    text = OutboundText(to=BUSY_NUMBER, body="Your hearing moved.", status_callback=STATUS_CALLBACK)

    refusals = []
    for _ in range(2):
        with pytest.raises(ProviderUnavailable) as busy:
            await simulator.send(text)
        refusals.append((busy.value.status, busy.value.code, busy.value.retry_after, busy.value.outcome_unknown))
    with pytest.raises(ProviderUnavailable):  # another text to the number has attempts of its own
        await simulator.send(OutboundText(to=BUSY_NUMBER, body="another text"))
    accepted = await simulator.send(text)
    await simulator.wait_idle()

    assert refusals == [(429, 20429, 3.0, False)] * 2
    assert accepted.status == "queued"
    assert target.statuses() == [("sent", None), ("delivered", None)]
    assert [(item.sid, item.body) for item in simulator.accepted] == [(accepted.provider_sid, text.body)]


async def test_the_failing_number_answers_503_once(simulator: SimulatorProvider, target: WebhookTarget) -> None:
    text = OutboundText(to=FAILING_NUMBER, body="hi", status_callback=STATUS_CALLBACK)

    with pytest.raises(ProviderUnavailable) as failed:
        await simulator.send(text)
    accepted = await simulator.send(text)
    await simulator.wait_idle()

    assert (failed.value.status, failed.value.retry_after, failed.value.outcome_unknown) == (503, None, False)
    assert accepted.provider_sid.startswith("SM")
    assert target.statuses() == [("sent", None), ("delivered", None)]


async def test_the_slow_number_takes_the_text_but_the_caller_hears_a_timeout(
    simulator: SimulatorProvider, target: WebhookTarget
) -> None:
    text = OutboundText(to=SLOW_NUMBER, body="Bring your ID.", status_callback=STATUS_CALLBACK)
    began = datetime.now(UTC)

    with pytest.raises(ProviderUnavailable) as slow:
        await simulator.send(text)
    found = await simulator.find_sent(text, began)
    await simulator.wait_idle()
    later = await simulator.send(text)

    assert slow.value.outcome_unknown is True
    assert found is not None and found.provider_sid == simulator.accepted[0].sid
    # Its delivery story played as usual, under the SID the caller never heard.
    assert target.statuses() == [("sent", None), ("delivered", None)]
    assert {item.params["MessageSid"] for item in target.received} == {found.provider_sid}
    assert later.provider_sid != found.provider_sid


async def test_find_sent_matches_recipient_body_sender_and_time(simulator: SimulatorProvider) -> None:
    began = datetime.now(UTC)
    first = await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert await simulator.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), began) == first
    assert await simulator.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi!"), began) is None
    assert await simulator.find_sent(OutboundText(to="+15559990000", body="hi"), began) is None
    assert (
        await simulator.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi", from_number="+15550001111"), began) is None
    )
    assert await simulator.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), began + timedelta(minutes=2)) is None


async def test_close_cancels_pending_callbacks(target: WebhookTarget) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app), base_url=INTERNAL_URL) as client:
        simulator = SimulatorProvider(AUTH_TOKEN, PUBLIC_URL, client, step_delay=30)
        await simulator.send(OutboundText(to=CLIENT_NUMBER, body="hi", status_callback=STATUS_CALLBACK))
        await simulator.close()
        await simulator.wait_idle()

    assert target.received == []


async def test_send_inbound_posts_a_signed_twilio_form(simulator: SimulatorProvider, target: WebhookTarget) -> None:
    response = await simulator.send_inbound(CLIENT_NUMBER, "+15005550006", "Which courtroom?")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    [item] = target.received
    assert item.path == "/webhooks/twilio/messages" and item.signed
    params = item.params
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
    assert params["MessageSid"].startswith("SM") and len(params["MessageSid"]) == 34
    assert params["AccountSid"] == SIMULATOR_ACCOUNT_SID
    assert (params["From"], params["To"], params["Body"]) == (CLIENT_NUMBER, "+15005550006", "Which courtroom?")
    assert (params["NumMedia"], params["NumSegments"]) == ("0", "1")
    assert (params["SmsStatus"], params["ApiVersion"]) == ("received", "2010-04-01")


async def test_send_inbound_with_media_and_extra_fields(simulator: SimulatorProvider, target: WebhookTarget) -> None:
    media = [(f"{PUBLIC_URL}/media/photo", "image/png"), (f"{PUBLIC_URL}/media/lease.pdf", "application/pdf")]

    await simulator.send_inbound(CLIENT_NUMBER, "+15005550006", "STOP", media=media, extra={"OptOutType": "STOP"})

    [item] = target.received
    assert item.signed
    inbound = parse_inbound(item.params)
    assert inbound.media == tuple(media)
    assert inbound.opt_out_type == "STOP"
    assert inbound.provider_sid.startswith("MM")  # Twilio's prefix for a message with media


async def test_an_inbound_with_a_wrong_signature_is_refused_by_the_target(target: WebhookTarget) -> None:
    """The target really checks: a simulator with another token is turned away."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app), base_url=INTERNAL_URL) as client:
        impostor = SimulatorProvider("another-token", PUBLIC_URL, client)
        response = await impostor.send_inbound(CLIENT_NUMBER, "+15005550006", "hi")
        await impostor.close()

    assert response.status_code == 403


async def test_validate_webhook_uses_the_simulators_token(simulator: SimulatorProvider) -> None:
    params = {"MessageSid": "SM" + "0" * 32, "Body": "hi"}
    url = f"{PUBLIC_URL}/webhooks/twilio/messages"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)

    assert simulator.validate_webhook(url, params, signature)
    assert not simulator.validate_webhook(url, {**params, "Body": "bye"}, signature)
    assert not simulator.validate_webhook(url, params, "")


async def test_fetch_media_goes_through_the_webhook_client(simulator: SimulatorProvider) -> None:
    media = await simulator.fetch_media(f"{PUBLIC_URL}/media/photo")

    assert media.content == PNG
    assert media.content_type == "image/png"


async def test_fetch_media_refuses_more_than_5_mb(simulator: SimulatorProvider) -> None:
    with pytest.raises(MediaTooLarge):
        await simulator.fetch_media(f"{PUBLIC_URL}/media/huge")


async def test_what_one_simulator_process_took_another_finds(target: WebhookTarget, tmp_path: Path) -> None:
    """A worker killed after the simulator took its text: the worker that recovers it, in another process
    with its own simulator, must find it as it would find it in Twilio's Messages list."""
    ledger = tmp_path / "data" / "simulator-sent.jsonl"
    text = OutboundText(to=CLIENT_NUMBER, body="Reminder: court on Monday.")
    began = datetime.now(UTC)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app), base_url=INTERNAL_URL) as client:
        killed = SimulatorProvider(AUTH_TOKEN, PUBLIC_URL, client, ledger=ledger)
        taken = await killed.send(text)
        await killed.close()
        with ledger.open("a") as cut_off:  # a half-written last line is skipped
            cut_off.write('{"sid": "SM-cut-off-by-a-kil')
        recovering = SimulatorProvider(AUTH_TOKEN, PUBLIC_URL, client, ledger=ledger)
        found = await recovering.find_sent(text, began)
        other_words = await recovering.find_sent(OutboundText(to=CLIENT_NUMBER, body="Something else"), began)
        await recovering.close()
    assert found is not None and found.provider_sid == taken.provider_sid
    assert other_words is None
