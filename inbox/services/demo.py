"""Sample data for `inbox demo`: an office, one staff member per role, clients, cases and texts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from inbox import clock
from inbox.events import Bus
from inbox.models import (
    Alert,
    Campaign,
    CampaignRecipient,
    CampaignState,
    Case,
    Channel,
    ConsentEvent,
    ConsentSource,
    Conversation,
    Direction,
    Exclusion,
    LinkReason,
    Message,
    MessagePurpose,
    MessageStatus,
    MessageStatusEvent,
    Office,
    OutboxState,
    QuickEntry,
    Staff,
)
from inbox.segments import count_segments
from inbox.services import alerts, case_events, linking, surveys, tasks
from inbox.services.channels import default_channel
from inbox.services.directory import (
    PhoneInput,
    create_assignment,
    create_case,
    create_client,
)
from inbox.services.staff import create_staff
from inbox.services.unit_of_work import unit_of_work

# The demo fills the database before any tab is open: the events its texts cause reach no one.
NOBODY_LISTENING = Bus()

STAFF = [
    ("alice@example.org", "Alice Advocate", "advocate"),
    ("sam@example.org", "Sam Supervisor", "supervisor"),
    ("ada@example.org", "Ada Admin", "admin"),
]
# Alice's own mobile, on her profile: her task and calendar reminders are texted to it (staff_reminders).
ALICE_MOBILE = "+14045550177"

# (name, number, okay to text, case number, title, legal problem)
CLIENTS = [
    ("Maria Lopez", "+14045387319", True, "16E-20010101", "Eviction defence", "Housing"),
    ("James Smith", "+14045550123", True, "16E-20010102", "SNAP benefits appeal", "Benefits"),
    ("Dana Whitfield", "+14045550106", True, "16E-20010103", "Wage claim", "Employment"),
    ("Lee Park", "+14045550145", False, "16E-20010104", "Custody", "Family"),
    # Ends in 0006: the simulator plays a landline, so texts to Pat fail with 30006.
    ("Pat Reyes", "+14045550006", True, "16E-20010105", "Debt collection", "Consumer"),
    # Ends in 0429: the simulator plays a busy Twilio (429 twice), so a text to Rosa shows its retries
    # ("Twilio is busy — trying again at …") and then goes.
    ("Rosa Diaz", "+14045550429", True, "16E-20010106", "Utility shut-off", "Housing"),
]
# Quick entries to try from the composer's picker: (name, language or None for the default, text).
QUICK_ENTRIES = [
    (
        "Hearing reminder",
        None,
        "Hi {client_first_name}, a reminder from {office_name}: your hearing on case "
        "{case_number} is coming up. Reply here with any questions. — {staff_first_name}",
    ),
    (
        "Hearing reminder",
        "es",
        "Hola {client_first_name}, le recordamos de {office_name}: su audiencia del caso "
        "{case_number} se acerca. Responda aquí si tiene preguntas. — {staff_first_name}",
    ),
    (
        "Documents needed",
        None,
        "Hi {client_first_name}, please send a photo of any letters or papers about "
        "your case ({case_title}) by replying to this text.",
    ),
    (
        "Call us",
        None,
        "Hi {client_first_name}, please call {office_name} at {office_phone} about your case "
        "{case_number}. — {staff_name}",
    ),
]
# Lee Park's case is not Alice's: signed in as Alice you do not see Lee; as Sam or Ada you do.
UNASSIGNED = {"16E-20010104"}


@dataclass(frozen=True)
class DemoLogin:
    email: str
    name: str
    role: str
    password: str


async def create_demo(channel: Channel | None = None) -> list[DemoLogin]:
    """Idempotent enough to run twice: existing staff keep their passwords and are not listed."""
    office, _ = await Office.get_or_create(name="Atlanta Legal Aid (demo)", defaults={"phone": "+14045550100"})
    logins = []
    for email, name, role in STAFF:
        if await Staff.exists(email=email):
            continue
        password = secrets.token_urlsafe(9)
        mobile = ALICE_MOBILE if email == "alice@example.org" else None
        await create_staff(email=email, name=name, role=role, password=password, office=office, mobile=mobile)
        logins.append(DemoLogin(email, name, role, password))
    channel = channel or await default_channel()
    for index, (name, number, okay, case_number, title, problem) in enumerate(CLIENTS):
        if await Message.exists(conversation__phone=number) or await Conversation.exists(phone=number):
            continue
        if await Case.exists(number=case_number):  # a client never texted (no consent) is already there
            continue
        client = await create_client(
            name=name, phones=[PhoneInput(number, "mobile", okay)], source=ConsentSource.IMPORT
        )
        # Imported before the sample texts below, so the thread's consent notice comes first.
        await ConsentEvent.filter(client_phone__client_id=client.id).update(at=clock.now() - timedelta(days=1))
        case = await create_case(
            number=case_number, title=title, client_id=client.id, legal_problem=problem, office=office.name
        )
        if case_number not in UNASSIGNED:
            await create_assignment(case_id=case.id, staff_email="alice@example.org", primary=True)
        if okay and index < 3:
            await _sample_exchange(channel, number, case.id, index)
            if index == 0:
                await _scheduled_reminder(channel, number, case.id)
                await _hearing_tomorrow(case.id)
                await _tasks(case.id)
    await _unknown_sender(channel)
    await _survey(channel)
    await _quick_entries()
    return logins


async def _quick_entries() -> None:
    for position, (name, language, body) in enumerate(QUICK_ENTRIES):
        if not await QuickEntry.exists(name=name, language=language):
            await QuickEntry.create(name=name, language=language, body=body, position=position)


async def _sample_exchange(channel: Channel, number: str, case_id: int, index: int) -> None:
    alice = await Staff.get(email="alice@example.org")
    start = clock.now() - timedelta(hours=5 - index)
    conversation, _ = await Conversation.get_or_create(channel=channel, phone=number)
    texts = [
        (
            Direction.OUTBOUND,
            "Your hearing is Monday at 9 a.m. at the county courthouse. Reply here with any questions.",
        ),
        (Direction.INBOUND, "Which courtroom?"),
    ]
    for offset, (direction, body) in enumerate(texts):
        at = start + timedelta(minutes=offset * 7)
        outbound = direction == Direction.OUTBOUND
        message = await Message.create(
            conversation=conversation,
            direction=direction,
            from_number=channel.from_number if outbound else number,
            to_number=number if outbound else channel.from_number,
            body=body,
            status=MessageStatus.DELIVERED if outbound else MessageStatus.RECEIVED,
            provider_sid="SMdemo" + secrets.token_hex(14),
            segments=count_segments(body).segments,
            encoding=count_segments(body).encoding,
            sent_by=alice if outbound else None,
            case_id=case_id if outbound else None,
        )
        await Message.filter(id=message.id).update(created_at=at)
        steps = (
            [MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED]
            if outbound
            else [MessageStatus.RECEIVED]
        )
        for step_index, step in enumerate(steps):
            await MessageStatusEvent.create(message=message, status=step, at=at + timedelta(seconds=step_index))
        message = await Message.get(id=message.id)  # with its back-dated time, for the case note
        # Filed and alerted through the same rules a live text follows.
        if outbound:
            await linking.file_on_case(
                message, case_id, LinkReason.SENT_FROM, linking.note_author(message, [], alice), alice
            )
        else:
            async with unit_of_work(NOBODY_LISTENING):
                await alerts.raise_alerts(message, await linking.link_inbound(message))
            await _alerts_raised_when_texted(message)
        conversation.last_message_at = at
        conversation.last_message_preview = body
        conversation.last_direction = direction
    await conversation.save()


async def _scheduled_reminder(channel: Channel, number: str, case_id: int) -> None:
    """A reminder waiting in the SMS queue for tomorrow: texting STOP from the client phone cancels it."""
    alice = await Staff.get(email="alice@example.org")
    body = "Reminder: your hearing is tomorrow at 9 a.m. at the county courthouse, courtroom 4B."
    send_at = clock.now().replace(hour=14, minute=0, second=0, microsecond=0) + timedelta(days=1)
    message = await Message.create(
        conversation=(await Conversation.get(channel=channel, phone=number)),
        direction=Direction.OUTBOUND,
        from_number=channel.from_number or "",
        to_number=number,
        body=body,
        status=MessageStatus.SCHEDULED,
        segments=count_segments(body).segments,
        encoding=count_segments(body).encoding,
        sent_by=alice,
        case_id=case_id,
        send_at=send_at,
        outbox_state=OutboxState.WAITING,  # in the outbox, due at its time
        next_attempt_at=send_at,
    )
    await MessageStatusEvent.create(message=message, status=MessageStatus.SCHEDULED, at=clock.now())
    await linking.file_on_case(message, case_id, LinkReason.SENT_FROM, linking.note_author(message, [], alice), alice)


async def _hearing_tomorrow(case_id: int) -> None:
    """A hearing tomorrow at 10 a.m. (Atlanta) with its client reminders on the queue: the day before at the
    same time (skipped once that has passed) and two hours before, each asking the client to reply C."""
    alice = await Staff.get(email="alice@example.org")
    zone = ZoneInfo("America/New_York")
    day = clock.now().astimezone(zone).date() + timedelta(days=1)
    hearing = case_events.EventInput(
        kind="hearing",
        title="Eviction hearing",
        starts_at=datetime.combine(day, time(10), tzinfo=zone),
        place="Fulton County Courthouse, courtroom 4B",
        attendee_emails=("alice@example.org",),
        reminders=(
            case_events.ReminderSpec(24 * 60, ask_confirmation=True),
            case_events.ReminderSpec(120, ask_confirmation=True),
        ),
    )
    await case_events.create_event(NOBODY_LISTENING, alice, case_id, hearing)


async def _tasks(case_id: int) -> None:
    """Alice's tasks on Maria's case, with their reminders to her mobile on the queue: one due in two hours
    (a reminder at its time), one tomorrow at 5 p.m. (the day before at 9:00, skipped once that has passed,
    and at its time)."""
    alice = await Staff.get(email="alice@example.org")
    zone = ZoneInfo("America/New_York")
    soon = (clock.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    tomorrow = datetime.combine(clock.now().astimezone(zone).date() + timedelta(days=1), time(17), tzinfo=zone)
    for title, due in (("Call Maria about the courtroom", soon), ("Bring the lease and rent receipts", tomorrow)):
        await tasks.create_task(NOBODY_LISTENING, alice, case_id, tasks.TaskInput(title, due))


async def _unknown_sender(channel: Channel) -> None:
    number = "+14045550199"
    if await Conversation.exists(phone=number):
        return
    at = clock.now() - timedelta(minutes=30)
    conversation = await Conversation.create(
        channel=channel,
        phone=number,
        last_message_at=at,
        last_message_preview="Hi, is this legal aid? I got a court letter.",
        last_direction=Direction.INBOUND,
    )
    message = await Message.create(
        conversation=conversation,
        direction=Direction.INBOUND,
        from_number=number,
        to_number=channel.from_number or "",
        body="Hi, is this legal aid? I got a court letter.",
        status=MessageStatus.RECEIVED,
        provider_sid="SMdemo" + secrets.token_hex(14),
    )
    await Message.filter(id=message.id).update(created_at=at)
    await MessageStatusEvent.create(message=message, status=MessageStatus.RECEIVED, at=at)


# ---------------------------------------------------------------- a survey with its first replies

SURVEY_NAME = "How did we do?"
SURVEY_TEXT = (
    "Atlanta Legal Aid: how did we do? Reply 1 if we were very helpful, 2 if somewhat helpful, 3 if not helpful. "
    "Reply STOP to stop."
)
SURVEY_OPTIONS = [
    {"answer": "1", "label": "Very helpful"},
    {"answer": "2", "label": "Somewhat helpful"},
    {"answer": "3", "label": "Not helpful"},
]
# Already answered when the demo starts, so the results page has a chart; the others answer from the client phone.
SURVEY_REPLIES = {
    "+14045550123": "1",
    "+14045550106": "The wait was long, but my lawyer was great.",
}


async def _survey(channel: Channel) -> None:
    """A survey sent twenty minutes ago to every demo client: delivered to those who may be texted (failed to
    Pat Reyes's landline), Lee Park left out (no consent); James and Dana have answered."""
    if await Campaign.exists(name=SURVEY_NAME):
        return
    sam = await Staff.get(email="sam@example.org")
    sent_at = clock.now() - timedelta(minutes=20)
    campaign = await Campaign.create(
        name=SURVEY_NAME,
        body=SURVEY_TEXT,
        state=CampaignState.FINISHED,
        channel=channel,
        created_by=sam,
        answer_options=SURVEY_OPTIONS,
        started_at=sent_at,
        finished_at=sent_at + timedelta(minutes=1),
    )
    for index, (_, number, okay, case_number, *_rest) in enumerate(CLIENTS):
        case = await Case.get(number=case_number)
        if not okay:
            await CampaignRecipient.create(
                campaign=campaign, client_id=case.client_id, case=case, number=number, excluded=Exclusion.NO_CONSENT
            )
            continue
        message = await _survey_text(channel, campaign, case, number, sent_at + timedelta(seconds=index), sam)
        await CampaignRecipient.create(
            campaign=campaign, client_id=case.client_id, case=case, number=number, message=message
        )
    for number, body in SURVEY_REPLIES.items():
        await _survey_reply(channel, number, body, sent_at + timedelta(minutes=5))


async def _survey_text(
    channel: Channel, campaign: Campaign, case: Case, number: str, at: datetime, by: Staff
) -> Message:
    failed = number.endswith("0006")  # the simulator's landline
    conversation, _ = await Conversation.get_or_create(channel=channel, phone=number)
    message = await Message.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        from_number=channel.from_number or "",
        to_number=number,
        body=SURVEY_TEXT,
        status=MessageStatus.FAILED if failed else MessageStatus.DELIVERED,
        error_code=30006 if failed else None,
        provider_sid="SMdemo" + secrets.token_hex(14),
        segments=count_segments(SURVEY_TEXT).segments,
        encoding=count_segments(SURVEY_TEXT).encoding,
        sent_by=by,
        case_id=case.id,
        purpose=MessagePurpose.CAMPAIGN,
        campaign=campaign,
        first_attempt_at=at,
    )
    await Message.filter(id=message.id).update(created_at=at)
    steps = [MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.FAILED if failed else MessageStatus.DELIVERED]
    for step_index, step in enumerate(steps):
        await MessageStatusEvent.create(message=message, status=step, at=at + timedelta(seconds=step_index))
    message = await Message.get(id=message.id)
    await linking.file_on_case(message, case.id, LinkReason.SENT_FROM, linking.note_author(message, [], by), by)
    await _show_last(conversation, message)
    return message


async def _survey_reply(channel: Channel, number: str, body: str, at: datetime) -> None:
    """The client's reply, filed and counted by the rules a live reply follows (no alert: the survey says so)."""
    conversation = await Conversation.get(channel=channel, phone=number)
    message = await Message.create(
        conversation=conversation,
        direction=Direction.INBOUND,
        from_number=number,
        to_number=channel.from_number or "",
        body=body,
        status=MessageStatus.RECEIVED,
        provider_sid="SMdemo" + secrets.token_hex(14),
    )
    await Message.filter(id=message.id).update(created_at=at)
    await MessageStatusEvent.create(message=message, status=MessageStatus.RECEIVED, at=at)
    message = await Message.get(id=message.id)
    async with unit_of_work(NOBODY_LISTENING):
        case_ids = await linking.link_inbound(message)
        answer = await surveys.record_answer(message, at)
        if answer is None or answer.raises_alerts:
            await alerts.raise_alerts(message, case_ids)
    await _alerts_raised_when_texted(message)
    await _show_last(conversation, message)


async def _alerts_raised_when_texted(message: Message) -> None:
    """A back-dated text's alerts carry its time: "5 min ago" beside a text from five hours ago is untrue."""
    await Alert.filter(message_id=message.id).update(created_at=message.created_at)


async def _show_last(conversation: Conversation, message: Message) -> None:
    conversation.last_message_at = message.created_at
    conversation.last_message_preview = message.body[:200]
    conversation.last_direction = message.direction
    await conversation.save()
