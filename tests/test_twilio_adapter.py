"""TwilioProvider with the real twilio library, over real HTTP, against tests/support/fake_twilio.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.sms.base import (
    MAX_MEDIA_BYTES,
    MediaFetchFailed,
    MediaTooLarge,
    OutboundText,
    ProviderRejected,
    ProviderUnavailable,
)
from inbox.sms.errors import ErrorExplanation, explain
from inbox.sms.twilio import TwilioProvider, read_capped_media
from tests.support.config import PUBLIC_URL
from tests.support.fake_twilio import FakeTwilio
from tests.support.servers import free_port

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "tok-" + "7e" * 14  # distinctive, so a leak is easy to spot
FROM_NUMBER = "+15557654321"
SERVICE_SID = "MG" + "b2" * 16
CLIENT_NUMBER = "+15551234567"
STATUS_CALLBACK = f"{PUBLIC_URL}/webhooks/twilio/status?message=42"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
async def provider(fake: FakeTwilio) -> AsyncIterator[TwilioProvider]:
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url)
    yield provider
    await provider.close()


# --- sending ---------------------------------------------------------------------------------


async def test_send_returns_the_sid_and_queued(provider: TwilioProvider, fake: FakeTwilio) -> None:
    result = await provider.send(
        OutboundText(to=CLIENT_NUMBER, body="Your hearing is Monday at 9.", status_callback=STATUS_CALLBACK)
    )

    assert result.status == "queued"
    assert result.provider_sid.startswith("SM") and len(result.provider_sid) == 34
    assert result.provider_sid == fake.messages[-1]["sid"]
    sent = fake.requests[-1]
    assert sent["To"] == CLIENT_NUMBER
    assert sent["From"] == FROM_NUMBER
    assert sent["Body"] == "Your hearing is Monday at 9."
    assert sent["StatusCallback"] == STATUS_CALLBACK
    assert "MessagingServiceSid" not in sent and "MediaUrl" not in sent


async def test_send_through_a_messaging_service_with_media(fake: FakeTwilio) -> None:
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid=SERVICE_SID, api_url=fake.base_url)
    media = ("https://inbox.example.org/media/1/notice.pdf", "https://inbox.example.org/media/2/map.png")
    try:
        result = await provider.send(OutboundText(to=CLIENT_NUMBER, body="Your notice", media_urls=media))
    finally:
        await provider.close()

    assert result.status == "accepted"
    sent = fake.requests[-1]
    assert sent["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in sent
    assert sent["MediaUrl"] == list(media)


async def test_twilio_edge_and_region_do_not_bend_the_local_api_url(
    fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url)
    try:
        result = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    finally:
        await provider.close()

    assert result.provider_sid == fake.messages[-1]["sid"]


async def test_the_texts_own_sender_wins_over_the_channels(provider: TwilioProvider, fake: FakeTwilio) -> None:
    await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi", messaging_service_sid=SERVICE_SID))

    assert fake.requests[-1]["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in fake.requests[-1]


@pytest.mark.parametrize("code", [21211, 21610, 21614])
async def test_a_refused_text_becomes_provider_rejected(provider: TwilioProvider, fake: FakeTwilio, code: int) -> None:
    fake.reject[CLIENT_NUMBER] = code

    with pytest.raises(ProviderRejected) as refused:
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert refused.value.code == code
    assert refused.value.message  # Twilio's own words, without the library's prefix
    assert not refused.value.message.startswith("Unable to")


async def test_a_server_error_becomes_provider_unavailable(provider: TwilioProvider, fake: FakeTwilio) -> None:
    fake.fail_next_with_status = 500

    with pytest.raises(ProviderUnavailable):
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    retried = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert retried.status == "queued"


async def test_wrong_credentials_are_a_rejection_not_an_outage(fake: FakeTwilio) -> None:
    provider = TwilioProvider(ACCOUNT_SID, "not-the-token", from_number=FROM_NUMBER, api_url=fake.base_url)
    try:
        with pytest.raises(ProviderRejected) as refused:
            await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    finally:
        await provider.close()

    assert refused.value.code == 20003


async def test_an_unreachable_twilio_becomes_provider_unavailable() -> None:
    provider = TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    finally:
        await provider.close()


async def test_the_fake_posts_signed_status_callbacks_the_provider_accepts() -> None:
    """The fake's callbacks are what the app's status webhook will see: signed over the public URL."""
    received: list[tuple[str, dict[str, str], str]] = []

    async def status(request: Request) -> Response:
        form = await request.form()
        received.append(
            (str(request.url), {key: str(value) for key, value in form.items()}, request.headers["X-Twilio-Signature"])
        )
        return Response(status_code=200)

    app = Starlette(routes=[Route("/webhooks/twilio/status", status, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as app_client:
        async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, callback_client=app_client) as fake:
            fake.outcomes[CLIENT_NUMBER] = [("sent", None), ("undelivered", 30003)]
            provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url)
            try:
                result = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi", status_callback=STATUS_CALLBACK))
                await fake.callbacks_done()
            finally:
                await provider.close()

    assert [params["MessageStatus"] for _, params, _ in received] == ["sent", "undelivered"]
    assert received[1][1]["ErrorCode"] == "30003"
    for url, params, signature in received:
        assert url == STATUS_CALLBACK
        assert params["MessageSid"] == result.provider_sid
        assert provider.validate_webhook(STATUS_CALLBACK, params, signature)


# --- webhook signatures ----------------------------------------------------------------------

TEST_VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TEST_VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
TEST_VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_validate_webhook_accepts_twilios_published_test_vector() -> None:
    provider = TwilioProvider(ACCOUNT_SID, "12345")

    assert provider.validate_webhook(TEST_VECTOR_URL, TEST_VECTOR_PARAMS, TEST_VECTOR_SIGNATURE)


def test_validate_webhook_refuses_a_changed_parameter_or_no_signature() -> None:
    provider = TwilioProvider(ACCOUNT_SID, "12345")
    changed = {**TEST_VECTOR_PARAMS, "Digits": "1235"}

    assert not provider.validate_webhook(TEST_VECTOR_URL, changed, TEST_VECTOR_SIGNATURE)
    assert not provider.validate_webhook(TEST_VECTOR_URL, TEST_VECTOR_PARAMS, "")
    assert not TwilioProvider(ACCOUNT_SID, "54321").validate_webhook(
        TEST_VECTOR_URL, TEST_VECTOR_PARAMS, TEST_VECTOR_SIGNATURE
    )


# --- media -----------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


async def test_fetch_media_follows_the_redirect_with_basic_auth(provider: TwilioProvider, fake: FakeTwilio) -> None:
    url = fake.add_media(PNG, "image/png")

    media = await provider.fetch_media(url)

    assert media.content == PNG
    assert media.content_type == "image/png"


async def test_fetch_media_routes_api_twilio_com_to_the_configured_api_url(
    provider: TwilioProvider, fake: FakeTwilio
) -> None:
    url = fake.add_media(PNG, "image/jpeg").replace(fake.base_url, "https://api.twilio.com")

    media = await provider.fetch_media(url)

    assert media.content == PNG and media.content_type == "image/jpeg"


async def test_fetch_media_refuses_wrong_credentials_clearly(fake: FakeTwilio) -> None:
    provider = TwilioProvider(ACCOUNT_SID, "not-the-token", api_url=fake.base_url)
    url = fake.add_media(PNG, "image/png")

    with pytest.raises(MediaFetchFailed) as failed:
        await provider.fetch_media(url)

    assert failed.value.status == 401
    assert "credentials" in str(failed.value)
    assert "not-the-token" not in str(failed.value)


async def test_fetch_media_refuses_more_than_5_mb(provider: TwilioProvider, fake: FakeTwilio) -> None:
    url = fake.add_media(b"\0" * (MAX_MEDIA_BYTES + 1), "image/png")

    with pytest.raises(MediaTooLarge):
        await provider.fetch_media(url)


async def test_fetch_media_stops_reading_an_oversized_body_without_a_length() -> None:
    async def endless_chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_MEDIA_BYTES // 65536 + 2):
            yield b"\0" * 65536

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless_chunks()))
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", "https://api.twilio.com/media") as response:
            assert "content-length" not in response.headers
            with pytest.raises(MediaTooLarge):
                await read_capped_media(response, "https://api.twilio.com/media")


async def test_fetch_media_never_sends_the_credentials_to_another_host(provider: TwilioProvider) -> None:
    with pytest.raises(MediaFetchFailed, match="not a Twilio media URL"):
        await provider.fetch_media("https://attacker.example.com/steal")


# --- secrets ---------------------------------------------------------------------------------


async def test_the_token_never_appears_in_repr(provider: TwilioProvider) -> None:
    await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))  # with a live client inside too

    assert AUTH_TOKEN not in repr(provider)
    assert AUTH_TOKEN not in str(provider)
    assert AUTH_TOKEN not in repr(provider.info)
    assert ACCOUNT_SID in repr(provider)


# --- error codes in plain words ----------------------------------------------------------------

LISTED_CODES = [21211, 21408, 21610, 21614, 21611, 21606, 30001, 30003, 30004, 30005, 30006, 30007, 30008, 30032, 30034]


@pytest.mark.parametrize("code", LISTED_CODES)
def test_every_listed_code_has_plain_words(code: int) -> None:
    explanation = explain(code)

    assert isinstance(explanation, ErrorExplanation)
    assert explanation.code == code
    assert explanation.summary and explanation.action
    assert str(code) not in explanation.summary  # a known code is explained, not just named


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21610, "opted out"),
        (30003, "unreachable"),
        (30006, "landline"),
        (30007, "spam"),
        (30034, "10DLC"),
    ],
)
def test_the_product_wording_is_used(code: int, words: str) -> None:
    explanation = explain(code)

    assert explanation is not None and words.lower() in explanation.summary.lower()


def test_an_opted_out_client_must_text_start() -> None:
    explanation = explain(21610)

    assert explanation is not None and "START" in explanation.action


def test_an_unknown_code_gets_a_generic_explanation_naming_it() -> None:
    explanation = explain(12345)

    assert explanation is not None and "12345" in explanation.summary
    assert explain(None) is None
