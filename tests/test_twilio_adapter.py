"""TwilioProvider with the real twilio library, over real HTTP, against tests/support/fake_twilio.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from inbox.sms import twilio as twilio_adapter
from inbox.sms.base import (
    MAX_MEDIA_BYTES,
    MediaFetchFailed,
    MediaTooLarge,
    OutboundText,
    ProviderRejected,
    ProviderUnavailable,
)
from inbox.sms.errors import ErrorExplanation, explain
from inbox.sms.twilio import SEND_TIMEOUT_SECONDS, TwilioProvider, read_capped_media, seconds_from_retry_after
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


# --- a busy, failing or slow Twilio: what the outbox retries, and how -------------------------


async def test_429_carries_retry_after_in_seconds(provider: TwilioProvider, fake: FakeTwilio) -> None:
    fake.fail_next(429, retry_after=7)

    with pytest.raises(ProviderUnavailable) as busy:
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert busy.value.status == 429
    assert busy.value.code == 20429
    assert busy.value.retry_after == 7.0
    assert busy.value.outcome_unknown is False  # Twilio answered: it did not take the text
    assert "429" in str(busy.value)
    assert fake.count_to(CLIENT_NUMBER) == 0


async def test_429_with_an_http_date_retry_after_becomes_seconds_from_now(
    provider: TwilioProvider, fake: FakeTwilio
) -> None:
    fake.fail_next(429, retry_after=format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True))

    with pytest.raises(ProviderUnavailable) as busy:
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert busy.value.retry_after is not None
    assert 3000 < busy.value.retry_after <= 3600


def test_retry_after_forms() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert seconds_from_retry_after("120", now) == 120.0
    assert seconds_from_retry_after("Tue, 01 Jan 2030 12:00:30 GMT", now) == 30.0
    assert seconds_from_retry_after("Tue, 01 Jan 2030 11:00:00 GMT", now) == 0.0  # already past
    assert seconds_from_retry_after("soon", now) is None
    assert seconds_from_retry_after(None, now) is None


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
async def test_a_5xx_is_unavailable_with_a_known_outcome(
    provider: TwilioProvider, fake: FakeTwilio, status: int, code: int
) -> None:
    fake.fail_next(status)

    with pytest.raises(ProviderUnavailable) as failed:
        await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    retried = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert (failed.value.status, failed.value.code) == (status, code)
    assert failed.value.retry_after is None
    assert failed.value.outcome_unknown is False
    assert fake.bodies_to(CLIENT_NUMBER) == ["hi"]
    assert retried.provider_sid == fake.messages[0]["sid"]


async def test_a_busy_number_answers_its_script_and_others_go_through(
    provider: TwilioProvider, fake: FakeTwilio
) -> None:
    other = "+15559870000"
    fake.busy[CLIENT_NUMBER] = [429, (503, 2)]

    statuses = []
    for _ in range(2):
        with pytest.raises(ProviderUnavailable) as busy:
            await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
        statuses.append((busy.value.status, busy.value.retry_after))
    await provider.send(OutboundText(to=other, body="meanwhile"))
    accepted = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    assert statuses == [(429, None), (503, 2.0)]
    assert [message["to"] for message in fake.messages] == [other, CLIENT_NUMBER]
    assert accepted.provider_sid == fake.messages[-1]["sid"]


async def test_concurrent_sends_each_get_their_own_retry_after(provider: TwilioProvider, fake: FakeTwilio) -> None:
    """One http client serves every send: a 429's Retry-After must not leak into another send's error."""
    numbers = [f"+1555000{index:04d}" for index in range(20)]
    for index, number in enumerate(numbers):
        fake.busy[number] = [(429, index + 1)]

    outcomes = await asyncio.gather(
        *(provider.send(OutboundText(to=number, body="hi")) for number in numbers), return_exceptions=True
    )

    retry_afters = [
        outcome.retry_after if isinstance(outcome, ProviderUnavailable) else outcome for outcome in outcomes
    ]
    assert retry_afters == [float(index + 1) for index in range(20)]


async def test_an_answer_held_past_the_timeout_is_an_unknown_outcome_and_twilio_has_the_text(
    fake: FakeTwilio,
) -> None:
    gate = asyncio.Event()
    fake.hold_gate[CLIENT_NUMBER] = gate
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url, send_timeout=0.2)
    text = OutboundText(to=CLIENT_NUMBER, body="Court moved to 10 a.m.")
    began = datetime.now(UTC)
    try:
        with pytest.raises(ProviderUnavailable) as slow:
            await provider.send(text)
        found = await provider.find_sent(text, began)  # the answer is still held
    finally:
        gate.set()
        await provider.close()

    assert slow.value.outcome_unknown is True
    assert slow.value.status is None
    assert fake.count_to(CLIENT_NUMBER) == 1
    assert found is not None and found.provider_sid == fake.messages[0]["sid"]


def test_the_send_timeout_defaults_to_20_seconds() -> None:
    assert SEND_TIMEOUT_SECONDS == 20.0


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
        with pytest.raises(ProviderUnavailable) as refused:
            await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    finally:
        await provider.close()

    assert refused.value.outcome_unknown is False  # no connection: Twilio never saw it
    assert refused.value.status is None


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome() -> None:
    """A server that reads the whole request and hangs up without answering: it may have taken it."""
    requests_read: list[bytes] = []

    async def read_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        requests_read.append(head + await reader.readexactly(length))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(read_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ProviderUnavailable) as dropped:
            await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    finally:
        await provider.close()
        server.close()
        await server.wait_closed()

    assert dropped.value.outcome_unknown is True
    assert len(requests_read) == 1 and b"Body=hi" in requests_read[0]


# --- find_sent: did Twilio take the text after all? ------------------------------------------


async def test_find_sent_finds_the_text_by_body_and_sender(provider: TwilioProvider, fake: FakeTwilio) -> None:
    began = datetime.now(UTC)
    sent = await provider.send(OutboundText(to=CLIENT_NUMBER, body="Bring your ID."))
    await fake.callbacks_done()  # sent → delivered: date_sent is set

    found = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="Bring your ID."), began)
    other_body = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="Bring your ID"), began)
    other_sender = await provider.find_sent(
        OutboundText(to=CLIENT_NUMBER, body="Bring your ID.", from_number="+15550001111"), began
    )

    assert found is not None
    assert found.provider_sid == sent.provider_sid
    assert found.status == "delivered"
    assert other_body is None and other_sender is None
    first_query = fake.list_queries[0]
    assert first_query["To"] == CLIENT_NUMBER and first_query["From"] == FROM_NUMBER
    # A minute of clock slack, written in UTC as Twilio reads it.
    assert first_query["DateSent>"] == (began - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_find_sent_gives_the_oldest_match(provider: TwilioProvider, fake: FakeTwilio) -> None:
    began = datetime.now(UTC)
    text = OutboundText(to=CLIENT_NUMBER, body="Reminder")
    first = await provider.send(text)
    await provider.send(text)
    await fake.callbacks_done()

    found = await provider.find_sent(text, began)

    assert found is not None and found.provider_sid == first.provider_sid


async def test_find_sent_falls_back_when_twilio_has_not_sent_it_on_yet(
    provider: TwilioProvider, fake: FakeTwilio
) -> None:
    fake.callbacks_enabled = False  # queued at Twilio: date_sent is null, DateSent> cannot see it
    began = datetime.now(UTC)
    sent = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))

    found = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), began)

    assert fake.stored(sent.provider_sid)["date_sent"] is None
    assert found is not None and found.provider_sid == sent.provider_sid and found.status == "queued"
    assert ["DateSent>" in query for query in fake.list_queries] == [True, False]


@pytest.mark.parametrize("sent_on", [True, False], ids=["sent on", "still queued"])
async def test_find_sent_reads_past_the_first_page_back_to_the_attempt(
    provider: TwilioProvider, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch, sent_on: bool
) -> None:
    """A text followed by more texts to the same number than one page holds is still found (a worker
    died mid-batch; another sent the rest before the lease expired), and no page older than the
    attempt is read."""
    monkeypatch.setattr(twilio_adapter, "LOOKUP_PAGE_SIZE", 3)
    fake.callbacks_enabled = sent_on
    earlier = await provider.send(OutboundText(to=CLIENT_NUMBER, body="Reminder 0"))
    fake.stored(earlier.provider_sid)["date_created"] = format_datetime(datetime.now(UTC) - timedelta(minutes=10))
    for older in range(4):  # a page and more of texts from before the attempt: never read
        await provider.send(OutboundText(to=CLIENT_NUMBER, body=f"Old {older}"))
    for old in fake.messages[-4:]:
        fake.stored(old["sid"])["date_created"] = format_datetime(datetime.now(UTC) - timedelta(minutes=10))
    began = datetime.now(UTC)
    sent = await provider.send(OutboundText(to=CLIENT_NUMBER, body="Reminder 0"))
    for n in range(1, 8):  # two pages and more of newer texts to the same number
        await provider.send(OutboundText(to=CLIENT_NUMBER, body=f"Reminder {n}"))
    await fake.callbacks_done()
    fake.list_queries.clear()

    found = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="Reminder 0"), began)

    assert found is not None and found.provider_sid == sent.provider_sid
    # Eight texts since the attempt: three pages, then one that holds only older texts, and no more.
    assert len(fake.list_queries) == 4 + (0 if sent_on else 1)


@pytest.mark.parametrize("sent_on", [True, False], ids=["sent on", "still queued"])
async def test_find_sent_ignores_texts_from_before_the_attempt(
    provider: TwilioProvider, fake: FakeTwilio, sent_on: bool
) -> None:
    """An earlier text with the same words is not this attempt's, even when DateSent> lets it through."""
    fake.callbacks_enabled = sent_on
    earlier = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
    await fake.callbacks_done()
    fake.stored(earlier.provider_sid)["date_created"] = format_datetime(datetime.now(UTC) - timedelta(minutes=10))

    found = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), datetime.now(UTC))

    assert found is None


async def test_find_sent_through_a_messaging_service_matches_the_service(fake: FakeTwilio) -> None:
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid=SERVICE_SID, api_url=fake.base_url)
    other_service = "MG" + "c3" * 16
    began = datetime.now(UTC)
    try:
        sent = await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
        await fake.callbacks_done()
        found = await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), began)
        not_ours = await provider.find_sent(
            OutboundText(to=CLIENT_NUMBER, body="hi", messaging_service_sid=other_service), began
        )
    finally:
        await provider.close()

    assert found is not None and found.provider_sid == sent.provider_sid
    assert not_ours is None
    assert all("From" not in query for query in fake.list_queries)  # the pool picks the sender


async def test_find_sent_when_twilio_cannot_be_reached_is_unavailable_not_none() -> None:
    provider = TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        with pytest.raises(ProviderUnavailable) as unreachable:
            await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), datetime.now(UTC))
    finally:
        await provider.close()

    assert unreachable.value.outcome_unknown is False


async def test_find_sent_when_twilio_answers_an_error_is_unavailable(fake: FakeTwilio) -> None:
    provider = TwilioProvider(ACCOUNT_SID, "not-the-token", from_number=FROM_NUMBER, api_url=fake.base_url)
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.find_sent(OutboundText(to=CLIENT_NUMBER, body="hi"), datetime.now(UTC))
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


def test_validate_webhook_accepts_the_url_signed_with_its_default_port_as_well() -> None:
    """Twilio's back end sometimes signs https://host:443/…: the check over our URL as written fails first, and
    RequestValidator's own two (with and without the port) still decide."""
    provider = TwilioProvider(ACCOUNT_SID, "12345")
    with_port = RequestValidator("12345").compute_signature(
        "https://mycompany.com:443/myapp.php?foo=1&bar=2", TEST_VECTOR_PARAMS
    )

    assert provider.validate_webhook(TEST_VECTOR_URL, TEST_VECTOR_PARAMS, with_port)
    assert not provider.validate_webhook(TEST_VECTOR_URL, {**TEST_VECTOR_PARAMS, "Digits": "1235"}, with_port)
    assert not provider.validate_webhook(TEST_VECTOR_URL, TEST_VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=é")


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
