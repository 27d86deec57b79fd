"""Filing and alerting a batch of inbound texts at once (issue 11, fast ingest): `link_inbound_many` and
`raise_alerts_many` leave exactly the rows the single functions leave when called text by text, and take as
many statements for 50 texts as for 5."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from inbox.events import AlertRaised
from inbox.models import (
    Alert,
    AlertAssignee,
    AlertPolicy,
    CaseNote,
    Channel,
    Direction,
    LinkingPolicy,
    Message,
    MessageLink,
    MessageStatus,
    Organisation,
    Staff,
    flat_values,
)
from inbox.services import alerts, linking, messaging, settings_cache
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.services.unit_of_work import unit_of_work
from inbox.settings import Settings
from inbox.sms.base import InboundText
from tests.support.apps import running
from tests.support.channels import SECOND_NUMBER, SECOND_SID
from tests.support.events import published
from tests.support.fake_twilio import FakeTwilio
from tests.support.postgres import scratch_database
from tests.support.records import MARIA
from tests.support.staff import PASSWORD, MakeStaff
from tests.support.webhooks import new_sid, text_in

XAVIER = "+14045550100"
JUAN = "+14045550188"
LENA = "+14045550199"
STRANGER = "+14045550777"


class RolledBack(Exception):
    """Raised to undo a unit of work once its rows have been read."""


async def set_policies(linking_policy: LinkingPolicy, alert_policy: AlertPolicy) -> None:
    await Organisation.filter().update(linking_policy=linking_policy, alert_policy=alert_policy)
    settings_cache.forget()  # written past the services: this process's copy is stale


async def new_case(name: str, phone: str, number: str) -> tuple[int, int]:
    """A client with the number and a case of theirs: (client id, case id)."""
    client = await create_client(name=name, phones=[PhoneInput(phone, "mobile", True)])
    return client.id, (await create_case(number=number, title=f"{name}'s case", client_id=client.id)).id


async def sent_from_case(channel: Channel, case_id: int, to: str, status: MessageStatus = MessageStatus.SENT) -> None:
    """A text a case sent to the number (the rows the linking rules read)."""
    conversation = await messaging.conversation_with(channel, to)
    await Message.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        from_number=channel.from_number,
        to_number=to,
        body="Your hearing is Monday at 9.",
        status=status,
        case_id=case_id,
    )


async def stored_texts(app: Starlette, texts: list[tuple[Channel, str]]) -> list[Message]:
    """New inbound texts stored (as the processor stores them) and neither filed nor alerted yet."""
    arriving = [
        messaging.Arriving(
            channel, InboundText(new_sid(), channel.account_sid, sender, channel.from_number or "", f"text {n}"), sender
        )
        for n, (channel, sender) in enumerate(texts)
    ]
    async with unit_of_work(app.state.bus):
        return await messaging.store_inbound_many(arriving)


@dataclass
class Scene:
    staff: dict[str, Staff]
    cases: dict[str, int]
    batch: list[Message]


async def scene(app: Starlette, anonymous: httpx.AsyncClient, make_staff: MakeStaff) -> Scene:
    """One sender with several texts on two channels, whose number is on two clients' records (three cases) and
    was texted by a fourth case; a sender whose open alert counts the batch's texts (and has gained an assignee
    since); one whose alert was dismissed; one on no case. An ended primary assignment on Maria's case."""
    staff = {name: await make_staff("advocate", name) for name in ("Ana", "Ben", "Cleo")}
    supervisor = await make_staff("supervisor")
    maria, housing = await new_case("Maria Lopez", MARIA, "16E-1")
    cases = {
        "housing": housing,
        "benefits": (await create_case(number="16E-2", title="Benefits", client_id=maria)).id,
        "rosa": (await new_case("Rosa Lopez", MARIA, "16E-3"))[1],  # the same mobile on her daughter's record
        "xavier": (await new_case("Xavier Diaz", XAVIER, "16E-4"))[1],
        "juan": (await new_case("Juan Perez", JUAN, "16E-5"))[1],
        "lena": (await new_case("Lena Ortiz", LENA, "16E-6"))[1],
    }
    for case, name, primary, end in (
        ("housing", "Ana", True, None),
        ("housing", "Ben", False, None),
        ("housing", "Cleo", True, date.today() - timedelta(days=1)),  # ended: alerted no more
        ("benefits", "Ben", True, None),
        ("rosa", "Cleo", False, None),
        ("juan", "Ana", True, None),
        ("lena", "Ben", True, None),
    ):
        start = date.today() - timedelta(days=90)
        await create_assignment(
            case_id=cases[case], staff_email=staff[name].email, primary=primary, start=start, end=end
        )
    channel = app.state.channel
    second = await Channel.create(label="Housing unit", account_sid=SECOND_SID, from_number=SECOND_NUMBER)
    await sent_from_case(channel, cases["xavier"], MARIA)  # a witness's case texted Maria's number
    await sent_from_case(channel, cases["housing"], MARIA)  # the last text to it
    await sent_from_case(channel, cases["benefits"], MARIA, MessageStatus.SCHEDULED)  # not sent: no rule

    # Through the real webhook: Juan's text waits on an open alert, Lena's was dismissed.
    juan = await text_in(anonymous, JUAN, "Are you there?")
    await create_assignment(case_id=cases["juan"], staff_email=staff["Ben"].email, primary=True)  # since then
    lena = await text_in(anonymous, LENA, "Thanks")
    await alerts.dismiss(app.state.bus, supervisor, (await Alert.get(message_id=lena.id)).id)
    assert (await Alert.get(message_id=juan.id)).dismissed_at is None

    batch = await stored_texts(
        app,
        [
            (channel, MARIA),
            (channel, JUAN),
            (second, MARIA),
            (channel, STRANGER),
            (channel, MARIA),
            (channel, LENA),
            (channel, JUAN),
            (second, MARIA),
            (channel, MARIA),
        ],
    )
    return Scene(staff, cases, batch)


async def filed_rows() -> dict[str, list[tuple[Any, ...]]]:
    """What filing and alerting wrote, ids aside (an alert is known by its case and latest text)."""
    by_id = {
        alert_id: (case_id, message_id)
        for alert_id, case_id, message_id in await Alert.all().values_list("id", "case_id", "message_id")
    }
    return {
        "links": sorted(await MessageLink.all().values_list("message_id", "case_id", "reason", "linked_by_id")),
        "notes": sorted(await CaseNote.all().values_list("case_id", "message_id", "author", "body", "at")),
        "alerts": sorted(
            await Alert.all().values_list(
                "case_id", "message_id", "text_count", "dismissed_at", "dismissed_by_id", "dismissed_because"
            )
        ),
        "addressed": sorted(
            (by_id[alert_id], staff_id)
            for alert_id, staff_id in await AlertAssignee.all().values_list("alert_id", "staff_id")
        ),
    }


async def one_by_one(app: Starlette, batch: list[Message]) -> tuple[list[list[int]], dict[str, list[tuple[Any, ...]]]]:
    """The single functions called text by text, as the processor called them before; the rows they leave,
    then undone (the twin of the batch's run, from the same rows)."""
    try:
        async with unit_of_work(app.state.bus):
            landed = []
            for message in batch:
                case_ids = await linking.link_inbound(message)
                await alerts.raise_alerts(message, case_ids)
                landed.append(case_ids)
            rows = await filed_rows()
            raise RolledBack
    except RolledBack:
        pass
    assert not await MessageLink.filter(message_id__in=[m.id for m in batch]).exists()  # undone
    return landed, rows


async def at_once(app: Starlette, batch: list[Message]) -> list[list[int]]:
    async with unit_of_work(app.state.bus):
        landed = await linking.link_inbound_many(batch)
        await alerts.raise_alerts_many(list(zip(batch, landed, strict=True)))
    return landed


POLICIES = [
    (LinkingPolicy.DEFAULT, AlertPolicy.PRIMARY),
    (LinkingPolicy.DEFAULT, AlertPolicy.ALL),
    (LinkingPolicy.BEST_GUESS, AlertPolicy.PRIMARY),
    (LinkingPolicy.BEST_GUESS, AlertPolicy.ALL),
]


@pytest.mark.parametrize(("linking_policy", "alert_policy"), POLICIES)
async def test_a_batch_leaves_the_rows_the_texts_leave_one_by_one(
    app: Starlette,
    anonymous: httpx.AsyncClient,
    make_staff: MakeStaff,
    linking_policy: LinkingPolicy,
    alert_policy: AlertPolicy,
) -> None:
    await set_policies(linking_policy, alert_policy)
    world = await scene(app, anonymous, make_staff)
    singly, single_rows = await one_by_one(app, world.batch)

    async with app.state.bus.subscribe() as subscription:
        together = await at_once(app, world.batch)
        events = [event for event in await published(subscription) if isinstance(event, AlertRaised)]

    assert together == singly
    rows = await filed_rows()
    assert rows == single_rows
    # Not two empty runs: the batch filed and alerted what the scene sets up.
    maria_first, _, _, stranger, *_, juan_last, maria_on_second, maria_last = world.batch
    cases, staff = world.cases, world.staff
    if linking_policy == LinkingPolicy.DEFAULT:
        assert together[0] == [cases["housing"], cases["xavier"], cases["rosa"], cases["benefits"]]
        note = await CaseNote.get(message_id=maria_first.id, case_id=cases["rosa"])
        assert note.author == "Maria Lopez / Rosa Lopez (text from (404) 538-7319)"
    else:
        assert together[0] == [cases["housing"]]
    assert together[3] == [] and not await MessageLink.filter(message_id=stranger.id).exists()
    juan = await Alert.get(case_id=cases["juan"], dismissed_at=None)
    assert (juan.text_count, juan.message_id) == (3, juan_last.id)
    addressed = set(await flat_values(AlertAssignee.filter(alert_id=juan.id).values_list("staff_id", flat=True)))
    assert addressed == {staff["Ana"].id, staff["Ben"].id}  # Ben, assigned since the alert, is added
    # Maria's texts on each channel make one alert per case, at the channel's latest text.
    housing = await Alert.filter(case_id=cases["housing"]).order_by("id").values_list("message_id", "text_count")
    assert housing == [(maria_last.id, 3), (maria_on_second.id, 2)]
    housing_staff = await flat_values(
        AlertAssignee.filter(alert__case_id=cases["housing"]).values_list("staff_id", flat=True)
    )
    expected = {staff["Ana"].id} if alert_policy == AlertPolicy.PRIMARY else {staff["Ana"].id, staff["Ben"].id}
    assert set(housing_staff) == expected  # Cleo's assignment has ended
    assert await Alert.filter(case_id=cases["lena"]).count() == 2  # the dismissed one and a new one

    # One event per alert touched, with its final count and latest text.
    touched = await Alert.filter(message_id__in=[m.id for m in world.batch])
    assert sorted((e.alert_id, e.case_id, e.message_id, e.count) for e in events) == sorted(
        (a.id, a.case_id, a.message_id, a.text_count) for a in touched
    )


async def test_a_batch_of_fifty_takes_the_statements_a_batch_of_five_takes(
    app: Starlette, anonymous: httpx.AsyncClient, make_staff: MakeStaff, caplog: pytest.LogCaptureFixture
) -> None:
    advocate = await make_staff("advocate")
    senders = [f"+1404555{n:04d}" for n in range(10)]
    for n, number in enumerate(senders):
        _, case_id = await new_case(f"Client {n}", number, f"17E-{n}")
        await create_assignment(case_id=case_id, staff_email=advocate.email, primary=True)
    await text_in(anonymous, senders[0], "Hello?")  # an open alert both batches count on
    channel = app.state.channel
    strangers = [f"+1404666{n:04d}" for n in range(5)]
    five = await stored_texts(
        app, [(channel, number) for number in (senders[0], senders[1], senders[2], strangers[0], senders[1])]
    )
    fifty = await stored_texts(app, [(channel, (senders + strangers)[n % 15]) for n in range(50)])

    async def statements(batch: list[Message]) -> int:
        async with unit_of_work(app.state.bus):
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
                landed = await linking.link_inbound_many(batch)
                await alerts.raise_alerts_many(list(zip(batch, landed, strict=True)))
            return sum(1 for record in caplog.records if record.name == "tortoise.db_client")

    assert await statements(five) == await statements(fifty) <= 12
    assert await MessageLink.filter(message_id__in=[m.id for m in fifty]).count() == 35  # 5 of every 15 are strangers
    assert (await Alert.get(message__from_number=senders[0], dismissed_at=None)).text_count == 1 + 1 + 4


async def test_two_batches_at_once_on_postgresql_count_on_one_alert_per_conversation(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    """Two processors' batches sharing two conversations, in opposite orders: the conversations' rows are locked in
    one statement in id order, so the second batch waits for the first one's alerts (and neither deadlocks)."""
    async with scratch_database("filing") as url, running(settings.with_changes(database_url=url), fake_twilio) as app:
        advocate, _ = await create_staff(email="ana@example.org", name="Ana Ruiz", role="advocate", password=PASSWORD)
        for n, number in enumerate((JUAN, LENA)):
            _, case_id = await new_case(f"Client {n}", number, f"18E-{n}")
            await create_assignment(case_id=case_id, staff_email=advocate.email, primary=True)
        channel = app.state.channel
        first = await stored_texts(app, [(channel, JUAN), (channel, LENA)])
        second = await stored_texts(app, [(channel, LENA), (channel, JUAN)])

        async def process(batch: list[Message]) -> None:
            async with unit_of_work(app.state.bus):
                landed = await linking.link_inbound_many(batch)
                await alerts.raise_alerts_many(list(zip(batch, landed, strict=True)))

        async with asyncio.timeout(20):
            await asyncio.gather(process(first), process(second))

        rows = await Alert.filter(dismissed_at=None).order_by("id").values_list("message__from_number", "text_count")
        assert sorted(rows) == [(JUAN, 2), (LENA, 2)]
