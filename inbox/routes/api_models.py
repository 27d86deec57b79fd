"""The JSON API's shapes as pydantic models: request bodies, query parameters, answers and the error body.

The OpenAPI document is generated from these (inbox/routes/openapi.py), and every answer is serialised
through them, so the document and the wire cannot disagree. Field names are a contract (PRODUCT.md, "The
contract"): extend them, never rename them. Answers are built from the database rows by each model's `of`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from tortoise.models import Model
from tortoise.queryset import QuerySet

from inbox import models as orm
from inbox.models import AttemptOutcome, ConsentSource, Direction, LinkReason, MediaStatus, MessageStatus, PhoneKind
from inbox.routes.guards import MAX_ID
from inbox.services import messaging, transcripts
from inbox.services.case_events import reminder_status
from inbox.services.queue import QueueState
from inbox.services.surveys import Results

M = TypeVar("M", bound=Model)

Id = Annotated[int, Field(ge=1, le=MAX_ID, description="A record's id.")]

STATUS_WORDS = (
    "Twilio's words: `scheduled` (waiting for its time in our outbox), `queued` (accepted for sending, in our "
    "outbox or at the provider; `provider_sid` tells which), `sending`, `sent`, `delivered`, `undelivered`, "
    "`failed`, `canceled` (stopped before it left), `received` (inbound). `accepted`, `read`, `receiving` and "
    "`partially_delivered` are passed through from the provider."
)
REASON_WORDS = (
    "`sent_from`: the case the last text to the number was sent from (and, for a text staff sent, the case it "
    "was sent from); `texted_before`: another case that has texted the number; `client_phone`: the number is "
    "in a phone field of the case's client; `best_guess`: the single case the best-guess policy chose; "
    "`manual`: filed by hand."
)
MEDIA_WORDS = (
    "`pending`: still being fetched from the provider; `stored`: ready at `url`; `failed`: fetching failed "
    "every time it was tried; `refused`: over the limits (more than 10 items, or over 5 MB)."
)
SOURCE_WORDS = (
    "Who or what made a change: `staff` (ticked or unticked on the client page, or added the number to the "
    "record), `api` (this API), `import` (a CSV import or sample data), `keyword` (the client texted STOP, "
    "START, … — on every record with the number), `reply` (the client answered an opt-in request with Y or "
    "YES), `provider` (Twilio refused a text with 21610, or reported an opt-out keyword with `OptOutType`)."
)


class Input(BaseModel):
    """A request body: JSON types are not coerced ("1" is not an id, "yes" is not true); unknown fields
    are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query parameters: text from the URL, converted to the declared types."""

    model_config = ConfigDict(extra="ignore")


class Answer(BaseModel):
    """An answer: every field is always present (null when there is nothing to say)."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True, validate_by_alias=True)


# ---------------------------------------------------------------- errors and paging


class Error(Answer):
    """Every error answer, whatever its status."""

    error: str = Field(description="What went wrong, for a person to read.")
    fields: dict[str, str] = Field(
        description=(
            "Field name → what is wrong with it; empty when no single field is to blame. Path and query "
            "parameters by their name, body fields by their path (`phones.0.number`)."
        )
    )


class Paging(Query):
    limit: int = Field(50, ge=1, le=200, description="How many items to answer, 1–200; more is refused (422).")
    before: Id | None = Field(
        None, description="An id: answer only items with smaller ids (the next page after the one ending at it)."
    )

    def page_of(self, query: QuerySet[M]) -> QuerySet[M]:
        """This page of `query`: newest (highest id) first, below `before`, at most `limit`."""
        if self.before is not None:
            query = query.filter(id__lt=self.before)
        return query.order_by("-id").limit(self.limit)


class AssignmentQuery(Paging):
    case_id: Id | None = Field(None, description="Only assignments on this case.")


# ---------------------------------------------------------------- clients


class ConsentLogEntry(Answer):
    okay_to_text: bool = Field(description="The phone's `okay_to_text` after the change.")
    opted_out: bool = Field(description="The phone's `opted_out` after the change.")
    source: ConsentSource = Field(description=SOURCE_WORDS)
    at: datetime
    message_id: int | None = Field(
        description="The text that caused it: the client's STOP or YES, or the text Twilio refused."
    )

    @classmethod
    def of(cls, row: orm.ConsentEvent) -> ConsentLogEntry:
        return cls(
            okay_to_text=row.okay_to_text,
            opted_out=row.opted_out,
            source=row.source,
            at=row.at,
            message_id=row.message_id,
        )


class Phone(Answer):
    id: int
    number: str = Field(description="E.164, e.g. `+15551234567`.")
    kind: PhoneKind
    okay_to_text: bool = Field(description="The client agreed to receive texts on this number.")
    opted_out: bool = Field(
        description=(
            "The number texted STOP (or another opt-out keyword), or Twilio refused a text to it with 21610 — "
            "until it texts START, UNSTOP or YES. A number that opted out is never texted, whatever "
            "`okay_to_text` says."
        )
    )
    consent_log: list[ConsentLogEntry] = Field(
        description="Every change of this phone's consent, oldest first; the first entry is how it started."
    )

    @classmethod
    def of(cls, phone: orm.ClientPhone) -> Phone:
        """`phone.consent_log` must be fetched."""
        log = sorted(phone.consent_log, key=lambda row: (row.at, row.id))
        return cls(
            id=phone.id,
            number=phone.number,
            kind=phone.kind,
            okay_to_text=phone.okay_to_text,
            opted_out=phone.opted_out,
            consent_log=[ConsentLogEntry.of(row) for row in log],
        )


class Client(Answer):
    id: int
    name: str
    external_id: str | None = Field(description="The case management system's id.")
    preferred_language: str | None
    phones: list[Phone]
    case_ids: list[int]
    created_at: datetime

    @classmethod
    def of(cls, client: orm.Client) -> Client:
        """`client.phones__consent_log` and `client.cases` must be fetched."""
        return cls(
            id=client.id,
            name=client.name,
            external_id=client.external_id,
            preferred_language=client.preferred_language,
            phones=[Phone.of(phone) for phone in client.phones],
            case_ids=[case.id for case in client.cases],
            created_at=client.created_at,
        )


class PhoneInput(Input):
    number: str = Field(max_length=50, description="Any common format; stored and answered in E.164.")
    kind: PhoneKind = PhoneKind.MOBILE
    okay_to_text: bool = False


class ClientInput(Input):
    name: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(None, max_length=100, description="Must be unique among clients.")
    preferred_language: str | None = Field(None, max_length=20, description="e.g. `es`.")
    phones: list[PhoneInput] = Field(default_factory=list, max_length=20)


class ConsentInput(Input):
    okay_to_text: bool


# ---------------------------------------------------------------- cases and assignments


class Case(Answer):
    id: int
    number: str = Field(description="The case number, unique.")
    title: str
    client_id: int
    legal_problem: str | None
    office: str | None = Field(description="The office's name.")
    external_id: str | None
    opened: date
    closed: date | None
    created_at: datetime

    @classmethod
    def of(cls, case: orm.Case) -> Case:
        """`case.office` must be fetched."""
        return cls(
            id=case.id,
            number=case.number,
            title=case.title,
            client_id=case.client_id,
            legal_problem=case.legal_problem,
            office=case.office.name if case.office else None,
            external_id=case.external_id,
            opened=case.opened_on,
            closed=case.closed_on,
            created_at=case.created_at,
        )


class CaseInput(Input):
    number: str = Field(min_length=1, max_length=50, description="Must be unique.")
    title: str = Field(min_length=1, max_length=300)
    client_id: Id
    legal_problem: str | None = Field(None, max_length=200)
    office: str | None = Field(None, max_length=200, description="An office name; created if new.")
    external_id: str | None = Field(None, max_length=100, description="Must be unique among cases.")


class Assignment(Answer):
    id: int
    case_id: int
    staff_email: str
    primary: bool
    start: date
    end: date | None = Field(description="Current means no end date, or an end date in the future.")

    @classmethod
    def of(cls, assignment: orm.Assignment) -> Assignment:
        """`assignment.staff` must be fetched."""
        return cls(
            id=assignment.id,
            case_id=assignment.case_id,
            staff_email=assignment.staff.email,
            primary=assignment.primary,
            start=assignment.start,
            end=assignment.end,
        )


class AssignmentInput(Input):
    case_id: Id
    staff_email: str = Field(max_length=254, description="An existing staff account.")
    primary: bool = False
    start: date | None = Field(None, description="Defaults to today.")
    end: date | None = Field(None, description="Not before `start`.")


# ---------------------------------------------------------------- messages


def media_url(media_id: int) -> str:
    """Where an attachment is fetched, with the same token as the rest of the API."""
    return f"/api/v1/media/{media_id}"


class TimelineStep(Answer):
    status: MessageStatus
    at: datetime
    error_code: int | None = Field(description="Twilio's error code, if any.")


OUTCOME_WORDS = (
    "`accepted`: the provider took it (or, asked after an unanswered attempt, said it already had it); `retry`: "
    "not taken (the provider busy or failing, no connection), tried again at `next_attempt_at`; `unknown`: no "
    "answer came in time (or the worker sending it stopped), so the provider is asked before it is sent again; "
    "`failed`: refused for good, or given up on."
)
QUEUE_STATE_WORDS = (
    "`scheduled`: waiting for its time; `waiting`: due, waiting for the outbox; `sending`: being handed to the "
    "provider now; `retrying`: the provider could not take it, tried again at `next_attempt_at`; `stuck`: due and "
    "not taken by the provider for longer than the outbox allows (15 minutes unless configured) — retry or cancel "
    "it; `failed`: failed (listed when it failed since the start of today, in the organisation's time zone)."
)


class Attempt(Answer):
    """One try at handing the text to the provider."""

    at: datetime
    outcome: AttemptOutcome = Field(description=OUTCOME_WORDS)
    error_code: int | None = Field(description="The provider's error code, if it gave one (20429 busy, 21211 …).")
    next_attempt_at: datetime | None = Field(description="When it is tried next, for `retry` and `unknown`.")


class Link(Answer):
    case_id: int
    reason: LinkReason = Field(description=REASON_WORDS)


class MediaItem(Answer):
    id: int
    content_type: str = Field(
        description="The stored file's type; before it is stored, the type the provider declared."
    )
    size: int = Field(description="Bytes; 0 until stored. At most 5 MB.")
    url: str = Field(
        description="`/api/v1/media/{id}`: fetch it with the same token. Answers 404 until `status` is `stored`."
    )
    status: MediaStatus = Field(description=MEDIA_WORDS)

    @classmethod
    def of(cls, item: orm.Media) -> MediaItem:
        stored = item.status == MediaStatus.STORED
        return cls(
            id=item.id,
            # Until the file is stored, only the type the provider declared is known.
            content_type=item.content_type if stored else item.declared_type,
            size=item.size,
            url=media_url(item.id),
            status=item.status,
        )


class Message(Answer):
    id: int
    conversation_id: int
    direction: Direction
    from_: str = Field(
        alias="from",
        description=(
            "The sender, normally in E.164; a short code or other odd sender is kept as it came, and texts "
            "sent through a Messaging Service show its SID."
        ),
    )
    to: str = Field(description="The recipient, in E.164.")
    body: str
    status: MessageStatus = Field(description=STATUS_WORDS)
    error_code: int | None = Field(description="Twilio's error code when it failed.")
    error_message: str | None = Field(
        description=(
            "What the error code means, for a person. Also, on a `scheduled` text due in its client's quiet "
            'hours, when it will go ("Held for quiet hours until 8:00 a.m. client time …"), and on a `canceled` '
            "one, who or what cancelled it."
        )
    )
    provider_sid: str | None = Field(description="Twilio's message SID; null until the provider has accepted the text.")
    segments: int = Field(description="How many SMS segments the body takes.")
    case_ids: list[int] = Field(description="Cases the text is filed on that the caller may see, ascending.")
    links: list[Link] = Field(
        description=(
            "Why the text is on each case: one entry per case and rule, in the order they were made. Links to "
            "cases the caller may not see (a phone shared with another client) are left out."
        )
    )
    media: list[MediaItem] = Field(description="The text's attachments (MMS), in the order they came.")
    sent_by: int | None = Field(description="The sending staff member's id; null for inbound texts.")
    send_at: datetime | None = Field(description="When a scheduled text is due; null otherwise.")
    created_at: datetime
    timeline: list[TimelineStep] = Field(description="Every status the text has had, oldest first.")
    attempts: list[Attempt] = Field(
        description="Each try at handing the text to the provider, oldest first; empty for inbound texts."
    )
    next_attempt_at: datetime | None = Field(
        description=(
            "When our outbox next tries to hand the text to the provider (its time, or the next retry); null once "
            "the provider has it, or it ended."
        )
    )

    @classmethod
    def of(cls, message: orm.Message, visible_cases: set[int] | None = None) -> Message:
        """The message as the reader may see it: `visible_cases` None means every case (supervisors, admins);
        otherwise links to cases outside it (a shared phone filed the text on another client's case) are left
        out. `message.links`, `.media` and `.timeline` must be fetched."""
        return cls.model_validate(cls.fields_of(message, visible_cases))

    @staticmethod
    def fields_of(message: orm.Message, visible_cases: set[int] | None) -> dict[str, object]:
        links = [
            link
            for link in sorted(message.links, key=lambda link: link.id)
            if visible_cases is None or link.case_id in visible_cases
        ]
        return {
            "id": message.id,
            "conversation_id": message.conversation_id,
            "direction": message.direction,
            "from": message.from_number,
            "to": message.to_number,
            "body": message.body,
            "status": message.status,
            "error_code": message.error_code,
            "error_message": message.error_message,
            "provider_sid": message.provider_sid,
            "segments": message.segments,
            "case_ids": sorted({link.case_id for link in links}),
            "links": [Link(case_id=link.case_id, reason=LinkReason(link.reason)) for link in links],
            "media": [MediaItem.of(item) for item in sorted(message.media, key=lambda m: (m.position, m.id))],
            "sent_by": message.sent_by_id,
            "send_at": message.send_at,
            "created_at": message.created_at,
            "timeline": [
                TimelineStep(status=step.status, at=step.at, error_code=step.error_code)
                for step in messaging.timeline_of(message)
            ],
            "attempts": [
                Attempt(
                    at=attempt.at,
                    outcome=attempt.outcome,
                    error_code=attempt.error_code,
                    next_attempt_at=attempt.next_attempt_at,
                )
                for attempt in sorted(message.attempts, key=lambda a: (a.at, a.id))
            ],
            "next_attempt_at": message.next_attempt_at if message.outbox_state is not None else None,
        }


class QueueQuery(Paging):
    state: QueueState | None = Field(
        None,
        description=(
            "Only texts in this state: " + QUEUE_STATE_WORDS + " Without it: texts `scheduled`, `queued` or "
            "`accepted` (in our outbox or at the provider)."
        ),
    )


class QueueItem(Message):
    """A waiting text: the message, and when quiet hours let it go if they hold it."""

    state: QueueState | None = Field(
        description="Where the text is in the queue: " + QUEUE_STATE_WORDS + " Null once the provider has it."
    )

    held_until: datetime | None = Field(
        description=(
            "When the text will go: the opening of the quiet-hours window in the client's time zone. Null when "
            "it is not held."
        )
    )


class TranscriptConsentChange(Answer):
    """One change of okay-to-text on a number the case's texts involve (one per change, however many client
    records with the number it touched)."""

    number: str = Field(description="The number, in E.164.")
    okay_to_text: bool = Field(description="`okay_to_text` after the change.")
    opted_out: bool = Field(description="`opted_out` after the change.")
    source: ConsentSource = Field(description=SOURCE_WORDS)
    what: str = Field(description='The change in words: "Opted out: the client texted STOP".')
    by: str = Field(description="The staff member's name, or what made the change (client's keyword, Twilio, …).")
    at: datetime
    message_id: int | None = Field(
        description="The text that caused it: the client's STOP or YES, or the text Twilio refused."
    )


class TranscriptLinkChange(Answer):
    """A text filed on a case, or taken off it."""

    change: Literal["filed", "removed"]
    message_id: int
    case_id: int
    case_number: str
    reason: LinkReason = Field(description="The rule that filed it. " + REASON_WORDS)
    by: str = Field(description="Who filed it or took it off: a staff member's name, or `automatic` for a rule.")
    at: datetime


class TranscriptEntry(Answer):
    """One line of the transcript, as the printable page and the CSV show it."""

    at: datetime = Field(description="In the organisation's time zone (its offset says which).")
    kind: Literal["message", "consent", "link"]
    direction: Direction | None = Field(description="For a `message`; null otherwise.")
    sender: str = Field(
        description=(
            "For a `message`: the staff member's name, the client's name with `(client)` (or `client`), or "
            "`automatic` (an auto-reply, a reminder …). For `consent` and `link`: who or what made the change."
        )
    )
    status: MessageStatus | None = Field(description="For a `message`: its status now; null otherwise.")
    body: str = Field(description="A text's body, or the change in words.")
    attachments: list[str] = Field(description="A text's attachment file names, in order.")
    detail: str = Field(description="The status timeline and any error in words, or more about the change.")
    message_id: int | None = Field(description="The text it is, or concerns.")


class Transcript(Answer):
    case_id: int
    messages: list[Message] = Field(description="Oldest first.")
    time_zone: str = Field(description="The organisation's time zone, which `entries` times are given in.")
    consent_events: list[TranscriptConsentChange] = Field(
        description=(
            "Consent changes of the client's numbers and of every number the case's texts were exchanged with, "
            "oldest first (changes on other clients' records the caller may not see are left out)."
        )
    )
    link_changes: list[TranscriptLinkChange] = Field(
        description="Every filing of a text on this case, and every text taken off it, oldest first."
    )
    entries: list[TranscriptEntry] = Field(
        description="The texts, consent changes and link changes merged, oldest first: what the page and CSV show."
    )

    @classmethod
    def of(cls, transcript: transcripts.Transcript) -> Transcript:
        assert transcript.case is not None
        return cls(
            case_id=transcript.case.id,
            messages=[Message.of(m, transcript.visible_cases) for m in transcript.messages],
            time_zone=transcript.time_zone,
            consent_events=[
                TranscriptConsentChange(
                    number=c.number,
                    okay_to_text=c.okay_to_text,
                    opted_out=c.opted_out,
                    source=ConsentSource(c.source),
                    what=c.what,
                    by=c.by,
                    at=c.at,
                    message_id=c.message_id,
                )
                for c in transcript.consent_changes
            ],
            link_changes=[
                TranscriptLinkChange(
                    change=change.change.value,
                    message_id=change.message_id,
                    case_id=change.case_id,
                    case_number=change.case_number,
                    reason=LinkReason(change.reason),
                    by=change.by,
                    at=change.at,
                )
                for change in transcript.link_changes
            ],
            entries=[
                TranscriptEntry(
                    at=e.at,
                    kind=e.kind.value,
                    direction=Direction(e.direction) if e.direction else None,
                    sender=e.sender,
                    status=MessageStatus(e.status) if e.status else None,
                    body=e.body,
                    attachments=list(e.attachments),
                    detail=e.detail,
                    message_id=e.message_id,
                )
                for e in transcript.entries
            ],
        )


class MessageInput(Input):
    """Give at least one of `case_id`, `client_id` or `to`."""

    body: str = Field(
        min_length=1,
        max_length=1600,
        description="Not blank; at most the organisation's character limit (160 unless changed, never over 1600).",
    )
    case_id: Id | None = Field(
        None, description="File the text on this case; without `to` or `client_id`, text the case's client."
    )
    client_id: Id | None = Field(None, description="Text this client's mobile (or first number).")
    to: str | None = Field(None, max_length=50, description="Text this number (any common format).")
    send_at: AwareDatetime | None = Field(
        None, description="Schedule the text; the offset is required. A time already past sends at once."
    )


class LinkInput(Input):
    case_id: Id = Field(description="A case the caller may see.")


# ---------------------------------------------------------------- what texts brought to cases


class CaseNote(Answer):
    id: int
    case_id: int
    message_id: int | None = Field(description="The text that made the note.")
    author: str = Field(description="Who wrote the text, e.g. `Maria Lopez (text from (404) 538-7319)`.")
    body: str = Field(description="What the text said.")
    at: datetime = Field(description="When the text was sent or received.")

    @classmethod
    def of(cls, note: orm.CaseNote) -> CaseNote:
        return cls(
            id=note.id,
            case_id=note.case_id,
            message_id=note.message_id,
            author=note.author,
            body=note.body,
            at=note.at,
        )


class Document(Answer):
    id: int = Field(description="The attachment's id (as in a message's `media`).")
    message_id: int = Field(description="The text it came with.")
    content_type: str
    size: int = Field(description="Bytes.")
    filename: str = Field(description="A name of our making, e.g. `photo-41-1.jpg`.")
    url: str = Field(description="`/api/v1/media/{id}`: fetch it with the same token.")
    created_at: datetime

    @classmethod
    def of(cls, item: orm.Media) -> Document:
        return cls(
            id=item.id,
            message_id=item.message_id,
            content_type=item.content_type,
            size=item.size,
            filename=item.filename,
            url=media_url(item.id),
            created_at=item.created_at,
        )


class Alert(Answer):
    id: int
    case_id: int
    message_id: int = Field(description="The latest text waiting for an answer.")
    count: int = Field(
        description="How many texts from the client are waiting on it (one alert is open per conversation and case)."
    )
    assignee_emails: list[str] = Field(description="Whom it was addressed to when the text arrived (may be empty).")
    created_at: datetime
    dismissed_at: datetime | None = Field(description="Null while open.")
    dismissed_by: str | None = Field(
        description="The email of whoever dismissed it (or answered the client); null while open."
    )

    @classmethod
    def of(cls, alert: orm.Alert) -> Alert:
        """`alert.assignees__staff` and `alert.dismissed_by` must be fetched."""
        return cls(
            id=alert.id,
            case_id=alert.case_id,
            message_id=alert.message_id,
            count=alert.text_count,
            assignee_emails=sorted(a.staff.email for a in alert.assignees),
            created_at=alert.created_at,
            dismissed_at=alert.dismissed_at,
            dismissed_by=alert.dismissed_by.email if alert.dismissed_by_id and alert.dismissed_by else None,
        )


# ---------------------------------------------------------------- case events and reminders

EVENT_KINDS = Literal["hearing", "appointment", "meeting", "deadline"]
REMINDER_STATUS_WORDS = (
    "`pending` (scheduled in our outbox), `sending` (due, in our outbox), `sent` (handed to the provider; follow "
    "the message), `failed`, `canceled` (the event was cancelled or moved so its time passed, or the text was "
    "cancelled), `skipped` (never made: its time had passed when the event was saved, or the client has no number)."
)


class ReminderInput(Input):
    minutes_before: int = Field(ge=0, le=366 * 24 * 60, description="The lead time before the event's start.")
    at_local_time: str | None = Field(
        None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description=(
            "`HH:MM`: instead of exactly `minutes_before` the start, send on the client's calendar day of that "
            "moment at this time of day in the client's time zone (`10080` and `09:00`: 9 a.m. a week before)."
        ),
    )
    quick_entry_id: Id | None = Field(
        None,
        description=(
            "The quick entry whose text (in the client's language) is sent, with `{event_title}`, `{event_date}`, "
            "`{event_time}` and `{event_place}` filled in; default: the quick entry named `Event reminder`, else a "
            "built-in text."
        ),
    )
    ask_confirmation: bool = Field(False, description="Kept with the reminder.")


class EventInput(Input):
    kind: EVENT_KINDS
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime = Field(description="The offset is required.")
    ends_at: AwareDatetime | None = Field(None, description="Not before `starts_at`.")
    place: str | None = Field(None, max_length=300)
    notes: str | None = Field(None, max_length=5000)
    attendee_emails: list[Annotated[str, Field(max_length=254)]] | None = Field(
        None, max_length=50, description="Staff accounts attending."
    )
    reminders: list[ReminderInput] | None = Field(
        None, max_length=20, description="Omitted: the organisation's defaults for the kind."
    )


class EventPatch(Input):
    """Only the fields given change. A new `starts_at` moves the reminders still pending (a reminder whose new
    time has passed is cancelled); `reminders` replaces those not yet sent."""

    kind: EVENT_KINDS | None = None
    title: str | None = Field(None, min_length=1, max_length=200)
    starts_at: AwareDatetime | None = Field(None, description="The offset is required.")
    ends_at: AwareDatetime | None = None
    place: str | None = Field(None, max_length=300)
    notes: str | None = Field(None, max_length=5000)
    attendee_emails: list[Annotated[str, Field(max_length=254)]] | None = Field(None, max_length=50)
    reminders: list[ReminderInput] | None = Field(None, max_length=20)


class Reminder(Answer):
    id: int
    minutes_before: int
    at_local_time: str | None
    quick_entry_id: int | None
    ask_confirmation: bool
    send_at: datetime | None = Field(description="When the text is due (null: not made).")
    message_id: int | None = Field(description="The scheduled text in the outbox (null: not made, see `skipped`).")
    status: str = Field(description=REMINDER_STATUS_WORDS)
    skipped: str | None = Field(description="Why no text was made.")

    @classmethod
    def of(cls, row: orm.EventReminder, status: str) -> Reminder:
        """`row.message` must be fetched."""
        message = row.message
        return cls(
            id=row.id,
            minutes_before=row.minutes_before,
            at_local_time=row.at_local_time,
            quick_entry_id=row.quick_entry_id,
            ask_confirmation=row.ask_confirmation,
            send_at=message.send_at if message is not None else None,
            message_id=row.message_id,
            status=status,
            skipped=row.skipped or None,
        )


STAFF_REMINDER_STATUS_WORDS = (
    "`pending` (scheduled in our outbox), `sending`, `sent`, `failed`, `canceled` (the task was done or moved, the "
    "staff member's reminders were turned off, or the text was cancelled), `skipped` (never made: no mobile on "
    "the profile, reminders turned off, or its time had passed)."
)


class StaffReminder(Answer):
    id: int
    staff_id: int = Field(description="Whose profile mobile it is texted to.")
    minutes_before: int
    at_local_time: str | None = Field(description="`HH:MM` in the organisation's time zone, that day.")
    send_at: datetime | None = Field(description="When the text is due (null: not made).")
    message_id: int | None = Field(description="The scheduled text in the outbox (null: not made, see `skipped`).")
    status: str = Field(description=STAFF_REMINDER_STATUS_WORDS)
    skipped: str | None = Field(description="Why no text was made.")

    @classmethod
    def of(cls, row: orm.StaffReminder) -> StaffReminder:
        """`row.message` must be fetched."""
        message = row.message
        return cls(
            id=row.id,
            staff_id=row.staff_id,
            minutes_before=row.minutes_before,
            at_local_time=row.at_local_time,
            send_at=message.send_at if message is not None else None,
            message_id=row.message_id,
            status=reminder_status(row),
            skipped=row.skipped or None,
        )


class Event(Answer):
    id: int
    case_id: int
    kind: str = Field(description="`hearing`, `appointment`, `meeting` or `deadline`.")
    title: str
    starts_at: datetime
    ends_at: datetime | None
    place: str
    notes: str
    attendee_emails: list[str]
    cancelled_at: datetime | None
    confirmed_at: datetime | None
    created_at: datetime
    reminders: list[Reminder]
    staff_reminders: list[StaffReminder] = Field(description="Texts to each staff attendee's profile mobile.")

    @classmethod
    def of(cls, event: orm.CaseEvent) -> Event:
        """`event.attendees__staff`, `event.reminders__message` and `event.staff_reminders__message` must be fetched."""
        return cls(
            id=event.id,
            case_id=event.case_id,
            kind=event.kind.value,
            title=event.title,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            place=event.place,
            notes=event.notes,
            attendee_emails=[a.staff.email for a in event.attendees],
            cancelled_at=event.cancelled_at,
            confirmed_at=event.confirmed_at,
            created_at=event.created_at,
            reminders=[Reminder.of(row, reminder_status(row)) for row in sorted(event.reminders, key=lambda r: r.id)],
            staff_reminders=[StaffReminder.of(row) for row in sorted(event.staff_reminders, key=lambda r: r.id)],
        )


# ---------------------------------------------------------------- tasks and staff reminders


class TaskInput(Input):
    title: str = Field(min_length=1, max_length=200)
    due_at: AwareDatetime = Field(description="The offset is required.")
    assignee_id: Id | None = Field(None, description="The staff member to do it; default: the caller.")
    notes: str | None = Field(None, max_length=5000)


class TaskPatch(Input):
    """Only the fields given change. A new `due_at` moves the pending reminders; `done: true` cancels them."""

    title: str | None = Field(None, min_length=1, max_length=200)
    due_at: AwareDatetime | None = Field(None, description="The offset is required.")
    assignee_id: Id | None = None
    notes: str | None = Field(None, max_length=5000)
    done: bool | None = Field(None, description="`true` marks it done (now), `false` open again.")


class Task(Answer):
    id: int
    case_id: int | None
    title: str
    due_at: datetime
    assignee_id: int
    assignee_email: str
    notes: str
    done_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    reminders: list[StaffReminder] = Field(description="Texts to the assignee's profile mobile.")

    @classmethod
    def of(cls, task: orm.Task) -> Task:
        """`task.assignee` and `task.staff_reminders__message` must be fetched."""
        return cls(
            id=task.id,
            case_id=task.case_id,
            title=task.title,
            due_at=task.due_at,
            assignee_id=task.assignee_id,
            assignee_email=task.assignee.email,
            notes=task.notes,
            done_at=task.done_at,
            created_by_id=task.created_by_id,
            created_at=task.created_at,
            reminders=[StaffReminder.of(r) for r in sorted(task.staff_reminders, key=lambda r: r.id)],
        )


# ---------------------------------------------------------------- surveys


class SurveyReply(Answer):
    client_id: int | None = Field(description="The client it came from (null: the client record was deleted).")
    message_id: int = Field(description="The inbound text that was counted.")
    body: str = Field(description="What the client wrote, as they wrote it.")
    option: str | None = Field(description="The answer option it matched; null: a free-text reply.")


class SurveyResults(Answer):
    options: dict[str, int] = Field(
        description="Each answer option (as the client types it) → how many replies matched it, in the survey's order."
    )
    other: int = Field(description="Replies that matched no option (free text).")
    replies: list[SurveyReply] = Field(description="Every counted reply, oldest first.")

    @classmethod
    def of(cls, results: Results) -> SurveyResults:
        return cls(
            options={tally.option.answer: tally.count for tally in results.tallies},
            other=results.other,
            replies=[
                SurveyReply(client_id=r.client_id, message_id=r.message_id, body=r.body, option=r.answer)
                for r in results.replies
                if r.message_id is not None
            ],
        )


# ---------------------------------------------------------------- campaigns (bulk texts)

DAY = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="A day, `YYYY-MM-DD` (inclusive).")
EXCLUSION_WORDS = (
    "Why the client does not get the text: `no_consent` (no okay-to-text on record), `opted_out` (texted STOP, or "
    "Twilio said so), `no_mobile` (no mobile number), `duplicate` (another recipient has the same number: one text "
    "per number) — decided at the preview; and, once sent, `invalid_number` (Twilio refused the number) or "
    "`opted_out`/`no_consent` (the outbox's consent check stopped it as it left: a STOP after the preview)."
)


class CampaignFilterInput(Input):
    """Every case matching all the fields given; none given: every case. One recipient per matched case."""

    legal_problem: str | None = Field(None, max_length=200, description="The case's legal problem (any case).")
    office: str | None = Field(None, max_length=200, description="The case's office, by name.")
    case_state: Literal["open", "closed", "any"] = "any"
    closed_after: str | None = DAY
    closed_before: str | None = DAY
    assignee_email: str | None = Field(None, max_length=254, description="Currently assigned to the case.")
    language: str | None = Field(None, max_length=20, description="The client's preferred language (`es`).")
    event_after: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Has a case event (not cancelled) starting on or after this day (UTC).",
    )
    event_before: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="… and on or before this one.")


class CampaignInput(Input):
    name: str = Field(min_length=1, max_length=200, description="Only staff see it.")
    body: str = Field(
        min_length=1,
        max_length=1600,
        description="The text; `{client_first_name}`, `{client_name}`, `{case_number}`, `{case_title}`, "
        "`{office_name}`, `{office_phone}`, `{staff_name}`, `{staff_first_name}`, `{organisation_name}` and "
        "`{today}` are filled in for each recipient.",
    )
    filter: CampaignFilterInput | None = Field(None, description="Omitted: every case.")
    options: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        None, max_length=20, description='A survey\'s answers (`["1", "2"]`); omitted: a plain bulk text.'
    )
    reply_window_days: int | None = Field(None, ge=1, le=365, description="Replies this long after count (7).")
    alerts_on_replies: bool | None = Field(None, description="Survey replies raise alerts (default false).")


class Excluded(Answer):
    client_id: int | None
    number: str | None = Field(description="E.164; null: the client has no mobile number.")
    reason: str = Field(description=EXCLUSION_WORDS)


class CampaignCreated(Answer):
    id: int
    status: str = Field(description="`draft`: nothing is sent until `POST /campaigns/{id}/start`.")
    recipients: int = Field(description="How many get the text.")
    excluded: list[Excluded]


class CampaignProgress(Answer):
    id: int
    status: str = Field(description="`draft`, `sending`, `paused`, `canceled` or `finished`.")
    recipients: int = Field(description="Texts made (a draft: that will be made).")
    waiting: int = Field(description="Still in our outbox (held while paused).")
    sent: int = Field(description="Handed to Twilio, not (yet) delivered.")
    delivered: int
    failed: int = Field(description="Refused by Twilio or undelivered.")
    excluded: list[Excluded] = Field(
        description="Left out at the preview, then those the outbox or Twilio stopped (cancelled with the "
        "campaign: not listed)."
    )
    replies: int


# ---------------------------------------------------------------- outgoing webhooks

WebhookEventType = Literal[
    "message.received", "message.status", "consent.changed", "alert.raised", "alert.dismissed", "campaign.finished"
]


class WebhookEndpointInput(Input):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="Where events are POSTed: `https://`, or `http://` to 127.0.0.1 or localhost (development).",
    )
    events: list[WebhookEventType] = Field(min_length=1, description="The event types it gets.")


class WebhookEndpointCreated(Answer):
    id: int
    secret: str = Field(
        description="The `whsec_` secret that signs its deliveries (Standard Webhooks). Shown this once only."
    )


class WebhookEndpoint(Answer):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str = Field(description="Why it is disabled (empty when it is enabled).")
    failing_since: datetime | None = Field(description="Since when every delivery has failed; null when healthy.")
    created_at: datetime

    @classmethod
    def of(cls, endpoint: orm.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=list(endpoint.events),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
        )
