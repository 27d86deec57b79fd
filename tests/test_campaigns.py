"""Bulk messages: the filter, the preview's exclusions, sending through the outbox (consent decided as each
text leaves, one bad number never stopping the rest), pause, resume and cancel, and the progress counts."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError

from inbox import clock
from inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Case,
    CaseNote,
    Channel,
    ClientPhone,
    Conversation,
    Exclusion,
    Message,
    MessageLink,
    MessagePurpose,
    MessageStatus,
    MessageStatusEvent,
    Office,
    OutboxState,
    PhoneKind,
    Staff,
)
from inbox.services import bulk, campaigns, linking, messaging, queue
from inbox.services.campaigns import CampaignInput, FilterWords
from inbox.services.outbox import Idle, claim_next
from inbox.services.unit_of_work import unit_of_work
from inbox.worker import send_due
from tests.support.campaigns import bulk_clients, fast_channels, numbered
from tests.support.fake_twilio import FakeTwilio
from tests.support.outbox import drain, no_quiet_hours
from tests.support.records import MakeCase
from tests.support.webhooks import status_callback, text_in

pytestmark = pytest.mark.usefixtures("app")


async def test_a_thousand_recipients_fifty_excluded_and_ten_invalid_numbers(
    app: Starlette, supervisor_staff: Staff, fake_twilio: FakeTwilio
) -> None:
    await no_quiet_hours()
    await fast_channels()
    await bulk_clients(950)
    await bulk_clients(40, first=950, okay_to_text=False)  # no consent
    no_mobile = await bulk_clients(10, first=990)
    await ClientPhone.filter(client_id__in=no_mobile).update(kind=PhoneKind.HOME)
    invalid = [numbered(n) for n in range(10)]
    for number in invalid:
        fake_twilio.reject[number] = 21211
    bus = app.state.bus

    campaign = await campaigns.create_campaign(
        bus, supervisor_staff, CampaignInput("Clinic closed", "Hi {client_first_name}, the clinic is closed Friday.")
    )
    left = await campaigns.left_out(campaign.id)
    assert len(left) == 50
    assert {r.reason for r in left} == {Exclusion.NO_CONSENT.value, Exclusion.NO_MOBILE.value}
    before = await campaigns.progress(campaign.id)
    assert (before.state, before.recipients, before.excluded) == (CampaignState.DRAFT, 950, 50)

    await campaigns.start(bus, supervisor_staff, campaign.id)
    assert await Message.filter(campaign_id=campaign.id).count() == 950
    await send_due(app.state.outbox)

    sent = [m for m in fake_twilio.messages if m["to"].startswith("+1404555")]
    assert len(sent) == 940 and len({m["to"] for m in sent}) == 940  # 950 tried, 10 refused: each number once
    assert fake_twilio.count_to(numbered(500)) == 1 and fake_twilio.count_to(numbered(980)) == 0
    assert sent[0]["body"] == "Hi Client, the clinic is closed Friday."
    after = await campaigns.progress(campaign.id)
    assert (after.state, after.waiting, after.failed, after.sent + after.delivered) == (
        CampaignState.FINISHED,
        0,
        10,
        940,
    )
    refused = await campaigns.refused_at_send(campaign.id)
    assert sorted(r.number or "" for r in refused) == invalid
    assert {r.reason for r in refused} == {Exclusion.INVALID_NUMBER.value}
    # A case note for each text Twilio took, none for the ten it refused (they stay in the SMS log, failed).
    assert await CaseNote.filter(message__campaign_id=campaign.id).count() == 940
    assert await MessageLink.filter(message__campaign_id=campaign.id).count() == 950


async def test_a_stop_between_preview_and_sending_is_never_sent_and_reported(
    app: Starlette, anonymous: httpx.AsyncClient, supervisor_staff: Staff, make_case: MakeCase, fake_twilio: FakeTwilio
) -> None:
    await no_quiet_hours()
    await fast_channels()
    maria = await make_case()
    other = await make_case(phone="+14045550199", name="Ana Ruiz")
    campaign = await campaigns.create_campaign(app.state.bus, supervisor_staff, CampaignInput("Note", "Office moved."))
    assert await campaigns.left_out(campaign.id) == []
    await text_in(anonymous, from_number="+14045387319", body="STOP")
    await campaigns.start(app.state.bus, supervisor_staff, campaign.id)
    await drain(app)

    assert fake_twilio.bodies_to("+14045387319").count("Office moved.") == 0
    assert fake_twilio.bodies_to("+14045550199") == ["Office moved."]
    stopped = await Message.get(campaign_id=campaign.id, to_number="+14045387319")
    assert stopped.status == MessageStatus.CANCELED and stopped.case_id == maria.case_id
    (reported,) = await campaigns.refused_at_send(campaign.id)
    assert (reported.client_id, reported.reason) == (maria.client_id, Exclusion.OPTED_OUT.value)
    progress = await campaigns.progress(campaign.id)
    assert (progress.canceled, progress.sent + progress.delivered, progress.state) == (1, 1, CampaignState.FINISHED)
    assert other.case_id != maria.case_id


async def test_each_text_is_in_the_thread_and_on_the_case(
    app: Starlette, anonymous: httpx.AsyncClient, supervisor_staff: Staff, make_case: MakeCase
) -> None:
    await no_quiet_hours()
    await fast_channels()
    maria = await make_case()
    await make_case(phone="+14045550177", name="New Thread")
    earlier = await text_in(anonymous, from_number="+14045387319", body="Any news?")
    campaign = await campaigns.create_campaign(
        app.state.bus, supervisor_staff, CampaignInput("Hi", "Case {case_number}: we have news.")
    )
    await campaigns.start(app.state.bus, supervisor_staff, campaign.id)
    message = await Message.get(campaign_id=campaign.id, to_number="+14045387319").prefetch_related("conversation")
    assert message.conversation_id == earlier.conversation_id  # the thread the client texted in
    assert message.body == f"Case {maria.number}: we have news."
    assert (message.purpose, message.case_id, message.sent_by_id) == (
        MessagePurpose.CAMPAIGN,
        maria.case_id,
        supervisor_staff.id,
    )
    assert message.conversation.phone == "+14045387319"
    assert message.conversation.last_message_preview == message.body
    assert await MessageLink.exists(message_id=message.id, case_id=maria.case_id)  # on the case (SMS log) at once
    assert not await CaseNote.exists(message_id=message.id)  # its case note comes as it leaves
    # Its first step, queued when made, is its creation time (no row per text); the timeline shows it.
    assert not await MessageStatusEvent.exists(message_id=message.id)
    await message.fetch_related("timeline")
    assert [(s.status, s.at) for s in messaging.timeline_of(message)] == [(MessageStatus.QUEUED, message.created_at)]
    recipient = await CampaignRecipient.get(campaign_id=campaign.id, case_id=maria.case_id)
    assert recipient.message_id == message.id
    new = await Message.get(campaign_id=campaign.id, to_number="+14045550177").prefetch_related("conversation")
    assert new.conversation.last_message_preview.endswith("we have news.") and new.conversation.last_direction

    await drain(app)
    await message.refresh_from_db()
    note = await CaseNote.get(message_id=message.id, case_id=maria.case_id)
    assert (note.body, note.at) == (message.body, message.first_attempt_at)
    callback = status_callback(str(message.provider_sid), "queued", to=message.to_number)
    assert (await anonymous.post(**callback)).status_code == 200  # Twilio's "queued": no second step
    await message.fetch_related("timeline")
    steps = messaging.timeline_of(message)  # once, at its creation, whatever Twilio answered
    assert (steps[0].status, steps[0].at) == (MessageStatus.QUEUED, message.created_at)
    assert [s.status for s in steps].count(MessageStatus.QUEUED) == 1
    assert note.author == f"{supervisor_staff.name} (bulk message “Hi”)"
    assert await CaseNote.filter(message_id=new.id).count() == 1


async def test_a_text_taken_off_its_case_before_it_leaves_gets_no_case_note(
    app: Starlette, supervisor_staff: Staff, make_case: MakeCase
) -> None:
    await no_quiet_hours()
    await fast_channels()
    maria = await make_case()
    campaign = await campaigns.create_campaign(app.state.bus, supervisor_staff, CampaignInput("Off", "Hello"))
    await campaigns.start(app.state.bus, supervisor_staff, campaign.id)
    message = await Message.get(campaign_id=campaign.id)
    assert await linking.unlink(message, maria.case_id, supervisor_staff) == 1
    assert await drain(app) == 1
    assert (await Message.get(id=message.id)).provider_sid is not None  # it went
    assert not await CaseNote.exists(message_id=message.id)  # but is no longer on the case: no note there


async def test_duplicates_opted_out_and_the_filter(
    app: Starlette, supervisor_staff: Staff, make_case: MakeCase, make_staff
) -> None:
    advocate = await make_staff("advocate")
    shared = await make_case(assignee=advocate)
    await make_case(name="Maria's brother")  # the same number: one text per number
    out = await make_case(phone="+14045550111", name="Out")
    await ClientPhone.filter(number="+14045550111").update(opted_out=True)
    closed = await make_case(phone="+14045550122", name="Closed")
    await Case.filter(id=closed.case_id).update(closed_on=date.today() - timedelta(days=3))
    bus = app.state.bus

    every = await campaigns.create_campaign(bus, supervisor_staff, CampaignInput("All", "Hello"))
    reasons = {r.client_id: r.reason for r in await campaigns.left_out(every.id)}
    assert reasons == {shared.client_id + 1: Exclusion.DUPLICATE.value, out.client_id: Exclusion.OPTED_OUT.value}

    words = FilterWords(case_state="closed", closed_after=(date.today() - timedelta(days=5)).isoformat())
    only_closed = await campaigns.create_campaign(bus, supervisor_staff, CampaignInput("Closed", "Hi", words))
    assert await CampaignRecipient.filter(campaign_id=only_closed.id).values_list("case_id", flat=True) == [
        closed.case_id
    ]
    mine = await campaigns.create_campaign(
        bus, supervisor_staff, CampaignInput("Mine", "Hi", FilterWords(assignee_email=advocate.email))
    )
    assert await CampaignRecipient.filter(campaign_id=mine.id).values_list("case_id", flat=True) == [shared.case_id]

    with pytest.raises(campaigns.ValidationFailed) as bad:
        await campaigns.create_campaign(
            bus, supervisor_staff, CampaignInput("", "Hi {event_date}", FilterWords(office="Nowhere", case_state="x"))
        )
    assert set(bad.value.fields) == {"name", "body", "office", "case_state"}
    with pytest.raises(campaigns.Forbidden):
        await campaigns.create_campaign(bus, advocate, CampaignInput("No", "Hi"))


async def test_pause_holds_resume_sends_cancel_stops(
    app: Starlette, supervisor_staff: Staff, fake_twilio: FakeTwilio
) -> None:
    await no_quiet_hours()
    await fast_channels()
    await bulk_clients(6)
    bus = app.state.bus
    campaign = await campaigns.create_campaign(bus, supervisor_staff, CampaignInput("P", "Paused text"))
    await campaigns.start(bus, supervisor_staff, campaign.id)
    assert await send_due(app.state.outbox, limit=2) == 2
    await campaigns.pause(bus, supervisor_staff, campaign.id)
    assert await Message.filter(campaign_id=campaign.id, outbox_state=OutboxState.HELD).count() == 4
    assert isinstance(await claim_next(app.state.outbox), Idle)  # held texts are never claimed
    rules = app.state.outbox.rules
    for state in queue.QueueState:  # nor on the SMS queue (nor stuck) while paused
        assert not [e for e in await queue.texts_in_state(supervisor_staff, state, rules) if e.message.campaign_id]
    paused = await campaigns.progress(campaign.id)
    assert (paused.state, paused.waiting, paused.finishes_at) == (CampaignState.PAUSED, 4, None)

    await campaigns.resume(bus, supervisor_staff, campaign.id)
    assert await send_due(app.state.outbox, limit=1) == 1
    await campaigns.cancel(bus, supervisor_staff, campaign.id)
    assert await send_due(app.state.outbox) == 0
    assert len([m for m in fake_twilio.messages if m["body"] == "Paused text"]) == 3
    done = await campaigns.progress(campaign.id)
    assert (done.state, done.canceled, done.waiting) == (CampaignState.CANCELED, 3, 0)
    assert await MessageStatusEvent.filter(message__campaign_id=campaign.id, status="canceled").count() == 3
    assert await CaseNote.filter(message__campaign_id=campaign.id).count() == 3  # only the texts that went
    assert await campaigns.refused_at_send(campaign.id) == []  # cancelled with the campaign: not "left out"
    with pytest.raises(campaigns.Refused):
        await campaigns.resume(bus, supervisor_staff, campaign.id)
    assert (await Campaign.get(id=campaign.id)).canceled_at is not None


async def _fail_inserts_into(table: str) -> None:
    """A trigger that makes every insert into `table` fail, as a full disk or a lost connection would midway."""
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        await connection.execute_script(
            "CREATE FUNCTION refuse_row() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$ LANGUAGE plpgsql; "
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_row()"
        )
    else:
        await connection.execute_script(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )


async def _drop_failing_trigger(table: str) -> None:
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        await connection.execute_script(f"DROP TRIGGER refuse ON {table}; DROP FUNCTION refuse_row()")
    else:
        await connection.execute_script("DROP TRIGGER refuse")


async def test_a_failure_while_starting_leaves_nothing_half_written(app: Starlette, supervisor_staff: Staff) -> None:
    """The texts and new threads go in by COPY on PostgreSQL: on the unit of work's own connection and transaction,
    so a later failure (here: the links) takes them back with everything else."""
    await bulk_clients(30)
    bus = app.state.bus
    campaign = await campaigns.create_campaign(bus, supervisor_staff, CampaignInput("Atomic", "Hello"))
    conversations = await Conversation.all().count()
    await _fail_inserts_into("message_link")
    try:
        with pytest.raises((IntegrityError, OperationalError), match="refused"):
            await campaigns.start(bus, supervisor_staff, campaign.id)
    finally:
        await _drop_failing_trigger("message_link")

    assert await Message.filter(campaign_id=campaign.id).count() == 0
    assert await Conversation.all().count() == conversations
    assert await MessageLink.all().count() == 0 and await MessageStatusEvent.all().count() == 0
    assert await CampaignRecipient.filter(campaign_id=campaign.id, message_id__not_isnull=True).count() == 0
    assert (await Campaign.get(id=campaign.id)).state == CampaignState.DRAFT
    await campaigns.start(bus, supervisor_staff, campaign.id)  # and it can be started again, whole
    assert await Message.filter(campaign_id=campaign.id).count() == 30
    assert await MessageLink.filter(message__campaign_id=campaign.id).count() == 30
    assert await Conversation.all().count() == conversations + 30


async def test_bulk_inserts_keep_a_row_already_there(app: Starlette) -> None:
    """New threads are inserted ON CONFLICT DO NOTHING (a client's text may open one meanwhile); COPY has no such
    clause, so on PostgreSQL a conflict rolls back to its savepoint and the plain statement runs instead."""
    channel = await Channel.all().first()
    assert channel is not None
    kept = await Conversation.create(channel=channel, phone=numbered(1), last_message_preview="Theirs")
    columns = {"channel_id": "int", "phone": "text", "last_message_preview": "text", "created_at": "timestamptz"}
    now = clock.now()
    async with unit_of_work(app.state.bus):
        # What they answer decides whether the campaign reads its new threads back (a row left out: it must).
        assert not await bulk.insert_rows(
            "conversation",
            columns,
            [(channel.id, numbered(n), "Ours", now) for n in range(3)],
            on_conflict_nothing=True,
        )
        assert await bulk.insert_rows(
            "conversation", columns, [(channel.id, numbered(7), "Ours", now)], on_conflict_nothing=True
        )
    rows = await Conversation.filter(channel=channel).order_by("phone").values_list("phone", "last_message_preview")
    assert [r for r in rows if r[0].startswith("+1404555")] == [
        (numbered(0), "Ours"),
        (numbered(1), "Theirs"),
        (numbered(2), "Ours"),
        (numbered(7), "Ours"),
    ]
    assert (await Conversation.get(id=kept.id)).last_message_preview == "Theirs"


async def test_ids_drawn_before_the_insert_are_new_and_not_reused(app: Starlette) -> None:
    """The campaign's texts and threads go in with ids drawn beforehand (no read-back): they must be above every
    id ever given (a deleted thread's too, as the database itself would), distinct, and take the rows."""
    channel = await Channel.all().first()
    assert channel is not None
    gone = await Conversation.create(channel=channel, phone=numbered(90))
    await gone.delete()
    columns = messaging.CONVERSATION_COLUMNS
    async with unit_of_work(app.state.bus):
        await Channel.filter(id=channel.id).update(throughput=channel.throughput)  # the unit of work has written
        ids = await bulk.reserve_ids("conversation", 3)
        assert len(set(ids)) == 3 and min(ids) > gone.id
        assert await bulk.insert_rows(
            "conversation", columns, [(cid, channel.id, numbered(n), "", clock.now()) for n, cid in enumerate(ids)]
        )
    after = await Conversation.create(channel=channel, phone=numbered(91))  # the database's own next id follows
    assert after.id > max(ids)
    assert await Conversation.filter(id__in=ids).count() == 3


async def test_the_preview_chooses_each_clients_number_by_the_rules(
    app: Starlette, supervisor_staff: Staff, make_case: MakeCase
) -> None:
    """The recipients are decided by one statement on the server: the first mobile that may be texted (not simply
    the first), consent across every record holding a number, and a client with no mobile left out as such."""
    second = await make_case(phone="+14045550201", okay_to_text=False, name="Second Mobile")
    await ClientPhone.create(
        client_id=second.client_id, number="+14045550202", kind=PhoneKind.MOBILE, okay_to_text=True
    )
    neither = await make_case(phone="+14045550211", name="Neither")
    await ClientPhone.filter(number="+14045550211").update(opted_out=True)
    await ClientPhone.create(
        client_id=neither.client_id, number="+14045550212", kind=PhoneKind.MOBILE, okay_to_text=False
    )
    elsewhere = await make_case(phone="+14045550221", okay_to_text=False, name="Consent Elsewhere")
    landline = await make_case(phone="+14045550221", name="Home Phone")  # the same number, okay, but not a mobile
    await ClientPhone.filter(client_id=landline.client_id).update(kind=PhoneKind.HOME)

    campaign = await campaigns.create_campaign(app.state.bus, supervisor_staff, CampaignInput("Rules", "Hello"))
    rows = {
        client_id: (number, excluded)
        for client_id, number, excluded in await CampaignRecipient.filter(campaign_id=campaign.id).values_list(
            "client_id", "number", "excluded"
        )
    }
    assert rows == {
        second.client_id: ("+14045550202", None),
        neither.client_id: ("+14045550211", Exclusion.OPTED_OUT.value),
        elsewhere.client_id: ("+14045550221", None),
        landline.client_id: (None, Exclusion.NO_MOBILE.value),
    }
    in_order = await CampaignRecipient.filter(campaign_id=campaign.id).order_by("id").values_list("case_id", flat=True)
    assert in_order == sorted(in_order)  # slots follow the cases' order


async def test_a_new_thread_opens_on_the_number_of_the_cases_office(
    app: Starlette, supervisor_staff: Staff, make_case: MakeCase
) -> None:
    """A client with no thread yet is texted from their case's office's number (else the default number)."""
    office = await Office.create(name="Eastside")
    eastside = await Channel.create(
        label="Eastside line", account_sid="AC" + "4" * 32, from_number="+18005550144", office=office
    )
    theirs = await make_case(phone="+14045550301", name="East Side")
    await Case.filter(id=theirs.case_id).update(office_id=office.id)
    await make_case(phone="+14045550302", name="No Office")
    campaign = await campaigns.create_campaign(app.state.bus, supervisor_staff, CampaignInput("Offices", "Hello"))
    await campaigns.start(app.state.bus, supervisor_staff, campaign.id)

    threads = dict(
        await Conversation.filter(phone__in=["+14045550301", "+14045550302"]).values_list("phone", "channel_id")
    )
    default = (await Channel.all().order_by("id").first()).id  # type: ignore[union-attr]
    assert threads == {"+14045550301": eastside.id, "+14045550302": default}
    texts = dict(await Message.filter(campaign_id=campaign.id).values_list("to_number", "from_number"))
    assert texts["+14045550301"] == "+18005550144"
