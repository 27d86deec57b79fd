"""Surveys: a campaign whose text asks a question with answer options ("Reply 1, 2 or 3"), and the replies
counted against it. No rendering here: the results page, the CSV and the API read `results_of`.

Which reply counts, and for which survey (the inbound unit of work calls `record_answer`):

- The survey is the newest one whose text to the sender's number has left our outbox (Twilio took it) before
  the reply, within the campaign's reply window (`reply_window_days` from that text's first attempt, else
  from the campaign's start). A survey answered already takes no second answer: the first reply counts, and
  later texts are ordinary texts (an older survey does not pick them up either — the client is most likely
  talking about something else by then).
- The reply's whole text, trimmed, any casing, with trailing punctuation dropped, is matched against the
  options ("1", " yes ", "Yes." → YES). Anything else is counted as a free-text reply (no option).
- Keywords come first. STOP (and every opt-out word), HELP/INFO, START and UNSTOP are never answers: they do
  what they always do. YES is Twilio's opt-in keyword too: it counts as a survey's YES when the survey offers
  YES (the recipient had consent when it was sent, so the opt-in it also is changes nothing), except when it
  answers a pending opt-in request — then it is consent, not an answer. Any other text is never a keyword.
- A C or CONFIRM that confirms an event (inbox.services.confirmations) is that confirmation, not an answer;
  a C with no reminder waiting for it can be a survey's answer (or free text) like any other reply.

A counted answer (a reply that matches an option) raises no "waiting for an answer" alert unless the campaign
asks for it (`replies_raise_alerts`); a free-text reply always does, since it may be a question ("Can we meet
before the hearing?"). A counted reply gets no automatic reply; it always reaches the inbox and the thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.functions import Count

from inbox.events import SurveyAnswered
from inbox.models import Campaign, CampaignRecipient, Direction, Message, Staff
from inbox.services import consent
from inbox.services.confirmations import LEFT
from inbox.services.errors import Forbidden, NotFound
from inbox.services.keywords import Keyword, classify, confirms_opt_in
from inbox.services.limits import clip
from inbox.services.unit_of_work import current_unit

# Trailing punctuation a client adds to an answer ("Yes.", "2!"): dropped before matching.
TRAILING = ".,!?;:)'\" "
# How many of the number's newest campaign texts are looked at for an open survey: a client gets few, and a
# survey behind this many newer campaign texts is long closed.
RECENT_CAMPAIGN_TEXTS = 20
NOT_A_MANAGER = "Survey results are for supervisors and administrators. Ask one of them for this campaign's results."


@dataclass(frozen=True)
class Option:
    answer: str  # what the client types: "1", "YES"
    label: str  # what it means: "Very helpful"


@dataclass(frozen=True)
class Recorded:
    """A reply counted against a survey."""

    recipient_id: int
    campaign_id: int
    answer: str | None  # the option it matched; None: free text
    raises_alerts: bool  # the campaign's choice for its answers; free text always (it may be a question)


def options_of(campaign: Campaign) -> list[Option]:
    """The campaign's answer options, in its order; entries without an answer are skipped (the JSON is free)."""
    options = []
    for item in campaign.answer_options or []:
        if isinstance(item, dict) and str(item.get("answer") or "").strip():
            answer = str(item["answer"]).strip()
            options.append(Option(answer, str(item.get("label") or "").strip()))
    return options


def said(body: str) -> str:
    """A reply as it is matched: whitespace collapsed, trailing punctuation dropped, upper case."""
    return " ".join((body or "").split()).rstrip(TRAILING).upper()


def matched_option(body: str, options: list[Option]) -> str | None:
    words = said(body)
    return next((option.answer for option in options if said(option.answer) == words), None)


# ---------------------------------------------------------------- counting a reply


async def record_answer(message: Message, at: datetime, opt_out_type: str | None = None) -> Recorded | None:
    """Counts the inbound `message` against the survey it answers (inside the inbound unit of work, which
    publishes SurveyAnswered once it commits); None when it answers none (then it is an ordinary text)."""
    keyword = classify(message.body, opt_out_type)
    if keyword in (Keyword.OPT_OUT, Keyword.HELP):
        return None
    survey = await open_survey(message.from_number, at)
    if survey is None:
        return None
    campaign, recipient_id = survey
    answer = matched_option(message.body, options_of(campaign))
    if keyword == Keyword.OPT_IN and answer is None:
        return None  # START, UNSTOP (or YES to a survey without YES): a keyword, not an answer
    if confirms_opt_in(message.body) and await consent.pending_opt_in_request(message.from_number, message):
        return None  # a Y or YES to an opt-in request is consent
    # Conditional, so two replies racing count once and the first one stands.
    counted = await CampaignRecipient.filter(id=recipient_id, reply_id__isnull=True).update(
        reply_id=message.id, answer=clip(answer, CampaignRecipient, "answer") if answer else None, replied_at=at
    )
    if not counted:
        return None
    current_unit().publish(SurveyAnswered(campaign_id=campaign.id, recipient_id=recipient_id, message_id=message.id))
    # Words that match no option may be a question ("Can we meet before the hearing?"): someone must see it.
    return Recorded(recipient_id, campaign.id, answer, campaign.replies_raise_alerts or answer is None)


async def senders_with_surveys(senders: Iterable[str]) -> set[str]:
    """Which of `senders` may be answering a survey: those sent a campaign text that left our outbox (one
    query for a batch of texts; `open_survey` then decides, text by text, for these few)."""
    phones = await Message.filter(
        conversation__phone__in=set(senders),
        direction=Direction.OUTBOUND,
        campaign_id__isnull=False,
        status__in=LEFT,
        outbox_state__isnull=True,
    ).values_list("conversation__phone", flat=True)
    return {str(phone) for phone in phones}


async def open_survey(sender: str, at: datetime) -> tuple[Campaign, int] | None:
    """The survey a reply from `sender` at `at` answers, with the recipient it counts for: the newest survey
    text to that number that had left our outbox by `at`, if its window is still open and it is unanswered."""
    texts = (
        await Message.filter(
            conversation__phone=sender,
            direction=Direction.OUTBOUND,
            campaign_id__isnull=False,
            status__in=LEFT,
            outbox_state__isnull=True,  # "queued" in our outbox (held by a paused campaign …) has not left
        )
        .order_by("-id")
        .limit(RECENT_CAMPAIGN_TEXTS)
        .only("id", "campaign_id", "first_attempt_at", "created_at")
    )
    if not texts:
        return None
    campaigns = {c.id: c for c in await Campaign.filter(id__in={t.campaign_id for t in texts})}
    for text in texts:
        campaign = campaigns.get(text.campaign_id or 0)
        if campaign is None or not options_of(campaign):
            continue  # a bulk message that asks nothing: it does not close a survey's window
        sent_at = text.first_attempt_at or campaign.started_at or text.created_at
        if sent_at > at:
            continue  # sent after the reply was written: it cannot be answering this one
        if at > sent_at + timedelta(days=campaign.reply_window_days):
            return None
        recipient = await CampaignRecipient.get_or_none(
            campaign_id=campaign.id, number=sender, message_id=text.id, reply_id__isnull=True
        )
        return (campaign, recipient.id) if recipient is not None else None
    return None


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Tally:
    option: Option
    count: int


@dataclass(frozen=True)
class Reply:
    """One counted reply (or, in `rows`, one recipient sent the survey, answered or not)."""

    recipient_id: int
    client_id: int | None
    client_name: str
    case_id: int | None
    case_number: str
    number: str
    answer: str | None  # the option matched; None: free text (or no reply)
    message_id: int | None  # the reply
    conversation_id: int | None
    body: str
    replied_at: datetime | None


@dataclass(frozen=True)
class Results:
    campaign: Campaign
    options: list[Option]
    tallies: list[Tally]  # one per option, in the campaign's order
    other: int  # free-text replies
    sent: int  # recipients whose text left our outbox (Twilio took it), delivered or not yet
    replies: list[Reply]  # every counted reply, oldest first

    @property
    def answered(self) -> int:
        return sum(t.count for t in self.tallies) + self.other

    @property
    def is_survey(self) -> bool:
        return bool(self.options)

    @property
    def response_rate(self) -> int | None:
        """Answered of sent, in whole percent; None before anything was sent."""
        return round(100 * self.answered / self.sent) if self.sent else None

    @property
    def free_text(self) -> list[Reply]:
        return [reply for reply in self.replies if reply.answer is None]

    @property
    def most(self) -> int:
        return max([t.count for t in self.tallies] + [self.other, 0])


def require_manager(staff: Staff) -> None:
    if not staff.sees_everything:
        raise Forbidden(NOT_A_MANAGER)


async def campaign_for(staff: Staff, campaign_id: int) -> Campaign:
    require_manager(staff)
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise NotFound("No campaign has this id.")
    return campaign


async def results_for(staff: Staff, campaign_id: int) -> Results:
    """Supervisors and admins only (403), an unknown campaign 404."""
    return await results_of(await campaign_for(staff, campaign_id))


async def results_of(campaign: Campaign) -> Results:
    """The tallies (one GROUP BY), how many were sent, and every counted reply with its client and case."""
    options = options_of(campaign)
    counts = dict(
        await CampaignRecipient.filter(campaign_id=campaign.id, reply_id__isnull=False)
        .annotate(count=Count("id"))
        .group_by("answer")
        .values_list("answer", "count")
    )
    sent = await CampaignRecipient.filter(
        campaign_id=campaign.id, message__status__in=LEFT, message__outbox_state__isnull=True
    ).count()
    known = {option.answer for option in options}
    # An answer no longer among the options (they were edited) is shown as free text, never lost.
    other = sum(n for answer, n in counts.items() if answer is None or answer not in known)
    replied = (
        await CampaignRecipient.filter(campaign_id=campaign.id, reply_id__isnull=False)
        .order_by("replied_at", "id")
        .prefetch_related("client", "case", "reply")
    )
    return Results(
        campaign=campaign,
        options=options,
        tallies=[Tally(option, counts.get(option.answer, 0)) for option in options],
        other=other,
        sent=sent,
        replies=[_reply(r, known) for r in replied],
    )


def _reply(recipient: CampaignRecipient, known: set[str]) -> Reply:
    message = recipient.reply
    return Reply(
        recipient_id=recipient.id,
        client_id=recipient.client_id,
        client_name=recipient.client.name if recipient.client else "",
        case_id=recipient.case_id,
        case_number=recipient.case.number if recipient.case else "",
        number=recipient.number or "",
        answer=recipient.answer if recipient.answer in known else None,
        message_id=recipient.reply_id,
        conversation_id=message.conversation_id if message else None,
        body=message.body if message else "",
        replied_at=recipient.replied_at,
    )


async def rows_for_export(staff: Staff, campaign_id: int) -> tuple[Campaign, list[Reply]]:
    """Every recipient the survey was sent to, answered or not, in the order they were matched."""
    campaign = await campaign_for(staff, campaign_id)
    known = {option.answer for option in options_of(campaign)}
    recipients = (
        await CampaignRecipient.filter(
            campaign_id=campaign.id, message__status__in=LEFT, message__outbox_state__isnull=True
        )
        .order_by("id")
        .prefetch_related("client", "case", "reply")
    )
    return campaign, [_reply(r, known) for r in recipients]
