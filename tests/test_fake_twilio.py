"""The fake Twilio's Messages list and fetch, driven by the real twilio library (list_async, stream_async)
over real HTTP: the outbox's look-ups are only as good as this stand-in for Twilio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from inbox.sms.base import OutboundText
from inbox.sms.twilio import TwilioProvider
from tests.support.fake_twilio import FakeTwilio

ACCOUNT_SID = "AC" + "d4" * 16
AUTH_TOKEN = "fake-list-token"
OTHER_ACCOUNT_SID = "AC" + "e5" * 16
OTHER_TOKEN = "other-token"
FROM_NUMBER = "+15557654321"
CLIENT_NUMBER = "+15551234567"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.add_account(OTHER_ACCOUNT_SID, OTHER_TOKEN)
        yield fake


@pytest.fixture
async def provider(fake: FakeTwilio) -> AsyncIterator[TwilioProvider]:
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url)
    yield provider
    await provider.close()


@pytest.fixture
async def client(provider: TwilioProvider) -> Client:
    """The library's own Client, as the adapter builds it (header auth: aiohttp's BasicAuth is deprecated)."""
    return provider._twilio()


async def send_bodies(provider: TwilioProvider, fake: FakeTwilio, bodies: list[str], to: str = CLIENT_NUMBER) -> None:
    for body in bodies:
        await provider.send(OutboundText(to=to, body=body))
    await fake.callbacks_done()


async def test_list_async_follows_next_page_uri_newest_first(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    await send_bodies(provider, fake, [f"text {n}" for n in range(5)])

    listed = await client.messages.list_async(to=CLIENT_NUMBER, page_size=2)

    assert [message.body for message in listed] == [f"text {n}" for n in reversed(range(5))]
    assert len(fake.list_queries) == 3  # three pages of 2, 2 and 1
    assert fake.list_queries[1]["PageToken"].startswith("PA")


async def test_stream_async_stops_at_its_limit(provider: TwilioProvider, fake: FakeTwilio, client: Client) -> None:
    await send_bodies(provider, fake, [f"text {n}" for n in range(4)])

    stream = await client.messages.stream_async(limit=3, page_size=2)
    bodies = [message.body async for message in stream]

    assert bodies == ["text 3", "text 2", "text 1"]


async def test_a_page_cursor_is_not_shifted_by_new_texts(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    await send_bodies(provider, fake, ["a", "b", "c", "d"])

    first = await client.messages.page_async(page_size=2)
    await send_bodies(provider, fake, ["e"])  # arrives between the two pages
    second = await first.next_page_async()

    assert [message.body for message in first] == ["d", "c"]
    assert [message.body for message in second] == ["b", "a"]


async def test_list_filters_by_to_and_from(provider: TwilioProvider, fake: FakeTwilio, client: Client) -> None:
    await send_bodies(provider, fake, ["to the client"])
    await send_bodies(provider, fake, ["to someone else"], to="+15559990000")
    await provider.send(OutboundText(to=CLIENT_NUMBER, body="from another number", from_number="+15550001111"))
    await fake.callbacks_done()

    to_client = await client.messages.list_async(to=CLIENT_NUMBER)
    from_ours = await client.messages.list_async(to=CLIENT_NUMBER, from_=FROM_NUMBER)

    assert {message.body for message in to_client} == {"to the client", "from another number"}
    assert [message.body for message in from_ours] == ["to the client"]


async def test_date_sent_filters_take_a_day_or_a_second(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    await send_bodies(provider, fake, ["today"])
    sent_at = parsedate_to_datetime(fake.stored(fake.messages[0]["sid"])["date_sent"])
    day = sent_at.date().isoformat()
    next_day = (sent_at + timedelta(days=1)).date().isoformat()

    after_an_hour_before = await client.messages.list_async(date_sent_after=sent_at - timedelta(hours=1))
    after_a_minute_later = await client.messages.list_async(date_sent_after=sent_at + timedelta(minutes=1))
    before_the_day_before = await client.messages.list_async(date_sent_before=sent_at - timedelta(days=1))
    on_the_day = await _list_raw(fake, {"DateSent": day})
    from_the_day = await _list_raw(fake, {"DateSent>": day})
    up_to_the_day = await _list_raw(fake, {"DateSent<": day})
    from_the_next_day = await _list_raw(fake, {"DateSent>": next_day})

    assert [message.body for message in after_an_hour_before] == ["today"]
    assert after_a_minute_later == [] and before_the_day_before == []
    for page in (on_the_day, from_the_day, up_to_the_day):  # a day's bounds are inclusive
        assert [message["body"] for message in page["messages"]] == ["today"]
    assert from_the_next_day["messages"] == []
    assert from_the_next_day["next_page_uri"] is None and from_the_next_day["previous_page_uri"] is None


async def test_date_sent_is_null_until_twilio_sends_it_on(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    fake.outcomes[CLIENT_NUMBER] = []  # stays queued at Twilio
    await send_bodies(provider, fake, ["still queued"])

    everything = await client.messages.list_async(to=CLIENT_NUMBER)
    sent_lately = await client.messages.list_async(
        to=CLIENT_NUMBER, date_sent_after=datetime.now(UTC) - timedelta(hours=1)
    )

    assert [(message.status, message.date_sent) for message in everything] == [("queued", None)]
    assert isinstance(everything[0].date_created, datetime)
    assert sent_lately == []


async def test_the_story_moves_the_listed_status_and_date_sent(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    fake.outcomes[CLIENT_NUMBER] = [("sent", None), ("undelivered", 30003)]
    await send_bodies(provider, fake, ["hi"])

    listed = (await client.messages.list_async(to=CLIENT_NUMBER))[0]
    fetched = await client.messages(listed.sid).fetch_async()

    assert listed.status == "undelivered" and listed.error_code == 30003
    assert isinstance(listed.date_sent, datetime)
    assert fetched.sid == listed.sid and fetched.status == "undelivered"


async def test_a_messaging_service_text_gets_its_sender_when_sent(fake: FakeTwilio, client: Client) -> None:
    service = "MG" + "f6" * 16
    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid=service, api_url=fake.base_url)
    try:
        fake.outcomes[CLIENT_NUMBER] = []
        queued = await provider.send(OutboundText(to=CLIENT_NUMBER, body="queued"))
        del fake.outcomes[CLIENT_NUMBER]
        sent = await provider.send(OutboundText(to=CLIENT_NUMBER, body="sent"))
        await fake.callbacks_done()
    finally:
        await provider.close()

    assert fake.stored(queued.provider_sid)["from"] is None
    assert fake.stored(sent.provider_sid)["from"] is not None
    assert fake.stored(sent.provider_sid)["messaging_service_sid"] == service


async def test_only_the_callers_account_is_listed_or_fetched(
    provider: TwilioProvider, fake: FakeTwilio, client: Client
) -> None:
    other = TwilioProvider(OTHER_ACCOUNT_SID, OTHER_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url)
    try:
        theirs = await other.send(OutboundText(to=CLIENT_NUMBER, body="theirs"))
    finally:
        await other.close()
    await send_bodies(provider, fake, ["ours"])

    listed = await client.messages.list_async(to=CLIENT_NUMBER)
    with pytest.raises(TwilioRestException) as missing:
        await client.messages(theirs.provider_sid).fetch_async()

    assert [message.body for message in listed] == ["ours"]
    assert missing.value.status == 404


async def test_a_held_answer_is_let_go_when_the_fake_closes() -> None:
    async with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        fake.hold_all = 3600.0
        provider = TwilioProvider(
            ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_url=fake.base_url, send_timeout=0.2
        )
        try:
            with pytest.raises(Exception):  # noqa: B017 -- the timeout; the point is that exit returns
                await provider.send(OutboundText(to=CLIENT_NUMBER, body="hi"))
        finally:
            await provider.close()
        accepted = fake.count_to(CLIENT_NUMBER)

    assert accepted == 1


async def test_hundreds_of_concurrent_creates_are_each_taken_once(provider: TwilioProvider, fake: FakeTwilio) -> None:
    bodies = [f"reminder {n}" for n in range(300)]

    results = await asyncio.gather(*(provider.send(OutboundText(to=CLIENT_NUMBER, body=body)) for body in bodies))
    await fake.callbacks_done()

    assert sorted(fake.bodies_to(CLIENT_NUMBER)) == sorted(bodies)
    assert len({result.provider_sid for result in results}) == 300
    assert len(fake.accepted_at) == 300
    assert fake.accepted_at == sorted(fake.accepted_at)


async def _list_raw(fake: FakeTwilio, params: dict[str, str]) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=fake.base_url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
        response = await http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
