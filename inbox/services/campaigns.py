"""Bulk messages ("campaigns"): a supervisor or admin picks clients by filter, previews who gets the text
and who is left out and why, sends a test to their own phone, and starts it.

Each recipient's text is an ordinary outbox message (purpose CAMPAIGN, `campaign` set), filed on the
recipient's case like a hand-sent text, in the recipient's thread. The outbox paces and sends them, and
decides consent as each one leaves (a STOP after the preview wins: that text is canceled, never sent).

    draft ──start──▶ sending ──(every text out of the outbox)──▶ finished
                       │ ▲
                 pause ▼ │ resume          cancel (draft, sending, paused) ──▶ canceled
                      paused

Starting 10,000 recipients must take well under a second, so it is done in bulk: one insert per table
(rows the database derives from the messages are INSERT … SELECT), never one query per recipient.
No rendering here: the pages and the API say it in their own words.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count, Sum

from inbox import clock
from inbox.events import Bus, CampaignProgressed
from inbox.models import (
    Assignment,
    Campaign,
    CampaignRecipient,
    CampaignState,
    Case,
    CaseEvent,
    CaseNote,
    Channel,
    ClientPhone,
    Conversation,
    Direction,
    Exclusion,
    Message,
    MessageLink,
    MessagePurpose,
    MessageStatus,
    Office,
    OutboxState,
    PhoneKind,
    Staff,
    flat_values,
)
from inbox.phones import InvalidPhoneNumber, for_people, normalise
from inbox.segments import SegmentCount, count_segments
from inbox.services import bulk, messaging, organisation, quick_entries, visibility
from inbox.services.channels import default_channel, later_thread
from inbox.services.errors import Forbidden, NotFound, Refused, ValidationFailed, require
from inbox.services.limits import clip
from inbox.services.messaging import Outbox
from inbox.services.unit_of_work import current_unit, unit_of_work

MANAGERS_ONLY = "Only supervisors and admins may send bulk messages and see campaigns."
CASE_STATES = ("open", "closed", "any")
INVALID_NUMBER_CODES = frozenset({21211, 21614})  # Twilio: not a valid phone number / not a mobile number
# The words a recipient's text is canceled with when its campaign is cancelled (consent refusals at send
# time start "Not sent:", see inbox.services.outbox).
CANCELED_WITH_CAMPAIGN = "The campaign was cancelled before this text was sent."
BATCH = 1000  # rows per bulk insert: well under SQLite's limit of bound parameters per statement


def require_manager(staff: Staff) -> None:
    if not staff.sees_everything:
        raise Forbidden(MANAGERS_ONLY)


# ---------------------------------------------------------------- the filter


@dataclass(frozen=True)
class FilterWords:
    """The filter as a person typed it (a form) or an integrator sent it (the API), all text."""

    legal_problem: str = ""
    office: str = ""  # an office's name
    case_state: str = "any"  # open | closed | any
    closed_after: str = ""  # YYYY-MM-DD, inclusive
    closed_before: str = ""
    assignee_email: str = ""
    language: str = ""
    event_after: str = ""  # a case event (not cancelled) starting on or after this day …
    event_before: str = ""  # … and on or before this one (UTC days)


@dataclass(frozen=True)
class CampaignFilter:
    """The filter checked: what Campaign.filters stores (ids and ISO days)."""

    legal_problem: str | None = None
    office_id: int | None = None
    status: str = "any"
    closed_from: date | None = None
    closed_to: date | None = None
    assignee_id: int | None = None
    language: str | None = None
    event_from: date | None = None
    event_to: date | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in self.__dict__.items()
            if value is not None
        }

    @classmethod
    def of(cls, stored: dict[str, Any]) -> CampaignFilter:
        days = ("closed_from", "closed_to", "event_from", "event_to")
        known: dict[str, Any] = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        known.update({k: date.fromisoformat(known[k]) for k in days if known.get(k)})
        return cls(**known)


def _day(errors: dict[str, str], name: str, text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        errors[name] = "Write the date as YYYY-MM-DD."
        return None


async def check_filter(words: FilterWords) -> CampaignFilter:
    """The typed filter, checked: unknown office or assignee, bad dates and ranges named by field."""
    errors: dict[str, str] = {}
    state = (words.case_state or "any").strip().lower()
    if state not in CASE_STATES:
        errors["case_state"] = "Choose open, closed or any."
    office_id = None
    if words.office.strip():
        office = await Office.get_or_none(name=words.office.strip())
        if office is None:
            errors["office"] = f"No office is named “{words.office.strip()}”."
        else:
            office_id = office.id
    assignee_id = None
    if words.assignee_email.strip():
        assignee = await Staff.get_or_none(email=words.assignee_email.strip().lower())
        assignee = assignee or await Staff.get_or_none(email=words.assignee_email.strip())
        if assignee is None:
            errors["assignee_email"] = f"No staff member has the email {words.assignee_email.strip()}."
        else:
            assignee_id = assignee.id
    closed_from = _day(errors, "closed_after", words.closed_after)
    closed_to = _day(errors, "closed_before", words.closed_before)
    event_from = _day(errors, "event_after", words.event_after)
    event_to = _day(errors, "event_before", words.event_before)
    if closed_from and closed_to and closed_to < closed_from:
        errors["closed_before"] = "The end of the range is before its start."
    if event_from and event_to and event_to < event_from:
        errors["event_before"] = "The end of the range is before its start."
    if (closed_from or closed_to) and state == "open":
        errors["case_state"] = "Open cases have no closing date: choose closed or any."
    require(errors)
    return CampaignFilter(
        legal_problem=words.legal_problem.strip() or None,
        office_id=office_id,
        status=state,
        closed_from=closed_from,
        closed_to=closed_to,
        assignee_id=assignee_id,
        language=words.language.strip().lower() or None,
        event_from=event_from,
        event_to=event_to,
    )


def matching_cases(chosen: CampaignFilter) -> Q:
    """The cases the filter picks, as one condition (subqueries, not id lists: 10,000 cases are one query)."""
    q = Q()
    if chosen.legal_problem:
        q &= Q(legal_problem__iexact=chosen.legal_problem)
    if chosen.office_id is not None:
        q &= Q(office_id=chosen.office_id)
    if chosen.status == "open":
        q &= Q(closed_on=None)
    elif chosen.status == "closed" or chosen.closed_from or chosen.closed_to:
        q &= Q(closed_on__not_isnull=True)
    if chosen.closed_from:
        q &= Q(closed_on__gte=chosen.closed_from)
    if chosen.closed_to:
        q &= Q(closed_on__lte=chosen.closed_to)
    if chosen.assignee_id is not None:
        assigned = Assignment.filter(visibility.current_assignments(), staff_id=chosen.assignee_id)
        q &= Q(id__in=Subquery(assigned.values("case_id")))
    if chosen.language:
        q &= Q(client__preferred_language__iexact=chosen.language)
    if chosen.event_from or chosen.event_to:
        events = CaseEvent.filter(cancelled_at=None)
        if chosen.event_from:
            events = events.filter(starts_at__gte=datetime.combine(chosen.event_from, time(0), UTC))
        if chosen.event_to:
            events = events.filter(starts_at__lt=datetime.combine(chosen.event_to + timedelta(days=1), time(0), UTC))
        q &= Q(id__in=Subquery(events.values("case_id")))
    return q


# ---------------------------------------------------------------- composing and previewing


@dataclass(frozen=True)
class CampaignInput:
    name: str
    body: str
    filter: FilterWords = field(default_factory=FilterWords)
    options: tuple[str, ...] = ()  # a survey's answers ("1", "2" …); none: a plain bulk message
    reply_window_days: int = 7
    alerts_on_replies: bool = False


async def _check_input(data: CampaignInput) -> CampaignFilter:
    errors: dict[str, str] = {}
    if not data.name.strip():
        errors["name"] = "Give the campaign a name (only staff see it)."
    elif len(data.name.strip()) > 200:
        errors["name"] = "Names are limited to 200 characters."
    if not data.body.strip():
        errors["body"] = "Write the message."
    else:
        organisation.check_text_length(errors, "body", data.body, await organisation.text_limit())
        unknown = [name for name in quick_entries.placeholders_in(data.body) if name not in FILLED]
        if unknown:
            errors["body"] = f"{{{unknown[0]}}} cannot be filled in for a bulk message; remove it."
    options = [o.strip() for o in data.options if o.strip()]
    if len(set(o.lower() for o in options)) != len(options) or any(len(o) > 40 for o in options):
        errors["options"] = "Each answer must be different, and at most 40 characters."
    if not 1 <= data.reply_window_days <= 365:
        errors["reply_window_days"] = "Replies can be counted for 1 to 365 days."
    try:
        chosen = await check_filter(data.filter)
    except ValidationFailed as exc:
        errors.update({k: v for k, v in exc.fields.items() if k not in errors})
        chosen = CampaignFilter()
    require(errors)
    return chosen


async def create_campaign(bus: Bus, staff: Staff, data: CampaignInput) -> Campaign:
    """A draft: the campaign and its recipients, each either getting the text or left out with the reason.
    Nothing is queued yet (see `start`)."""
    require_manager(staff)
    chosen = await _check_input(data)
    async with unit_of_work(bus):
        campaign = await Campaign.create(
            name=data.name.strip(),
            body=data.body,
            filters=chosen.to_json(),
            created_by=staff,
            answer_options=[{"answer": o.strip(), "label": ""} for o in data.options if o.strip()],
            reply_window_days=data.reply_window_days,
            replies_raise_alerts=data.alerts_on_replies,
        )
        await _insert_recipients(campaign, chosen)
    return campaign


async def _insert_recipients(campaign: Campaign, chosen: CampaignFilter) -> None:
    """One row per matched case (its client), in case order, the mobile chosen and the exclusion decided, by one
    INSERT … SELECT on the server (no rows through Python: shipping 10,000 rows out and back in was a third of
    PostgreSQL's preview). The rules:
    - the client's first mobile (by record) that may be texted; else their first mobile, left out as opted out or
      as without consent; no mobile: left out as such;
    - consent as consent.number_state judges it: across every record holding the number;
    - one text per number: a later case (or client) with a number already getting the text is a duplicate."""
    cases = Case.filter(matching_cases(chosen)).order_by("id").values_list("id", "client_id")
    picked = cases.sql()  # Tortoise writes the filter; its parameters are the statement's only ones
    _, values = cases.query.get_parameterized_sql()
    # Constants of our own (ids and enum values), written into the statement.
    mobile, campaign_id = PhoneKind.MOBILE.value, int(campaign.id)
    no_mobile, opted_out, no_consent, duplicate = (
        Exclusion.NO_MOBILE.value,
        Exclusion.OPTED_OUT.value,
        Exclusion.NO_CONSENT.value,
        Exclusion.DUPLICATE.value,
    )
    await bulk.db().execute_query(
        f"""WITH picked (case_id, client_id) AS ({picked}),
        mobile AS MATERIALIZED (
            SELECT p.id, p.client_id, p.number FROM client_phone p
            WHERE p.kind = '{mobile}' AND p.client_id IN (SELECT client_id FROM picked)
        ),
        state AS MATERIALIZED (
            SELECT number, max(CASE WHEN okay_to_text THEN 1 ELSE 0 END) AS okay,
                   max(CASE WHEN opted_out THEN 1 ELSE 0 END) AS out
            FROM client_phone WHERE number IN (SELECT number FROM mobile) GROUP BY number
        ),
        ranked AS (
            SELECT m.client_id, m.number,
                   CASE WHEN s.okay = 1 AND s.out = 0 THEN 1 ELSE 0 END AS textable, s.out AS opted_out,
                   row_number() OVER (
                       PARTITION BY m.client_id ORDER BY CASE WHEN s.okay = 1 AND s.out = 0 THEN 0 ELSE 1 END, m.id
                   ) AS rank
            FROM mobile m JOIN state s ON s.number = m.number
        ),
        -- Each case gets its client's chosen number by a window over cases and chosen numbers together, not by a
        -- join: SQLite, with no index on client_id, scanned the chosen numbers once per case (10,000 cases: 5 s).
        together AS (
            SELECT client_id, case_id, NULL AS number, NULL AS textable, NULL AS opted_out FROM picked
            UNION ALL
            SELECT client_id, NULL, number, textable, opted_out FROM ranked WHERE rank = 1
        ),
        found AS (
            SELECT case_id, client_id, max(number) OVER client AS number, max(textable) OVER client AS textable,
                   max(opted_out) OVER client AS opted_out
            FROM together WINDOW client AS (PARTITION BY client_id)
        ),
        decided AS (
            SELECT *, row_number() OVER (PARTITION BY number, textable ORDER BY case_id) AS nth
            FROM found WHERE case_id IS NOT NULL
        )
        INSERT INTO campaign_recipient (campaign_id, client_id, case_id, number, excluded)
        SELECT {campaign_id}, client_id, case_id, number,
               CASE WHEN number IS NULL THEN '{no_mobile}'
                    WHEN textable = 0 THEN CASE WHEN opted_out = 1 THEN '{opted_out}' ELSE '{no_consent}' END
                    WHEN nth > 1 THEN '{duplicate}' END
        FROM decided ORDER BY case_id""",
        list(values),
    )


# ---------------------------------------------------------------- reading


def _day_text(day: date | None) -> str:
    return day.isoformat() if day else ""


async def form_values(campaign: Campaign) -> dict[str, object]:
    """The compose form filled in as this campaign was (to change a draft: a new draft is made)."""
    chosen = CampaignFilter.of(campaign.filters or {})
    office = await Office.get_or_none(id=chosen.office_id) if chosen.office_id else None
    assignee = await Staff.get_or_none(id=chosen.assignee_id) if chosen.assignee_id else None
    return {
        "name": campaign.name,
        "body": campaign.body,
        "legal_problem": chosen.legal_problem or "",
        "office": office.name if office else "",
        "case_state": chosen.status,
        "closed_after": _day_text(chosen.closed_from),
        "closed_before": _day_text(chosen.closed_to),
        "assignee_email": assignee.email if assignee else "",
        "language": chosen.language or "",
        "event_after": _day_text(chosen.event_from),
        "event_before": _day_text(chosen.event_to),
        "options": ", ".join(str(o.get("answer", "")) for o in campaign.answer_options or []),
        "reply_window_days": campaign.reply_window_days,
        "alerts_on_replies": "on" if campaign.replies_raise_alerts else "",
    }


async def describe_filter(campaign: Campaign) -> list[str]:
    """The filter in words, for the campaign's page ("Legal problem: Housing", …); empty: every case."""
    values = await form_values(campaign)
    labels = {
        "legal_problem": "Legal problem",
        "office": "Office",
        "closed_after": "Closed on or after",
        "closed_before": "Closed on or before",
        "assignee_email": "Assigned to",
        "language": "Preferred language",
        "event_after": "Has an event on or after",
        "event_before": "Has an event on or before",
    }
    words = [f"{label}: {values[key]}" for key, label in labels.items() if values.get(key)]
    if values["case_state"] != "any":
        words.insert(0, f"Cases: {values['case_state']}")
    return words


async def get_campaign(staff: Staff, campaign_id: int) -> Campaign:
    require_manager(staff)
    campaign = await Campaign.get_or_none(id=campaign_id).prefetch_related("created_by")
    if campaign is None:
        raise NotFound("No campaign has this id.")
    return campaign


async def list_campaigns(staff: Staff, limit: int = 200) -> list[Campaign]:
    require_manager(staff)
    return list(await Campaign.all().order_by("-id").limit(limit).prefetch_related("created_by"))


@dataclass(frozen=True)
class LeftOut:
    """A matched client who does not get the text (or whose text did not go), and why."""

    client_id: int | None
    client_name: str
    case_number: str
    number: str | None
    reason: str  # an Exclusion value
    detail: str = ""  # at send time: what the outbox or Twilio said


REASON_WORDS: dict[str, str] = {
    Exclusion.NO_CONSENT: "no consent to text",
    Exclusion.OPTED_OUT: "opted out",
    Exclusion.NO_MOBILE: "no mobile number",
    Exclusion.DUPLICATE: "same number as another recipient (one text per number)",
    Exclusion.INVALID_NUMBER: "not a valid mobile number",
}


async def left_out(campaign_id: int) -> list[LeftOut]:
    """Excluded at the preview, in the order matched."""
    rows = (
        await CampaignRecipient.filter(campaign_id=campaign_id, excluded__not_isnull=True)
        .order_by("id")
        .values_list("client_id", "client__name", "case__number", "number", "excluded")
    )
    return [LeftOut(cid, name or "", case or "", number, str(reason)) for cid, name, case, number, reason in rows]


async def refused_at_send(campaign_id: int) -> list[LeftOut]:
    """Texts that did not go: refused by Twilio (an invalid number …), failed, or stopped by the outbox's
    consent check as they left (a STOP after the preview). Texts cancelled with the campaign are not listed."""
    rows = (
        await Message.filter(campaign_id=campaign_id)
        .filter(
            Q(status__in=[MessageStatus.FAILED, MessageStatus.UNDELIVERED])
            | (Q(status=MessageStatus.CANCELED) & ~Q(error_message=CANCELED_WITH_CAMPAIGN))
        )
        .order_by("id")
        .values_list("id", "to_number", "status", "error_code", "error_message")
    )
    if not rows:
        return []
    recipients = {
        message_id: (client_id, name or "", case or "")
        for message_id, client_id, name, case in await CampaignRecipient.filter(
            campaign_id=campaign_id, message_id__in=[row[0] for row in rows]
        ).values_list("message_id", "client_id", "client__name", "case__number")
    }
    opted_out = set(
        await flat_values(
            ClientPhone.filter(number__in=[row[1] for row in rows], opted_out=True).values_list("number", flat=True)
        )
    )
    found = []
    for message_id, number, status, code, words in rows:
        client_id, name, case = recipients.get(message_id, (None, "", ""))
        if code in INVALID_NUMBER_CODES:
            reason = Exclusion.INVALID_NUMBER.value
        elif status == MessageStatus.CANCELED:
            reason = (Exclusion.OPTED_OUT if number in opted_out else Exclusion.NO_CONSENT).value
        else:
            reason = "failed"
        found.append(LeftOut(client_id, name, case, number, reason, words or ""))
    return found


@dataclass(frozen=True)
class Progress:
    """Where a campaign's texts are: one GROUP BY over its messages."""

    campaign_id: int
    state: CampaignState
    recipients: int  # texts made (or, for a draft, that will be made)
    waiting: int = 0  # still in the outbox (held while paused)
    sent: int = 0  # handed to Twilio, not yet delivered
    delivered: int = 0
    failed: int = 0  # refused or undelivered
    canceled: int = 0  # not sent: stopped by consent at send time, or cancelled with the campaign
    excluded: int = 0  # left out at the preview
    replies: int = 0
    finishes_at: datetime | None = None  # while sending: when the outbox will be through at the channels' pace

    @property
    def done(self) -> int:
        return self.sent + self.delivered + self.failed + self.canceled

    def share(self, count: int) -> float:
        """Percent of the texts made, for the progress bar."""
        return round(100.0 * count / self.recipients, 2) if self.recipients else 0.0


SENT_STATUSES = (MessageStatus.ACCEPTED, MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
DELIVERED_STATUSES = (MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PARTIALLY_DELIVERED)
FAILED_STATUSES = (MessageStatus.FAILED, MessageStatus.UNDELIVERED)


async def progress(campaign_id: int, now: datetime | None = None) -> Progress:
    """The campaign's counts now (reading writes nothing). A campaign sending whose texts have all left the
    outbox shows as finished even before the outbox has marked it so (see `finish_if_done`)."""
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise NotFound("No campaign has this id.")
    counts: dict[str, int] = defaultdict(int)
    segments_by_channel: dict[int, int] = defaultdict(int)
    rows = (
        await Message.filter(campaign_id=campaign_id)
        .annotate(texts=Count("id"), segs=Sum("segments"))
        .group_by("status", "outbox_state", "conversation__channel_id")
        .values_list("status", "outbox_state", "conversation__channel_id", "texts", "segs")
    )
    for status, outbox_state, channel_id, texts, segs in rows:
        counts[_bucket(status, outbox_state)] += texts
        if outbox_state is not None and outbox_state != OutboxState.HELD:
            segments_by_channel[channel_id] += segs or 0
    recipients = (
        await CampaignRecipient.filter(campaign_id=campaign_id)
        .annotate(n=Count("id"))
        .group_by("excluded")
        .values_list("excluded", "n")
    )
    excluded = sum(n for reason, n in recipients if reason is not None)
    included = sum(n for reason, n in recipients if reason is None)
    replies = await CampaignRecipient.filter(campaign_id=campaign_id, reply_id__not_isnull=True).count()
    made = sum(counts.values())
    state = campaign.state
    if state == CampaignState.SENDING and made and not counts["waiting"]:
        state = CampaignState.FINISHED
    moment = now or clock.now()
    finishes_at = await _finishes_at(segments_by_channel, moment) if state == CampaignState.SENDING else None
    return Progress(
        campaign_id=campaign_id,
        state=state,
        recipients=made or included,
        waiting=counts["waiting"],
        sent=counts["sent"],
        delivered=counts["delivered"],
        failed=counts["failed"],
        canceled=counts["canceled"],
        excluded=excluded,
        replies=replies,
        finishes_at=finishes_at,
    )


def _bucket(status: str, outbox_state: str | None) -> str:
    if outbox_state is not None:
        return "waiting"
    if status in DELIVERED_STATUSES:
        return "delivered"
    if status in FAILED_STATUSES:
        return "failed"
    if status == MessageStatus.CANCELED:
        return "canceled"
    return "sent"


async def finish_if_done(campaign_id: int) -> None:
    """Inside the outbox's unit of work, as one of the campaign's texts leaves the outbox: the last one marks the
    campaign finished and tells its pages. (Two workers finishing the last two texts at once can each still see
    the other's in the outbox; `progress` then shows the campaign finished all the same.)"""
    if await _mark_finished(campaign_id):
        current_unit().publish(CampaignProgressed(campaign_id=campaign_id))


async def _mark_finished(campaign_id: int) -> bool:
    """Only one looker wins (a conditional UPDATE), and only while every text has left the outbox."""
    still = Message.filter(campaign_id=campaign_id, outbox_state__not_isnull=True)
    if await still.exists():
        return False
    won = await Campaign.filter(id=campaign_id, state=CampaignState.SENDING).update(
        state=CampaignState.FINISHED, finished_at=clock.now()
    )
    return bool(won)


async def _finishes_at(segments_by_channel: dict[int, int], now: datetime) -> datetime | None:
    """When the slowest channel is through its share at its throughput (segments per second)."""
    if not segments_by_channel:
        return None
    throughput = dict(await Channel.filter(id__in=list(segments_by_channel)).values_list("id", "throughput"))
    seconds = max(segs / max(throughput.get(cid, 1), 1) for cid, segs in segments_by_channel.items())
    return now + timedelta(seconds=math.ceil(seconds))


# ---------------------------------------------------------------- a test to one's own phone


async def send_test(outbox: Outbox, staff: Staff, campaign_id: int) -> Message:
    """The text, filled in for the first recipient, to the staff member's own mobile through the outbox
    (purpose TEST: it needs only that the number has not opted out). The caller hands it over."""
    campaign = await get_campaign(staff, campaign_id)
    if not staff.mobile:
        raise Refused("Add your mobile number to your account first: the test goes to your own phone.")
    try:
        number = normalise(staff.mobile)
    except InvalidPhoneNumber as exc:
        raise Refused(f"Your account's mobile number cannot be texted: {exc}") from exc
    first = await CampaignRecipient.filter(campaign_id=campaign.id, excluded=None).order_by("id").first()
    values = await _values_for_rows(staff, [first.id] if first else [])
    body = _filled(campaign.body, values.get(first.id, {}) if first else await _base_values(staff))
    channel = await default_channel()
    async with unit_of_work(outbox.bus) as uow:
        conversation = await messaging.conversation_with(channel, number)
        message = await messaging.store_app_text(
            conversation, channel, body, MessagePurpose.TEST, sent_by=staff, shown_in_inbox=True
        )
        uow.publish(messaging.sent_event(message))
    return message


# ---------------------------------------------------------------- placeholders

# What a bulk text can fill in for each recipient (the event placeholders belong to reminders).
FILLED = (
    "client_first_name",
    "client_name",
    "case_number",
    "case_title",
    "office_name",
    "office_phone",
    "staff_name",
    "staff_first_name",
    "organisation_name",
    "today",
)


async def _base_values(staff: Staff) -> dict[str, str | None]:
    return await quick_entries.values_for(staff, None, None, clock.now())


async def _values_for_rows(staff: Staff, recipient_ids: list[int]) -> dict[int, dict[str, str | None]]:
    """Each recipient's placeholder values, from one query (and the offices, once)."""
    base = await _base_values(staff)
    if not recipient_ids:
        return {}
    offices = await _offices()
    values: dict[int, dict[str, str | None]] = {}
    for rid, name, number, title, office_id in await CampaignRecipient.filter(id__in=recipient_ids).values_list(
        "id", "client__name", "case__number", "case__title", "case__office_id"
    ):
        values[rid] = _recipient_values(base, offices, name, number, title, office_id)
    return values


async def _offices() -> dict[int, tuple[str, str | None]]:
    """Each office's name and phone number as people write it (formatted once, not once per recipient)."""
    return {
        oid: (name, for_people(phone) if phone else None)
        for oid, name, phone in await Office.all().values_list("id", "name", "phone")
    }


def _recipient_values(
    base: dict[str, str | None],
    offices: dict[int, tuple[str, str | None]],
    client_name: str | None,
    case_number: str | None,
    case_title: str | None,
    office_id: int | None,
) -> dict[str, str | None]:
    office = offices.get(office_id) if office_id else None
    words = (client_name or "").split()
    mine = {
        "client_first_name": words[0] if words else None,
        "client_name": client_name,
        "case_number": case_number,
        "case_title": case_title,
    }
    if office:
        mine |= {"office_name": office[0], "office_phone": office[1]}
    return base | mine


def _filled(body: str, values: dict[str, str | None]) -> str:
    """Placeholders filled in; one with no value for this recipient is left out rather than sent as “{…}”."""
    text, empty, _ = quick_entries.fill(body, values)
    for name in empty:
        text = text.replace(f"{{{name}}}", "")
    return text


# ---------------------------------------------------------------- starting, in bulk


async def start(bus: Bus, staff: Staff, campaign_id: int, now: datetime | None = None) -> Campaign:
    """The texts into the outbox, paced: each is due at its slot at the channel's throughput (so a text
    a person sends meanwhile goes ahead of the queue, and none looks stuck while it waits its turn)."""
    campaign = await get_campaign(staff, campaign_id)
    moment = now or clock.now()
    if not await CampaignRecipient.exists(campaign_id=campaign.id, excluded=None):
        raise Refused("Nobody would get this message: every matched client is left out.")
    async with unit_of_work(bus) as uow:
        won = await Campaign.filter(id=campaign.id, state=CampaignState.DRAFT).update(
            state=CampaignState.SENDING, started_at=moment
        )
        if not won:
            raise Refused("This campaign has already been started or cancelled.")
        with bulk.collector_paused():
            await _enqueue(campaign, staff, moment)
        uow.publish(CampaignProgressed(campaign_id=campaign.id))
    return await get_campaign(staff, campaign.id)


@dataclass
class _Row:
    """A recipient as read for the start: the placeholder values are made only for the distinct texts (`_bodies`),
    not per recipient (building 10,000 dicts of them was ~10 % of PostgreSQL's start)."""

    recipient_id: int
    number: str
    case_id: int | None
    client_name: str | None
    case_number: str | None
    case_title: str | None
    office_id: int | None


async def _enqueue(campaign: Campaign, staff: Staff, now: datetime) -> None:
    rows = await _rows_to_send(campaign)
    bodies = await _bodies(campaign.body, rows, staff)
    conversations, opened = await _conversations_for(campaign, rows, bodies, now)
    channels = {c.id: c for c in await Channel.filter(id__in={channel_id for _, channel_id in conversations.values()})}
    counted: dict[str, SegmentCount] = {}  # by body: recipients with the same first name share one
    next_slot: dict[int, float] = defaultdict(float)
    messages: list[tuple[Any, ...]] = []
    # The enum values once: an enum member's `.value` is a descriptor call, 40,000 of them for 10,000 texts.
    outbound, queued, waiting = Direction.OUTBOUND.value, MessageStatus.QUEUED.value, OutboxState.WAITING.value
    purpose = MessagePurpose.CAMPAIGN.value
    ids = await bulk.reserve_ids("message", len(rows))  # so that nothing has to read the new texts back
    for message_id, row in zip(ids, rows, strict=True):
        conversation_id, channel_id = conversations[row.number]
        channel = channels[channel_id]
        body = bodies[row.number]
        segments = counted.get(body) or counted.setdefault(body, count_segments(body))
        slot = now + timedelta(seconds=next_slot[channel_id])
        next_slot[channel_id] += segments.segments / max(channel.throughput, 1)
        messages.append(
            (
                message_id,
                conversation_id,
                outbound,
                channel.from_number or channel.messaging_service_sid or "",
                row.number,
                body,
                queued,
                waiting,
                slot,
                slot,  # send_at: so the outbox keeps the client's quiet hours, as for scheduled texts
                segments.segments,
                segments.encoding,
                staff.id,
                row.case_id,
                purpose,
                campaign.id,
                0,
                False,
                now,
                now,
            )
        )
    pointers = [(message_id, row.recipient_id) for message_id, row in zip(ids, rows, strict=True)]
    await messaging.store_campaign_texts(campaign.id, messages, staff.id, now, pointers, opened)


def note_author(staff_name: str | None, campaign_name: str) -> str:
    """Who a campaign text's case note says wrote it: the person who started the campaign, and which one it was."""
    author = f"{staff_name} (bulk message “{campaign_name}”)" if staff_name else f"Bulk message “{campaign_name}”"
    return clip(author, CaseNote, "author")


async def note_sent_text(message: Message, at: datetime) -> None:
    """A campaign text's case note, written as Twilio takes it (inside the outbox's unit of work), on every case it
    is filed on by then that has none for it yet. Not at the start: the note records that the client was texted,
    and writing 10,000 at once was a tenth of PostgreSQL's start. The text is on its case from the start all the
    same: its link (the case's SMS log with the text's status, the transcript, the bubble's "filed on"). A text
    that never leaves (cancelled with its campaign, refused for consent or by Twilio) gets no note."""
    filed = MessageLink.filter(message_id=message.id).exclude(
        case_id__in=Subquery(CaseNote.filter(message_id=message.id).values("case_id"))
    )
    case_ids = sorted(set(await flat_values(filed.values_list("case_id", flat=True))))
    if not case_ids:
        return
    ((campaign_name, staff_name),) = await Message.filter(id=message.id).values_list("campaign__name", "sent_by__name")
    author = note_author(staff_name, campaign_name or "")
    await CaseNote.bulk_create(
        [CaseNote(case_id=case_id, message=message, author=author, body=message.body, at=at) for case_id in case_ids]
    )


async def _bodies(body: str, rows: list[_Row], staff: Staff) -> dict[str, str]:
    """Each number's text, filled in once per distinct set of the values it uses (recipients with the same first
    name and office share one): the key is made of the recipient's own fields the placeholders read."""
    names = set(quick_entries.placeholders_in(body))
    if not names:
        return {row.number: body for row in rows}
    base = await _base_values(staff)
    offices = await _offices()
    first, full = "client_first_name" in names, "client_name" in names
    number, title = "case_number" in names, "case_title" in names
    office = bool(names & {"office_name", "office_phone"})
    filled: dict[tuple[Any, ...], str] = {}
    bodies = {}
    for row in rows:
        name = row.client_name
        key = (
            _first_word(name) if first else None,
            name if full else None,
            row.case_number if number else None,
            row.case_title if title else None,
            row.office_id if office else None,
        )
        text = filled.get(key)
        if text is None:
            values = _recipient_values(base, offices, name, row.case_number, row.case_title, row.office_id)
            text = filled[key] = _filled(body, values)
        bodies[row.number] = text
    return bodies


def _first_word(name: str | None) -> str | None:
    words = (name or "").split(None, 1)
    return words[0] if words else None


async def _rows_to_send(campaign: Campaign) -> list[_Row]:
    return [
        _Row(*row)
        for row in await bulk.fetch(
            "SELECT r.id, r.number, r.case_id, cl.name, c.number, c.title, c.office_id FROM campaign_recipient r "
            'LEFT JOIN client cl ON cl.id = r.client_id LEFT JOIN "case" c ON c.id = r.case_id '
            "WHERE r.campaign_id = ? AND r.excluded IS NULL ORDER BY r.id",
            [campaign.id],
        )
    ]


async def _conversations_for(
    campaign: Campaign, rows: list[_Row], bodies: dict[str, str], now: datetime
) -> tuple[dict[str, tuple[int, int]], set[int]]:
    """(conversation id, channel id) per number: the thread the client last talked in (as
    channels.channel_for_new_text chooses), else a new one on the case's office's channel or the default —
    opened with its inbox row already showing the text (the ids of those are returned too)."""
    numbers = Subquery(CampaignRecipient.filter(campaign_id=campaign.id, excluded=None).values("number"))
    existing = (
        await Conversation.filter(phone__in=numbers)
        .order_by("id")
        .values_list("id", "phone", "channel_id", "last_message_at")
    )
    best: dict[str, tuple[int, int, datetime | None]] = {}
    for cid, phone, channel_id, last in existing:
        seen = best.get(phone)
        if seen is None or later_thread(last, cid, seen[2], seen[0]):
            best[phone] = (cid, channel_id, last)
    chosen = {phone: (cid, channel_id) for phone, (cid, channel_id, _) in best.items()}
    opened: set[int] = set()
    missing = [row for row in rows if row.number not in chosen]
    if missing:
        office_channel = {
            office_id: cid
            for cid, office_id in reversed(
                await Channel.filter(office_id__not_isnull=True).order_by("id").values_list("id", "office_id")
            )
        }
        fallback = (await default_channel()).id
        # The case's office came with the row (`_rows_to_send`): no query of its own.
        wanted = {row.number: office_channel.get(row.office_id or 0, fallback) for row in missing}
        # Inserted with ids drawn first, so they need not be read back. A thread opened meanwhile by a text from
        # the client is kept (and used): ON CONFLICT DO NOTHING, and then the threads are read back after all.
        ids = dict(zip(wanted, await bulk.reserve_ids("conversation", len(wanted)), strict=True))
        outbound = Direction.OUTBOUND.value
        previews = {text: messaging.preview_of(text) for text in set(bodies.values())}  # once per distinct text
        all_in = await bulk.insert_rows(
            "conversation",
            {
                "id": "int",
                "channel_id": "int",
                "phone": "text",
                "last_message_preview": "text",
                "last_message_at": "timestamptz",
                "last_direction": "text",
                "created_at": "timestamptz",
            },
            [
                (ids[phone], channel_id, phone, previews[bodies[phone]], now, outbound, now)
                for phone, channel_id in wanted.items()
            ],
            on_conflict_nothing=True,
        )
        if all_in:
            chosen |= {phone: (ids[phone], channel_id) for phone, channel_id in wanted.items()}
            return chosen, set(ids.values())
        # Opened just now, with the text as their row (a thread another process opened for the number in the
        # same instant would keep its own row: harmless, and far too rare to pay a datetime read per row for).
        for cid, phone, channel_id in await bulk.fetch_values(
            Conversation.filter(phone__in=numbers).values_list("id", "phone", "channel_id")
        ):
            if phone in wanted and channel_id == wanted[phone]:
                chosen[phone] = (cid, channel_id)
                opened.add(cid)
    return chosen, opened


# ---------------------------------------------------------------- pause, resume, cancel


async def pause(bus: Bus, staff: Staff, campaign_id: int) -> Campaign:
    """Its texts still waiting are held (a conditional UPDATE: a text a worker claimed first still goes)."""
    campaign = await get_campaign(staff, campaign_id)
    async with unit_of_work(bus) as uow:
        won = await Campaign.filter(id=campaign.id, state=CampaignState.SENDING).update(
            state=CampaignState.PAUSED, paused_at=clock.now()
        )
        if not won:
            raise Refused("Only a campaign that is sending can be paused.")
        await messaging.hold_campaign_texts(campaign.id)
        uow.publish(CampaignProgressed(campaign_id=campaign.id))
    return await get_campaign(staff, campaign.id)


async def resume(bus: Bus, staff: Staff, campaign_id: int) -> Campaign:
    """Its held texts wait again, in their order; those whose slot passed while paused are due at once."""
    campaign = await get_campaign(staff, campaign_id)
    async with unit_of_work(bus) as uow:
        won = await Campaign.filter(id=campaign.id, state=CampaignState.PAUSED).update(
            state=CampaignState.SENDING, paused_at=None
        )
        if not won:
            raise Refused("Only a paused campaign can be resumed.")
        await messaging.release_campaign_texts(campaign.id)
        uow.publish(CampaignProgressed(campaign_id=campaign.id))
    return await get_campaign(staff, campaign.id)


async def cancel(bus: Bus, staff: Staff, campaign_id: int) -> Campaign:
    """Its texts not yet handed over are canceled (kept in the threads, marked); those already sent stay sent."""
    campaign = await get_campaign(staff, campaign_id)
    now = clock.now()
    async with unit_of_work(bus) as uow:
        won = await Campaign.filter(
            id=campaign.id, state__in=[CampaignState.DRAFT, CampaignState.SENDING, CampaignState.PAUSED]
        ).update(state=CampaignState.CANCELED, canceled_at=now)
        if not won:
            raise Refused("This campaign has already finished or been cancelled.")
        await messaging.cancel_campaign_texts(campaign.id, CANCELED_WITH_CAMPAIGN, now)
        uow.publish(CampaignProgressed(campaign_id=campaign.id))
    return await get_campaign(staff, campaign.id)
