"""Staff reminders: texts to a staff member's own mobile (the one on their profile) about their tasks and
the case events they attend, as LegalServer sends them.

Each is an ordinary scheduled text in the outbox (purpose STAFF_REMINDER) in the mobile's own
conversation, filed on no case. Whether it may leave is decided as it leaves, in one place
(consent.refusal_at_send): reminders turned on in the profile, and the mobile has not texted STOP.
Times are worked out in the organisation's time zone with the client reminders' rule
(reminder_times.reminder_time): "1 day before at 9:00" is 9 a.m. on that calendar day.

`sync_task` and `sync_event` bring a task's or an event's reminders in line with it after every change,
inside the caller's unit of work: new people get theirs, people no longer on it lose the pending ones, a
new time moves the pending ones (one whose time has passed is cancelled), a done task or a cancelled
event cancels them. `sync_staff` does the same for one person whose profile changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from inbox import clock
from inbox.models import Case, CaseEvent, Message, MessageStatus, Staff, StaffReminder, Task
from inbox.services import messaging, organisation, quick_entries, quiet_hours
from inbox.services.reminder_times import DAY, ReminderSpec, is_pending, reminder_status, reminder_time

# Lead times (the organisation's zone): a task the day before at 9:00 and when it is due; an event the day
# before and an hour before.
TASK_REMINDERS = (ReminderSpec(DAY, "09:00"), ReminderSpec(0))
EVENT_REMINDERS = (ReminderSpec(DAY), ReminderSpec(60))
NO_MOBILE = "No mobile on their profile."
TURNED_OFF = "Reminders are turned off in their profile."
PASSED = "Its time had passed."
MOVED_INTO_THE_PAST = "Moved: this reminder's time has passed."
CLOSED = "The task is done, or the event cancelled."


@dataclass(frozen=True)
class Subject:
    """What reminders are about: a task or a case event, its time, the words of its texts, and who gets them."""

    task: Task | None
    event: CaseEvent | None
    due: datetime
    specs: tuple[ReminderSpec, ...]
    people: dict[int, Staff]  # who should get reminders now (none once done or cancelled)
    closed: bool = False  # done or cancelled: pending reminders are cancelled and kept, to show so

    @property
    def key(self) -> dict[str, int]:
        return {"task_id": self.task.id} if self.task is not None else {"event_id": self.event.id if self.event else 0}


async def task_subject(task: Task) -> Subject:
    people = {} if task.done_at is not None else {task.assignee_id: await Staff.get(id=task.assignee_id)}
    return Subject(task, None, task.due_at, TASK_REMINDERS, people, closed=task.done_at is not None)


async def event_subject(event: CaseEvent) -> Subject:
    attendees = [] if event.cancelled_at is not None else await Staff.filter(events_attended__event_id=event.id)
    people = {person.id: person for person in attendees}
    return Subject(None, event, event.starts_at, EVENT_REMINDERS, people, closed=event.cancelled_at is not None)


async def reminder_words(subject: Subject, zone_name: str) -> str:
    """Plain GSM-7 words (no curly quotes): the organisation, what, when, and the case's number (never the
    client's name: a phone's lock screen shows it)."""
    org = await organisation.current()
    local = subject.due.astimezone(quiet_hours.zone_named(zone_name) or UTC)
    when = f"{quiet_hours.clock_words(local)} on {quick_entries.long_date(local)}"
    if subject.task is not None:
        what, title, case_id = f"task due {when}", subject.task.title, subject.task.case_id
    else:
        assert subject.event is not None
        event = subject.event
        what, title, case_id = f"{event.kind.value} at {when}", event.title, event.case_id
        title = f"{title}, {event.place}" if event.place else title
    case = await Case.get_or_none(id=case_id) if case_id is not None else None
    on_case = f" (case {case.number})" if case is not None else ""
    return f"{org.name} reminder: {what}: {title}{on_case}."


# ---------------------------------------------------------------- keeping the reminders in line


async def sync_task(task: Task, now: datetime | None = None) -> None:
    await _sync(await task_subject(task), now or clock.now())


async def sync_event(event: CaseEvent, now: datetime | None = None) -> None:
    await _sync(await event_subject(event), now or clock.now())


async def sync_staff(staff: Staff, now: datetime | None = None) -> None:
    """After a profile change (mobile, reminders on or off): the pending reminders to the old setting go,
    and every open task and coming event of theirs gets reminders by the new one."""
    now = now or clock.now()
    for row in await StaffReminder.filter(staff_id=staff.id).prefetch_related("message"):
        if row.message is None or is_pending(row.message):
            if row.message is not None:
                await messaging.cancel_if_waiting(row.message, "The staff member's reminder settings changed.", now)
            await row.delete()
    for task in await Task.filter(assignee_id=staff.id, done_at=None, due_at__gt=now):
        await sync_task(task, now)
    for event in await CaseEvent.filter(attendees__staff_id=staff.id, cancelled_at=None, starts_at__gt=now):
        await sync_event(event, now)


async def _sync(subject: Subject, now: datetime) -> None:
    zone = (await organisation.current()).time_zone
    rows = await StaffReminder.filter(**subject.key).order_by("id").prefetch_related("message")
    for row in rows:
        person = subject.people.get(row.staff_id)
        if subject.closed:
            if row.message is not None:
                await messaging.cancel_if_waiting(row.message, CLOSED, now)
        elif person is None:
            await _drop(row, now)
        else:
            await _move(row, subject, person, zone, now)
    for person in subject.people.values():
        made = {(r.minutes_before, r.at_local_time) for r in rows if r.staff_id == person.id}
        for spec in subject.specs:
            if (spec.minutes_before, spec.at_local_time) not in made:
                row = await StaffReminder.create(
                    staff=person,
                    task=subject.task,
                    event=subject.event,
                    minutes_before=spec.minutes_before,
                    at_local_time=spec.at_local_time,
                )
                await _schedule(row, subject, person, zone, now)


def _spec(row: StaffReminder) -> ReminderSpec:
    return ReminderSpec(row.minutes_before, row.at_local_time)


async def _schedule(row: StaffReminder, subject: Subject, person: Staff, zone: str, now: datetime) -> None:
    """The reminder's text in the outbox, or why there is none."""
    send_at = reminder_time(subject.due, _spec(row), zone)
    if not person.mobile:
        row.message_id, row.skipped = None, NO_MOBILE
    elif not person.staff_reminders:
        row.message_id, row.skipped = None, TURNED_OFF
    elif send_at <= now:
        row.message_id, row.skipped = None, PASSED
    else:
        message = await messaging.schedule_staff_reminder(person.mobile, await reminder_words(subject, zone), send_at)
        row.message_id, row.skipped = message.id, ""
    await row.save(update_fields=["message_id", "skipped"])


async def _move(row: StaffReminder, subject: Subject, person: Staff, zone: str, now: datetime) -> None:
    """A pending reminder follows its task or event (new time, new words); one never made is made if it can
    be now; sent, failed and cancelled ones are history."""
    message: Message | None = row.message
    reopened = message is not None and message.status == MessageStatus.CANCELED and message.error_message == CLOSED
    if message is None or reopened:
        await _schedule(row, subject, person, zone, now)  # a task open again gets those still ahead back
        return
    if not is_pending(message):
        return
    send_at = reminder_time(subject.due, _spec(row), zone)
    if send_at <= now:
        await messaging.cancel_if_waiting(message, MOVED_INTO_THE_PAST, now)
        return
    body = await reminder_words(subject, zone)
    if (message.send_at, message.body) != (send_at, body) and await messaging.reschedule(message, body, send_at):
        await message.refresh_from_db()
        await quiet_hours.note_hold(message, now)
        messaging.publish_status(message)


async def _drop(row: StaffReminder, now: datetime) -> None:
    """Someone no longer on it: the pending text is cancelled and the row forgotten; a sent one is history."""
    message: Message | None = row.message
    if message is not None and not is_pending(message):
        return
    if message is not None:
        await messaging.cancel_if_waiting(message, "No longer theirs: the task or event changed.", now)
        await row.delete()
        return
    await row.delete()


# ---------------------------------------------------------------- showing them


@dataclass(frozen=True)
class ShownStaffReminder:
    row: StaffReminder
    status: str  # pending, sending, sent, failed, canceled, skipped
    send_at: datetime | None


def shown(rows: list[StaffReminder]) -> list[ShownStaffReminder]:
    """`row.message` must be fetched."""
    return [
        ShownStaffReminder(r, reminder_status(r), r.message.send_at if r.message else None)
        for r in sorted(rows, key=lambda r: r.id)
    ]
