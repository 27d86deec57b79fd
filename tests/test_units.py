"""Small pieces with no database: phone numbers, the event bus, status ordering, error wording, settings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from inbox import metrics
from inbox.events import (
    LAGGED,
    Bus,
    ConsentChanged,
    Event,
    MessageReceived,
    MessageSent,
    MessageStatusChanged,
    describe,
    event_from_json,
)
from inbox.models import MessageStatus
from inbox.phones import InvalidPhoneNumber, for_people, normalise
from inbox.services.messaging import STATUS_RANK
from inbox.settings import DEFAULT_DATABASE_URL, DEFAULT_PUBLIC_URL, load_settings
from inbox.sms.errors import explain

# ---------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    "raw",
    [
        "(404) 538-7319",
        "404-538-7319",
        "404.538.7319",
        "404 538 7319",
        "4045387319",
        "  4045387319  ",
        "+1 404 538 7319",
        "+1 (404) 538-7319",
        "1-404-538-7319",
        "1 (404) 538-7319",
        "+14045387319",
        "tel:+1-404-538-7319",
        "+1 404 538 7319 ext. 12",
    ],
)
def test_us_numbers_in_any_format_become_e164(raw: str) -> None:
    assert normalise(raw) == "+14045387319"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+52 55 1234 5678", "+525512345678"),
        ("+1 416 555 0199", "+14165550199"),
        ("011 44 20 7946 0958", "+442079460958"),
    ],
)
def test_international_numbers_keep_their_country(raw: str, e164: str) -> None:
    assert normalise(raw) == e164


def test_a_region_can_be_given_for_national_numbers() -> None:
    assert normalise("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "hello",
        "12",
        "538-7319",
        "404-538-731",
        "40453873199999",
        "+1 000 000 0000",
        "+999 123 456",
        "call me",
    ],
)
def test_junk_is_refused_with_a_readable_error(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalise(raw)
    message = str(caught.value)
    assert message and "Traceback" not in message
    if raw.strip():
        assert raw.strip() in message  # says which input was wrong


def test_invalid_phone_number_is_a_value_error() -> None:
    assert issubclass(InvalidPhoneNumber, ValueError)


def test_numbers_are_shown_for_people() -> None:
    assert for_people("+14045387319") == "(404) 538-7319"
    assert for_people("+442079460958") == "+44 20 7946 0958"
    assert for_people("JURYOFFICE") == "JURYOFFICE"


# ---------------------------------------------------------------- the event bus


def received(n: int) -> MessageReceived:
    return MessageReceived(message_id=n, conversation_id=100 + n, provider_sid=f"SM{n}", case_ids=[n])


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = Bus("memory://")
    await bus.connect()
    try:
        async with bus.subscribe() as first, bus.subscribe() as second:
            assert bus.subscriber_count == 2
            events = [received(1), MessageSent(message_id=2, conversation_id=3), received(3)]
            await bus.publish_all(events)
            for subscription in (first, second):
                got = [await asyncio.wait_for(subscription.get(), 5) for _ in events]
                assert got == events
        assert bus.subscriber_count == 0
    finally:
        await bus.disconnect()


async def test_events_published_before_subscribing_are_not_delivered() -> None:
    bus = Bus()
    await bus.publish(received(1))
    async with bus.subscribe() as late:
        await bus.publish(received(2))
        assert await asyncio.wait_for(late.get(), 5) == received(2)


async def test_a_slow_subscriber_is_told_it_lagged_and_others_are_unaffected() -> None:
    bus = Bus("memory://", queue_size=3)
    async with bus.subscribe() as fast, bus.subscribe() as slow:
        seen_by_fast = []
        for n in range(1, 6):
            await bus.publish(received(n))
            seen_by_fast.append(await asyncio.wait_for(fast.get(), 5))
        # The fast reader got everything, in order, whatever happened to the slow one.
        assert seen_by_fast == [received(n) for n in range(1, 6)]
        # The slow one overflowed on the 4th event: its backlog became one marker, then the 5th came.
        marker = await asyncio.wait_for(slow.get(), 5)
        assert marker is LAGGED and marker.name == "bus.lagged"
        assert await asyncio.wait_for(slow.get(), 5) == received(5)
        # Having caught up, it receives normally again.
        await bus.publish(received(6))
        assert await asyncio.wait_for(slow.get(), 5) == received(6)
        assert await asyncio.wait_for(fast.get(), 5) == received(6)


async def test_subscription_iterates_as_an_async_stream() -> None:
    bus = Bus()
    async with bus.subscribe() as subscription:
        await bus.publish_all([received(1), received(2)])
        got = []
        async for event in subscription:
            got.append(event)
            if len(got) == 2:
                break
    assert got == [received(1), received(2)]


async def test_delivery_is_timed_from_publication_not_from_when_the_event_is_heard() -> None:
    async def slow_journal(event: Event) -> Event:  # the event log's INSERT, on a slow database
        await asyncio.sleep(0.2)
        return event

    bus = Bus(journal=slow_journal)
    async with bus.subscribe() as subscription:
        before = time.time()
        await bus.publish(received(1))
        heard = await asyncio.wait_for(subscription.get(), 5)
        published_at = metrics.published_at(heard)
        assert published_at is not None and before <= published_at < before + 0.1
        assert time.time() - published_at >= 0.2


@pytest.mark.parametrize("url", ["kafka://x", "", "redis:/missing-slash", "amqp://user:hunter2@host/"])
def test_unknown_broadcast_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError, match="not a bus this app knows") as caught:
        Bus(url)
    assert "memory://" in str(caught.value) and "redis://" in str(caught.value)
    assert "hunter2" not in str(caught.value)  # a password in the URL is not repeated


@pytest.mark.parametrize(
    "event",
    [
        received(4),
        MessageSent(message_id=1, conversation_id=2, provider_sid=None, case_ids=[]),
        MessageStatusChanged(
            message_id=1, conversation_id=2, status="delivered", provider_sid="SMx", error_code=None, case_ids=[7]
        ),
        MessageStatusChanged(message_id=1, conversation_id=2, status="undelivered", error_code=30003),
        ConsentChanged(phone="+14045387319", okay_to_text=False, opted_out=True, conversation_ids=[1], message_id=9),
    ],
)
def test_events_survive_the_json_round_trip(event) -> None:
    assert event_from_json(event.to_json()) == event
    assert describe(event)["type"] == event.name


def test_event_types_use_the_contract_names() -> None:
    assert MessageReceived.name == "message.received"
    assert MessageSent.name == "message.sent"
    assert MessageStatusChanged.name == "message.status"
    assert ConsentChanged.name == "consent.changed"


# ---------------------------------------------------------------- status ordering


def test_every_status_has_a_rank() -> None:
    assert set(STATUS_RANK) == set(MessageStatus)


def test_outbound_statuses_only_move_forwards() -> None:
    ladder = [
        MessageStatus.SCHEDULED,
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
    ]
    ranks = [STATUS_RANK[s] for s in ladder]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert STATUS_RANK[MessageStatus.ACCEPTED] == STATUS_RANK[MessageStatus.QUEUED]


@pytest.mark.parametrize(
    "final", [MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.CANCELED]
)
@pytest.mark.parametrize("late", [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT])
def test_a_late_callback_never_undoes_a_final_status(final: MessageStatus, late: MessageStatus) -> None:
    assert STATUS_RANK[late] < STATUS_RANK[final]


def test_final_statuses_do_not_overwrite_one_another() -> None:
    finals = {
        STATUS_RANK[s]
        for s in (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.CANCELED)
    }
    assert len(finals) == 1


# ---------------------------------------------------------------- error codes in plain words


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21610, "opted out"),
        (30003, "unreachable"),
        (30006, "landline"),
        (30007, "spam"),
        (30034, "10dlc"),
        (21211, "not a valid phone number"),
        (21614, "landline"),
    ],
)
def test_error_codes_are_explained_in_plain_words(code: int, words: str) -> None:
    explanation = explain(code)
    assert explanation is not None and explanation.code == code
    assert words in explanation.summary.lower()
    assert explanation.action
    assert explanation.more_info_url.endswith(str(code))


def test_unknown_error_codes_still_get_a_sentence_with_the_code() -> None:
    explanation = explain(39999)
    assert explanation is not None and "39999" in explanation.summary
    assert explain(None) is None


# ---------------------------------------------------------------- settings


def test_settings_have_laptop_defaults(tmp_path: Path) -> None:
    settings = load_settings({"INBOX_DATA_DIR": str(tmp_path / "data")})
    assert settings.database_url == DEFAULT_DATABASE_URL and settings.is_sqlite
    assert settings.public_url == DEFAULT_PUBLIC_URL
    assert settings.broadcast_url == "memory://"
    assert settings.uses_simulator
    # The generated secret key is kept, so a restart keeps sessions.
    assert load_settings({"INBOX_DATA_DIR": str(tmp_path / "data")}).secret_key == settings.secret_key
    assert str(settings.secret_key) not in repr(settings)


def test_settings_read_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "INBOX_DATA_DIR": str(tmp_path),
            "INBOX_DATABASE_URL": "postgres://u:p@db/inbox",
            "INBOX_PUBLIC_URL": "https://inbox.example.org/",
            "TWILIO_ACCOUNT_SID": "AC123",
            "TWILIO_AUTH_TOKEN": "token-value",
            "TWILIO_FROM_NUMBER": "+15005550006",
            "INBOX_TWILIO_API_URL": "http://127.0.0.1:9999/",
        }
    )
    assert settings.public_url == "https://inbox.example.org"
    assert not settings.is_sqlite and not settings.uses_simulator
    assert settings.twilio_api_url == "http://127.0.0.1:9999"
    assert "token-value" not in repr(settings)
