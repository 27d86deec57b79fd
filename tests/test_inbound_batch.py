"""Inbound texts processed in batches (issue 11, fast ingest): a claimed batch is one unit of work
(inbound.record_inbound_many), and leaves exactly what the same texts processed one at a time leave.

- a burst mixing plain texts, a STOP between two plain texts of one sender, a C confirming a hearing, a
  survey's answer, a text with an attachment, a repeated MessageSid, a refused text and an unknown sender:
  processed as one batch and one at a time (each in a fresh app on an empty database), the rows of every
  table a text touches and the events published, in order, are the same;
- the statements of a batch do not grow with its texts (50 plain texts take as many as 5);
- a batch whose unit of work fails (a repeat of a text that raced in after the batch looked) is tried text by
  text: the others are kept, the repeat is marked a duplicate.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from tortoise.models import Model

from inbox import clock
from inbox.events import Event
from inbox.models import (
    Alert,
    AlertAssignee,
    Campaign,
    CampaignRecipient,
    Case,
    CaseEvent,
    CaseNote,
    Channel,
    ClientPhone,
    ConsentEvent,
    Conversation,
    Direction,
    EventKind,
    EventReminder,
    Media,
    Message,
    MessageLink,
    MessageStatus,
    MessageStatusEvent,
    Staff,
    WebhookPayload,
)
from inbox.services import inbound
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.ingest import store_payloads
from inbox.services.staff import create_staff
from inbox.settings import Settings
from tests.support.apps import running
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA, CaseFile
from tests.support.surveys import sent_survey
from tests.support.webhooks import inbound_params, mms_params, numbered_sid

SURVEYED = "+14045552001"
CONFIRMER = "+14045552002"
OTHER = "+14045552003"
UNKNOWN = "+14045559999"  # on no client's record

# What a text touches; their rows are compared with ids (and foreign keys) replaced by their rank in the table.
TABLES: list[type[Model]] = [
    WebhookPayload,
    Conversation,
    Message,
    MessageStatusEvent,
    MessageLink,
    CaseNote,
    Alert,
    AlertAssignee,
    ConsentEvent,
    ClientPhone,
    Media,
    CampaignRecipient,
    CaseEvent,
]


def burst() -> list[dict[str, str]]:
    """The webhooks, in the order they came."""
    sid = numbered_sid
    return [
        inbound_params(sid(1), MARIA, "Which courtroom is it?"),
        inbound_params(sid(2), UNKNOWN, "Hello, who is this?"),
        inbound_params(sid(3), OTHER, "Can I bring my daughter?"),
        inbound_params(sid(4), MARIA, "STOP"),
        inbound_params(sid(5), MARIA, "Sorry, wrong button. When is the hearing?"),
        inbound_params(sid(6), CONFIRMER, "C"),
        inbound_params(sid(7), SURVEYED, "1"),
        mms_params(sid(8), OTHER, "The lease", [("https://api.twilio.com/media/ME1", "image/jpeg")]),
        inbound_params(sid(1), MARIA, "Which courtroom is it?"),  # Twilio's retry of the first one
        inbound_params(sid(9), "+1" + "4" * 70, "Too long a sender to keep"),  # refused
        inbound_params(sid(10), OTHER, "Thanks"),
        inbound_params(sid(11), UNKNOWN, "Still there?"),
        inbound_params(sid(12), SURVEYED, "And a question about my case"),
        inbound_params(sid(13), MARIA, "Thank you"),
    ]


async def case_of(number: str, name: str, n: int, assignee: Staff) -> CaseFile:
    client = await create_client(name=name, phones=[PhoneInput(number, "mobile", True)])
    case = await create_case(number=f"16E-3001{n:04d}", title=f"Case {n}", client_id=client.id, legal_problem="Housing")
    await create_assignment(case_id=case.id, staff_email=assignee.email, primary=True)
    return CaseFile(client.id, case.id, case.number)


async def world(channel: Channel, now: datetime) -> None:
    """Clients with cases (one sent a survey, one asked to confirm a hearing), an advocate on each."""
    advocate, _ = await create_staff(email="advocate@example.org", name="Ada Advocate", role="advocate")
    await case_of(MARIA, "Maria Lopez", 1, advocate)
    await case_of(OTHER, "Olga Other", 2, advocate)
    surveyed = await case_of(SURVEYED, "Sam Surveyed", 3, advocate)
    await sent_survey(channel, [(surveyed, SURVEYED)], sent_at=now - timedelta(hours=1))
    confirmer = await case_of(CONFIRMER, "Carl Confirmer", 4, advocate)
    hearing = await CaseEvent.create(
        case_id=confirmer.case_id, kind=EventKind.HEARING, title="Eviction hearing", starts_at=now + timedelta(hours=3)
    )
    conversation, _ = await Conversation.get_or_create(channel=channel, phone=CONFIRMER)
    reminder = await Message.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        from_number=channel.from_number or "",
        to_number=CONFIRMER,
        body="Your hearing is in 5 hours. Reply C to confirm.",
        status=MessageStatus.DELIVERED,
        case_id=confirmer.case_id,
        first_attempt_at=now - timedelta(hours=2),
    )
    await EventReminder.create(event=hearing, minutes_before=120, ask_confirmation=True, message=reminder)


async def processed(settings: Settings, fake_twilio: FakeTwilio, batches: list[list[int]] | None) -> Any:
    """The burst stored, then processed in one batch (None) or one text at a time; what it left."""
    async with running(settings, fake_twilio) as app:
        now = clock.now()
        app.state.clock = lambda: now
        await world(app.state.channel, now)
        await app.state.ingest.drained()
        lease = now + timedelta(minutes=5)  # claimed by the test: the app's own processor leaves them alone
        forms = [(params, None) for params in burst()]
        ids = await store_payloads(forms, now, [lease] * len(forms))
        payloads = await WebhookPayload.filter(id__in=ids).order_by("id")
        async with app.state.bus.subscribe() as subscription:
            for batch in [payloads] if batches is None else [[payload] for payload in payloads]:
                await inbound.receive_stored_many(app.state.outbox, batch, at=now)
            events = []
            while not subscription._queue.empty():
                events.append(subscription._queue.get_nowait())
        return await snapshot(), await described(events)


async def ranks(model: type[Model]) -> dict[int, int]:
    return {pk: n for n, pk in enumerate(await model.all().order_by("id").values_list("id", flat=True))}


async def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of TABLES: ids and foreign keys as ranks, a moment as whether it is set, random SIDs left out."""
    tables = {}
    for model in TABLES:
        meta = model._meta
        keys = {meta.fields_map[name].source_field: meta.fields_map[name].related_model for name in meta.fk_fields}
        rows = []
        for row in await model.all().order_by("id").values():
            values = []
            for column, value in sorted(row.items()):
                if column == "id":
                    value = (await ranks(model))[value]
                elif column in keys and value is not None:
                    value = (await ranks(keys[column]))[value]
                elif isinstance(value, datetime):
                    value = "set"
                elif column == "provider_sid" and value and not str(value).startswith("SM000"):
                    value = "random"  # the survey's text, made up by the fixture
                values.append((column, value))
            rows.append(tuple(values))
        tables[meta.db_table] = rows
    return tables


ID_OF = {
    "message_id": Message,
    "conversation_id": Conversation,
    "case_id": Case,
    "case_ids": Case,
    "alert_id": Alert,
    "campaign_id": Campaign,
    "recipient_id": CampaignRecipient,
    "event_id": CaseEvent,
    "media_id": Media,
    "conversation_ids": Conversation,
    "consent_event_ids": ConsentEvent,
}


async def described(events: Sequence[Event]) -> list[tuple[str, dict[str, Any]]]:
    """The events in order, their ids as ranks."""
    out = []
    for event in events:
        fields = dataclasses.asdict(event)
        fields.pop("seq", None)
        for name, value in fields.items():
            if name in ID_OF and value is not None:
                table = await ranks(ID_OF[name])
                fields[name] = [table[v] for v in value] if isinstance(value, list) else table[value]
            else:
                assert not name.endswith(("_id", "_ids")), f"{event.name}.{name}: say which table it points into"
        out.append((event.name, fields))
    return out


async def test_a_mixed_burst_processed_as_one_batch_leaves_what_one_text_at_a_time_leaves(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    together, together_events = await processed(settings, fake_twilio, None)
    alone, alone_events = await processed(settings, fake_twilio, [])
    for table, rows in together.items():
        assert rows == alone[table], table
    assert together_events == alone_events
    # The burst did what each kind of text does (so the comparison compares something).
    names = [name for name, _ in together_events]
    assert names.count("message.received") == 12  # 14 webhooks: a repeat, a refused one
    assert "survey.answered" in names and "case_event.changed" in names and "consent.changed" in names
    assert names.count("alert.raised") >= 5
    payloads = together["webhook_payload"]
    errors = [dict(row)["error"] for row in payloads]
    assert errors.count("duplicate") == 1 and sum(1 for e in errors if e and "characters long" in e) == 1
    assert all(dict(row)["processed_at"] == "set" for row in payloads)
    assert len(together["media"]) == 1 and len(together["consent_event"]) >= 1


# ---------------------------------------------------------------- statements


def statements_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "tortoise.db_client"]


async def plain_batch(app: Starlette, caplog: pytest.LogCaptureFixture, first: int, count: int) -> list[str]:
    now = clock.now()
    forms = [
        (inbound_params(numbered_sid(first + n), f"+1404556{n % 7:04d}", f"Plain text {n}"), None) for n in range(count)
    ]
    ids = await store_payloads(forms, now, [now + timedelta(minutes=5)] * count)
    payloads = await WebhookPayload.filter(id__in=ids).order_by("id")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        await inbound.receive_stored_many(app.state.outbox, payloads, at=now)
    assert await Message.filter(provider_sid__in=[f[0]["MessageSid"] for f in forms]).count() == count
    return statements_of(caplog)


async def test_a_batch_takes_as_many_statements_for_50_plain_texts_as_for_5(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    await plain_batch(app, caplog, 1000, 7)  # the seven senders' conversations opened
    five = await plain_batch(app, caplog, 2000, 5)
    fifty = await plain_batch(app, caplog, 3000, 50)
    assert len(fifty) == len(five), "\n".join(fifty)


async def test_a_batch_that_fails_is_tried_text_by_text_and_only_the_bad_text_stays_unprocessed(app: Starlette) -> None:
    now = clock.now()
    # A segment count no integer column holds: the batch's INSERT fails, and so does that text alone.
    bad = inbound_params(numbered_sid(2), MARIA, "Text 2", NumSegments="9" * 30)
    forms = [(inbound_params(numbered_sid(1), MARIA, "Text 1"), None), (bad, None)]
    forms.append((inbound_params(numbered_sid(3), MARIA, "Text 3"), None))
    ids = await store_payloads(forms, now, [now + timedelta(minutes=5)] * 3)
    await app.state.ingest._process_claimed(ids)
    bodies = await Message.filter(from_number=MARIA).order_by("id").values_list("body", flat=True)
    assert bodies == ["Text 1", "Text 3"]
    left = await WebhookPayload.get(id=ids[1])
    assert left.processed_at is None and (left.error or "").startswith("processing failed")
    assert await WebhookPayload.filter(id__in=[ids[0], ids[2]], processed_at__isnull=False, error=None).count() == 2
