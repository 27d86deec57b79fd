"""The data: Tortoise models, enums and indexes. No behaviour beyond small derived properties."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, cast

from tortoise import fields
from tortoise.models import Model as TortoiseModel
from tortoise.models import ModelMeta
from tortoise.queryset import ValuesListQuery


class _WithoutSourceComments(ModelMeta):
    """Tortoise reads each model's source for `#:` field comments (inspect.getsource parses this whole file once
    per model: 0.6 s of every process's start-up, for 38 models). This file writes none; its docs are docstrings."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        attrs.setdefault("_no_comments", True)
        return super().__new__(mcs, name, bases, attrs)


class Model(TortoiseModel, metaclass=_WithoutSourceComments):
    class Meta:
        abstract = True


def today() -> date:
    """A named default, so migrations can refer to it (the writer cannot import builtins)."""
    return date.today()


class Role(StrEnum):
    ADVOCATE = "advocate"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class PhoneKind(StrEnum):
    MOBILE = "mobile"
    HOME = "home"
    WORK = "work"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    RECEIVING = "receiving"
    RECEIVED = "received"
    PARTIALLY_DELIVERED = "partially_delivered"


class OutboxState(StrEnum):
    """Where an outbound text is in our outbox (None: not in it — received, handed to Twilio, or ended).

    The message's `status` keeps Twilio's words (`scheduled`, then `queued` until Twilio takes it);
    this says what the outbox is doing with it."""

    WAITING = "waiting"  # due at next_attempt_at (a scheduled text's time, or at once)
    SENDING = "sending"  # claimed by a worker under a lease: the provider call may be in flight
    RETRYING = "retrying"  # an attempt failed in a way worth retrying; the next is at next_attempt_at
    HELD = "held"  # a paused campaign's text: never claimed until the campaign resumes


class AttemptOutcome(StrEnum):
    ACCEPTED = "accepted"  # Twilio took it (or a look-up found that it had)
    RETRY = "retry"  # not taken (429, 5xx, no connection): tried again at next_attempt_at
    UNKNOWN = "unknown"  # the answer never came (a timeout, a worker that died): looked up before any retry
    FAILED = "failed"  # refused for good, or given up on


class LinkingPolicy(StrEnum):
    DEFAULT = "default"  # LegalServer's rules: sent-from case, every case that texted, every case with the number
    BEST_GUESS = "best_guess"  # only the case most recently texted from, else the newest case with the number


class AlertPolicy(StrEnum):
    PRIMARY = "primary"  # the case's primary assignee
    ALL = "all"  # every current assignee


class LinkReason(StrEnum):
    SENT_FROM = "sent_from"  # the case the last text to this number was sent from
    TEXTED_BEFORE = "texted_before"  # another case that has texted this number
    CLIENT_PHONE = "client_phone"  # the number is on the case's client record
    BEST_GUESS = "best_guess"  # the best-guess policy's single choice
    MANUAL = "manual"  # linked by hand


class MediaStatus(StrEnum):
    PENDING = "pending"  # waiting to be fetched from the provider
    STORED = "stored"
    FAILED = "failed"  # fetching failed every time it was tried
    REFUSED = "refused"  # over the limits: too many items, too large


class ConsentSource(StrEnum):
    STAFF = "staff"  # a person ticked or unticked okay-to-text
    API = "api"  # the case management system said so
    IMPORT = "import"  # a CSV import
    KEYWORD = "keyword"  # the client texted STOP / START / …
    REPLY = "reply"  # the client answered an opt-in request with Y or YES
    PROVIDER = "provider"  # Twilio refused with 21610, or sent OptOutType


class AutoReplyMode(StrEnum):
    OFF = "off"
    ALWAYS = "always"
    OUTSIDE_HOURS = "outside_hours"


class MessagePurpose(StrEnum):
    """Why the app itself sent a text (None: a person wrote it)."""

    AUTO_REPLY = "auto_reply"
    HELP = "help"
    OPT_IN_REQUEST = "opt_in_request"
    KEYWORD_CONFIRMATION = "keyword_confirmation"  # START / YES confirmed
    STOP_CONFIRMATION = "stop_confirmation"  # the one text allowed after a STOP
    TEST = "test"
    EVENT_REMINDER = "event_reminder"  # a client reminder of a case event (hearing, appointment …)
    CAMPAIGN = "campaign"  # one recipient's text of a bulk message or survey
    STAFF_REMINDER = "staff_reminder"  # a task or calendar reminder to a staff member's own mobile


class EventKind(StrEnum):
    HEARING = "hearing"
    APPOINTMENT = "appointment"
    MEETING = "meeting"
    DEADLINE = "deadline"


class CampaignState(StrEnum):
    DRAFT = "draft"  # composed and previewed; nothing queued yet
    SENDING = "sending"  # its texts are in the outbox
    PAUSED = "paused"  # its unsent texts are held
    CANCELED = "canceled"  # its unsent texts were canceled
    FINISHED = "finished"  # every text has left the outbox (sent, delivered or failed)


class Exclusion(StrEnum):
    """Why a matched recipient does not get a campaign's text."""

    NO_CONSENT = "no_consent"  # no okay-to-text on record
    OPTED_OUT = "opted_out"  # texted STOP (or Twilio said so)
    NO_MOBILE = "no_mobile"  # no textable number
    DUPLICATE = "duplicate"  # another recipient has the same number: one text per number
    INVALID_NUMBER = "invalid_number"  # Twilio refused the number (21211 …) when it was sent


class Organisation(Model):
    """The one organisation this installation serves, and its texting rules."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200, default="Case Inbox")
    char_limit = fields.IntField(default=160)
    linking_policy = fields.CharEnumField(LinkingPolicy, max_length=20, default=LinkingPolicy.DEFAULT)
    alert_policy = fields.CharEnumField(AlertPolicy, max_length=20, default=AlertPolicy.PRIMARY)
    dismiss_alerts_on_reply = fields.BooleanField(default=True)  # answering the client answers their alerts
    delete_media_at_provider = fields.BooleanField(default=False)
    # Consent: staff may send an opt-in request ("reply Y or YES to confirm") before texting.
    opt_in_requests = fields.BooleanField(default=True)
    opt_in_text = fields.TextField(
        default=(
            "We have received your request to get text messages about your case. Please reply Y or YES "
            "to confirm. Message and data rates may apply. Reply STOP to stop, HELP for help."
        )
    )
    # Quiet hours (TCPA): scheduled and bulk texts wait for this window in the client's time zone.
    quiet_hours_start = fields.IntField(default=8)  # hour, 0-23
    quiet_hours_end = fields.IntField(default=21)  # hour, 1-24
    time_zone = fields.CharField(max_length=64, default="America/New_York")
    # Client reminders per event kind: {"hearing": [{"minutes_before": 10080, "at_local_time": "09:00"}, …]};
    # None: the built-in defaults (inbox.services.case_events.BUILT_IN_REMINDERS).
    reminder_defaults: dict[str, list[dict[str, Any]]] | None = fields.JSONField(null=True)

    class Meta:
        table = "organisation"


class Office(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    phone = fields.CharField(max_length=20, null=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff: fields.ReverseRelation[Staff]
    cases: fields.ReverseRelation[Case]
    channels: fields.ReverseRelation[Channel]

    class Meta:
        table = "office"


class Staff(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    role = fields.CharEnumField(Role, max_length=20)
    password_hash = fields.CharField(max_length=200, null=True)
    mobile = fields.CharField(max_length=20, null=True)
    # Task and calendar reminders texted to `mobile` (the profile setting; a STOP from the mobile also stops them).
    staff_reminders = fields.BooleanField(default=True, db_default=True)
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="staff", null=True, on_delete=fields.SET_NULL
    )
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    office_id: int | None
    api_tokens: fields.ReverseRelation[ApiToken]
    assignments: fields.ReverseRelation[Assignment]
    sent_messages: fields.ReverseRelation[Message]
    links_made: fields.ReverseRelation[MessageLink]
    alerts_dismissed: fields.ReverseRelation[Alert]
    alerts: fields.ReverseRelation[AlertAssignee]
    reads: fields.ReverseRelation[ConversationRead]
    consent_changes: fields.ReverseRelation[ConsentEvent]
    sessions: fields.ReverseRelation[StaffSession]
    tasks: fields.ReverseRelation[Task]
    reminders: fields.ReverseRelation[StaffReminder]

    class Meta:
        table = "staff"

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


class ApiToken(Model):
    """A bearer token for the JSON API. Only its SHA-256 is kept."""

    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="api_tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff_id: int

    class Meta:
        table = "api_token"


class StaffSession(Model):
    """One browser session, signed in or not yet. The cookie holds a random key: only its SHA-256 is kept."""

    id = fields.IntField(primary_key=True)
    key_hash = fields.CharField(max_length=64, unique=True)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="sessions", null=True, on_delete=fields.CASCADE
    )
    csrf_token = fields.CharField(max_length=64, default="")
    data: dict[str, Any] = fields.JSONField(default=dict)  # whatever else the session holds
    created_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    idle_expires_at = fields.DatetimeField(db_index=True)  # last seen + the idle timeout
    expires_at = fields.DatetimeField(db_index=True)  # created + the absolute lifetime

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff_id: int | None

    class Meta:
        table = "staff_session"


class Client(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    external_id = fields.CharField(max_length=100, null=True, unique=True)
    preferred_language = fields.CharField(max_length=20, null=True)
    time_zone = fields.CharField(max_length=64, null=True)  # unknown: derived from the number's region
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    phones: fields.ReverseRelation[ClientPhone]
    cases: fields.ReverseRelation[Case]

    class Meta:
        table = "client"


class ClientPhone(Model):
    """A client's phone number in E.164, with its okay-to-text state."""

    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="phones", on_delete=fields.CASCADE
    )
    # E.164 (at most 16 characters), as wide as Conversation.phone: Tortoise checks a filter's value
    # against the column, and every sender a webhook names is looked up here.
    number = fields.CharField(max_length=64, db_index=True)
    kind = fields.CharEnumField(PhoneKind, max_length=10, default=PhoneKind.MOBILE)
    okay_to_text = fields.BooleanField(default=False)
    opted_out = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    client_id: int
    consent_log: fields.ReverseRelation[ConsentEvent]

    class Meta:
        table = "client_phone"

    @property
    def may_text(self) -> bool:
        return self.okay_to_text and not self.opted_out


class Case(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=50, unique=True)
    title = fields.CharField(max_length=300)
    legal_problem = fields.CharField(max_length=200, null=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="cases", on_delete=fields.CASCADE
    )
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="cases", null=True, on_delete=fields.SET_NULL
    )
    external_id = fields.CharField(max_length=100, null=True, unique=True)
    opened_on = fields.DateField(default=today)
    closed_on = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    client_id: int
    office_id: int | None
    assignments: fields.ReverseRelation[Assignment]
    sent_messages: fields.ReverseRelation[Message]
    message_links: fields.ReverseRelation[MessageLink]
    notes: fields.ReverseRelation[CaseNote]
    alerts: fields.ReverseRelation[Alert]
    events: fields.ReverseRelation[CaseEvent]
    tasks: fields.ReverseRelation[Task]

    class Meta:
        table = "case"


class Assignment(Model):
    """Staff on a case. Current means no end date, or an end date in the future."""

    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="assignments", on_delete=fields.CASCADE
    )
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="assignments", on_delete=fields.CASCADE
    )
    primary = fields.BooleanField(default=False)
    start = fields.DateField(default=today)
    end = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff_id: int
    case_id: int

    class Meta:
        table = "assignment"


class Channel(Model):
    """A sending number (or Messaging Service) of one Twilio account."""

    id = fields.IntField(primary_key=True)
    label = fields.CharField(max_length=100)
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="channels", null=True, on_delete=fields.SET_NULL
    )
    account_sid = fields.CharField(max_length=64)
    from_number = fields.CharField(max_length=20, null=True)
    messaging_service_sid = fields.CharField(max_length=64, null=True)
    is_simulator = fields.BooleanField(default=False)
    # The auth token, encrypted with a key derived from INBOX_SECRET_KEY (None: from the environment).
    auth_token_encrypted: str | None = fields.TextField(null=True)
    throughput = fields.IntField(default=1)  # segments per second: long code 1, toll-free 3, short code 100
    # Pacing across every worker: the theoretical time the channel's next segment may leave (GCRA).
    pace_next_at = fields.DatetimeField(null=True)
    help_text = fields.TextField(default="Case Inbox: reply STOP to stop texts, START to receive them again.")
    # Twilio's default opt-out handling answers STOP/START/HELP itself on long codes and toll-free numbers.
    twilio_handles_opt_out = fields.BooleanField(default=True)
    auto_reply_mode = fields.CharEnumField(AutoReplyMode, max_length=20, default=AutoReplyMode.OFF)
    auto_reply_text = fields.TextField(default="")
    office_hours: dict[str, list[str]] = fields.JSONField(
        default=dict
    )  # {"mon": ["09:00", "17:00"], …}; missing day: closed
    time_zone = fields.CharField(max_length=64, default="America/New_York")
    call_response = fields.TextField(default="Thank you for calling. This number does not accept calls.")
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    office_id: int | None
    conversations: fields.ReverseRelation[Conversation]

    class Meta:
        table = "channel"


class Conversation(Model):
    """Everything exchanged with one phone number on one channel."""

    id = fields.IntField(primary_key=True)
    channel: fields.ForeignKeyRelation[Channel] = fields.ForeignKeyField(
        "models.Channel", related_name="conversations", on_delete=fields.CASCADE
    )
    # The sender as Twilio named it: E.164 for a phone, else as it came (whatsapp:+1…, a named sender).
    phone = fields.CharField(max_length=64, db_index=True)
    last_message_at = fields.DatetimeField(null=True, db_index=True)
    last_message_preview = fields.CharField(max_length=200, default="")
    last_direction = fields.CharEnumField(Direction, max_length=10, null=True)
    last_auto_reply_at = fields.DatetimeField(null=True)  # at most one auto-reply a day
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    channel_id: int
    messages: fields.ReverseRelation[Message]
    reads: fields.ReverseRelation[ConversationRead]

    class Meta:
        table = "conversation"
        unique_together = (("channel", "phone"),)


class Message(Model):
    id = fields.IntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    direction = fields.CharEnumField(Direction, max_length=10)
    from_number = fields.CharField(max_length=64)
    to_number = fields.CharField(max_length=64)
    body = fields.TextField()
    status = fields.CharEnumField(MessageStatus, max_length=20)
    provider_sid = fields.CharField(max_length=64, null=True, unique=True)
    segments = fields.IntField(default=1)
    encoding = fields.CharField(max_length=10, default="GSM-7")
    error_code = fields.IntField(null=True)
    error_message = fields.CharField(max_length=500, null=True)
    sent_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="sent_messages", null=True, on_delete=fields.SET_NULL
    )
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="sent_messages", null=True, on_delete=fields.SET_NULL
    )
    send_at = fields.DatetimeField(null=True)
    purpose = fields.CharEnumField(MessagePurpose, max_length=30, null=True)
    # The outbox: the row is the job (inbox.services.outbox).
    outbox_state = fields.CharEnumField(OutboxState, max_length=12, null=True, db_index=True)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    # Attempts in the current round (a person's retry starts a new one).
    attempt_count = fields.IntField(default=0, db_default=0)
    lease_owner = fields.CharField(max_length=100, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    outcome_unknown = fields.BooleanField(default=False, db_default=False)  # look Twilio up before sending again
    first_attempt_at = fields.DatetimeField(null=True)  # the look-up searches from here
    campaign: fields.ForeignKeyNullableRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="messages", null=True, on_delete=fields.SET_NULL
    )  # indexed by migration 0008 (Tortoise's AddField makes no index on SQLite)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    conversation_id: int
    sent_by_id: int | None
    case_id: int | None
    campaign_id: int | None
    timeline: fields.ReverseRelation[MessageStatusEvent]
    attempts: fields.ReverseRelation[SendAttempt]
    links: fields.ReverseRelation[MessageLink]
    removed_links: fields.ReverseRelation[RemovedLink]
    notes: fields.ReverseRelation[CaseNote]
    media: fields.ReverseRelation[Media]
    alerts: fields.ReverseRelation[Alert]
    consent_events: fields.ReverseRelation[ConsentEvent]

    @property
    def shown_at(self) -> datetime:
        """Where a thread places it: a text that waited for its time, when it went (or was canceled); any
        other, when it was written or arrived. Waiting texts are apart, by their send_at."""
        return shown_at(self.status, self.send_at, self.first_attempt_at, self.updated_at, self.created_at)

    class Meta:
        table = "message"


def shown_at(
    status: str, send_at: datetime | None, first_attempt_at: datetime | None, updated_at: datetime, created_at: datetime
) -> datetime:
    """`Message.shown_at` from a text's columns, for rows read as values rather than models."""
    if send_at is not None and status != MessageStatus.SCHEDULED:
        return first_attempt_at or updated_at
    return created_at


class MessageStatusEvent(Model):
    """One step of a message's status timeline."""

    id = fields.IntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="timeline", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(MessageStatus, max_length=20)
    error_code = fields.IntField(null=True)
    at = fields.DatetimeField()

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    message_id: int

    class Meta:
        table = "message_status_event"


class SendAttempt(Model):
    """One try at handing a text to the provider, and how it ended."""

    id = fields.IntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="attempts", on_delete=fields.CASCADE
    )
    at = fields.DatetimeField()
    outcome = fields.CharEnumField(AttemptOutcome, max_length=10)
    error_code = fields.IntField(null=True)
    detail = fields.CharField(max_length=500, default="")
    next_attempt_at = fields.DatetimeField(null=True)
    worker = fields.CharField(max_length=100, default="")

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    message_id: int

    class Meta:
        table = "send_attempt"


class MessageLink(Model):
    """A message filed on a case, and why."""

    id = fields.IntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="links", on_delete=fields.CASCADE
    )
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="message_links", on_delete=fields.CASCADE
    )
    reason = fields.CharField(max_length=40)
    linked_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="links_made", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    message_id: int
    case_id: int
    linked_by_id: int | None

    class Meta:
        table = "message_link"
        unique_together = (("message", "case", "reason"),)


class RemovedLink(Model):
    """A link taken off a case, kept for the case file.

    It keeps the filing it undid (why, by whom, when) and who took it off, when: the link itself is deleted
    (the text leaves the case's log and its transcript), this stays for the transcript's link changes."""

    id = fields.IntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="removed_links", on_delete=fields.CASCADE
    )
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="removed_links", on_delete=fields.CASCADE
    )
    reason = fields.CharField(max_length=40)
    linked_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="links_filed_then_removed", null=True, on_delete=fields.SET_NULL
    )
    linked_at = fields.DatetimeField()
    removed_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="links_removed", null=True, on_delete=fields.SET_NULL
    )
    removed_at = fields.DatetimeField(db_index=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    message_id: int
    case_id: int
    linked_by_id: int | None
    removed_by_id: int | None

    class Meta:
        table = "removed_link"


class CaseNote(Model):
    """A text filed on a case: what was said, by whom, when (one per message and case)."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="notes", on_delete=fields.CASCADE
    )
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="notes", null=True, on_delete=fields.CASCADE
    )
    author = fields.CharField(max_length=200)
    body = fields.TextField()
    at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    case_id: int
    message_id: int | None

    class Meta:
        table = "case_note"
        unique_together = (("case", "message"),)


class Media(Model):
    """One attachment of a message (MMS), stored under INBOX_MEDIA_DIR by content hash."""

    id = fields.IntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="media", on_delete=fields.CASCADE
    )
    position = fields.IntField(default=0)
    source_url = fields.CharField(max_length=1000, null=True)
    declared_type = fields.CharField(max_length=200, default="application/octet-stream")
    content_type = fields.CharField(max_length=200, default="application/octet-stream")
    filename = fields.CharField(max_length=255, default="attachment")
    size = fields.IntField(default=0)
    # A stored photo's size in pixels, read from its header when it is stored (None: not a photo, or not known),
    # so a page reserves its box before it loads and a thread scrolled to its end stays there.
    width = fields.IntField(null=True)
    height = fields.IntField(null=True)
    sha256 = fields.CharField(max_length=64, null=True, db_index=True)
    status = fields.CharEnumField(MediaStatus, max_length=10, default=MediaStatus.PENDING)
    error = fields.CharField(max_length=500, null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    deleted_at_provider = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    message_id: int

    class Meta:
        table = "media"


class Alert(Model):
    """Texts from a client on a case, waiting for someone to answer. Dismissed once, for everyone.

    One is open per conversation and case: a further text before anyone answers counts on it
    (`text_count`) and moves `message` to the latest (inbox.services.alerts.raise_alert).
    """

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="alerts", on_delete=fields.CASCADE
    )
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="alerts", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    dismissed_at = fields.DatetimeField(null=True, db_index=True)
    dismissed_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="alerts_dismissed", null=True, on_delete=fields.SET_NULL
    )
    dismissed_because = fields.CharField(max_length=20, null=True)  # "dismissed" or "replied"
    # How many texts are waiting: the one that raised it and those counted on it since.
    text_count = fields.IntField(default=1, db_default=1)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    case_id: int
    message_id: int
    dismissed_by_id: int | None
    assignees: fields.ReverseRelation[AlertAssignee]

    class Meta:
        table = "alert"
        unique_together = (("case", "message"),)


class AlertAssignee(Model):
    """Whom an alert is addressed to, fixed when it is raised (the alert policy at that moment)."""

    id = fields.IntField(primary_key=True)
    alert: fields.ForeignKeyRelation[Alert] = fields.ForeignKeyField(
        "models.Alert", related_name="assignees", on_delete=fields.CASCADE
    )
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="alerts", on_delete=fields.CASCADE
    )

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    alert_id: int
    staff_id: int

    class Meta:
        table = "alert_assignee"
        unique_together = (("alert", "staff"),)


class ConversationRead(Model):
    """How far one staff member has read one conversation (per-reader state, not on the message)."""

    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="reads", on_delete=fields.CASCADE
    )
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="reads", on_delete=fields.CASCADE
    )
    last_read_message_id = fields.IntField(default=0)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff_id: int
    conversation_id: int

    class Meta:
        table = "conversation_read"
        unique_together = (("staff", "conversation"),)


class WebhookPayload(Model):
    """Every webhook exactly as it arrived, stored before anything else is done with it."""

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=20)
    provider_sid = fields.CharField(max_length=64, null=True, db_index=True)
    params: dict[str, Any] = fields.JSONField()
    idempotency_token = fields.CharField(max_length=200, null=True)
    received_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)
    error: str | None = fields.TextField(null=True)
    # An inbound text being processed by some process until then (inbox.services.ingest.claim_texts).
    claimed_until = fields.DatetimeField(null=True)
    sender = fields.CharField(max_length=64, null=True)  # an inbound text's From: its claim keeps a number's order

    class Meta:
        table = "webhook_payload"


class ConsentEvent(Model):
    """One change of a number's okay-to-text state: who or what made it, when, and why."""

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=64, db_index=True)  # a conversation's phone: any sender Twilio names
    client_phone: fields.ForeignKeyNullableRelation[ClientPhone] = fields.ForeignKeyField(
        "models.ClientPhone", related_name="consent_log", null=True, on_delete=fields.CASCADE
    )
    okay_to_text = fields.BooleanField()
    opted_out = fields.BooleanField()
    source = fields.CharEnumField(ConsentSource, max_length=20)
    detail = fields.CharField(max_length=300, default="")
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="consent_events", null=True, on_delete=fields.SET_NULL
    )
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="consent_changes", null=True, on_delete=fields.SET_NULL
    )
    at = fields.DatetimeField(auto_now_add=True, db_index=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    client_phone_id: int | None
    message_id: int | None
    staff_id: int | None

    class Meta:
        table = "consent_event"


class QuickEntry(Model):
    """A canned text (Prime's Quick Entry) with {placeholders}. Variants share a name, one per language."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, db_index=True)
    language = fields.CharField(max_length=20, null=True)  # None: the default variant
    body = fields.TextField()
    position = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "quick_entry"
        unique_together = (("name", "language"),)


class CaseEvent(Model):
    """A hearing, appointment, meeting or deadline on a case. Cancelled events are kept, marked."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="events", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(EventKind, max_length=20)
    title = fields.CharField(max_length=200)
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField(null=True)
    place = fields.CharField(max_length=300, default="")
    notes = fields.TextField(default="")
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="events_created", null=True, on_delete=fields.SET_NULL
    )
    cancelled_at = fields.DatetimeField(null=True)
    confirmed_at = fields.DatetimeField(null=True)  # the client replied C or CONFIRM to a reminder that asked
    # The case management system's id (a CSV import's `external_id`); unique by an index of migration 0013.
    external_id = fields.CharField(max_length=100, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    case_id: int
    created_by_id: int | None
    attendees: fields.ReverseRelation[EventAttendee]
    reminders: fields.ReverseRelation[EventReminder]
    staff_reminders: fields.ReverseRelation[StaffReminder]

    class Meta:
        table = "case_event"


class EventAttendee(Model):
    """A staff member attending a case event."""

    id = fields.IntField(primary_key=True)
    event: fields.ForeignKeyRelation[CaseEvent] = fields.ForeignKeyField(
        "models.CaseEvent", related_name="attendees", on_delete=fields.CASCADE
    )
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="events_attended", on_delete=fields.CASCADE
    )

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    event_id: int
    staff_id: int

    class Meta:
        table = "event_attendee"
        unique_together = (("event", "staff"),)


class EventReminder(Model):
    """A client reminder of a case event: its lead time and the scheduled text it made in the outbox.

    No text (message None) when its time had passed or the client has no number: `skipped` says why."""

    id = fields.IntField(primary_key=True)
    event: fields.ForeignKeyRelation[CaseEvent] = fields.ForeignKeyField(
        "models.CaseEvent", related_name="reminders", on_delete=fields.CASCADE
    )
    minutes_before = fields.IntField()
    at_local_time = fields.CharField(max_length=5, null=True)  # "09:00": that day, at this client time
    quick_entry: fields.ForeignKeyNullableRelation[QuickEntry] = fields.ForeignKeyField(
        "models.QuickEntry", related_name="reminders", null=True, on_delete=fields.SET_NULL
    )
    ask_confirmation = fields.BooleanField(default=False)
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="reminders", null=True, on_delete=fields.SET_NULL
    )
    skipped = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    event_id: int
    quick_entry_id: int | None
    message_id: int | None

    class Meta:
        table = "event_reminder"


class Campaign(Model):
    """A bulk message or survey to the clients a filter picks.

    Each recipient's text is an ordinary outbox message (purpose CAMPAIGN, `campaign` set), filed on the
    recipient's case."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    body = fields.TextField()  # may use the quick-entry placeholders ({first_name} …)
    # The recipient filter as chosen: {legal_problem, office_id, status: open|closed|any, closed_from,
    # closed_to, assignee_id, language, event_from, event_to} (inbox.services.campaigns reads it).
    filters: Any = fields.JSONField(default=dict)
    state = fields.CharEnumField(CampaignState, max_length=12, default=CampaignState.DRAFT, db_index=True)
    channel: fields.ForeignKeyNullableRelation[Channel] = fields.ForeignKeyField(
        "models.Channel", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    # A survey: the answers a client types, e.g. [{"answer": "1", "label": "Very helpful"}, …]; empty: no survey.
    answer_options: Any = fields.JSONField(default=list)
    reply_window_days = fields.IntField(default=7)  # replies this long after sending count as answers
    replies_raise_alerts = fields.BooleanField(default=False)  # off: survey replies reach the inbox quietly
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    paused_at = fields.DatetimeField(null=True)
    canceled_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    channel_id: int | None
    created_by_id: int | None
    recipients: fields.ReverseRelation[CampaignRecipient]
    messages: fields.ReverseRelation[Message]

    class Meta:
        table = "campaign"


class CampaignRecipient(Model):
    """One client and case a campaign's filter matched: sent a text, or left out and why."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name="recipients", on_delete=fields.CASCADE
    )
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="campaign_recipients", null=True, on_delete=fields.SET_NULL
    )
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="campaign_recipients", null=True, on_delete=fields.SET_NULL
    )
    number = fields.CharField(max_length=64, null=True)  # E.164; None: the client has no textable number
    excluded = fields.CharEnumField(Exclusion, max_length=20, null=True)  # None: gets the text
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="campaign_recipients", null=True, on_delete=fields.SET_NULL
    )
    # A survey's answer: the option the reply matched (None with a reply: free text), and the reply itself.
    answer = fields.CharField(max_length=40, null=True)
    reply: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="survey_answers", null=True, on_delete=fields.SET_NULL
    )
    replied_at = fields.DatetimeField(null=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    campaign_id: int
    client_id: int | None
    case_id: int | None
    message_id: int | None
    reply_id: int | None

    class Meta:
        table = "campaign_recipient"
        indexes = (("campaign_id", "number"),)


class Task(Model):
    """A staff member's task: a title and a due time, on a case or not. Done tasks are kept, marked."""

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    due_at = fields.DatetimeField(db_index=True)
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "models.Case", related_name="tasks", null=True, on_delete=fields.CASCADE
    )
    assignee: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="tasks", on_delete=fields.CASCADE
    )
    notes = fields.TextField(default="")
    done_at = fields.DatetimeField(null=True)
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="tasks_created", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    case_id: int | None
    assignee_id: int
    created_by_id: int | None
    staff_reminders: fields.ReverseRelation[StaffReminder]

    class Meta:
        table = "task"


class StaffReminder(Model):
    """A reminder texted to a staff member's mobile, of a task (its assignee) or a case event (an attendee).

    One of task and event is set. No text (message None) when there was none to make: `skipped` says why."""

    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="reminders", on_delete=fields.CASCADE
    )
    task: fields.ForeignKeyNullableRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="staff_reminders", null=True, on_delete=fields.CASCADE
    )
    event: fields.ForeignKeyNullableRelation[CaseEvent] = fields.ForeignKeyField(
        "models.CaseEvent", related_name="staff_reminders", null=True, on_delete=fields.CASCADE
    )
    minutes_before = fields.IntField()
    at_local_time = fields.CharField(max_length=5, null=True)  # "09:00": that day, at this time (organisation's zone)
    message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="staff_reminders", null=True, on_delete=fields.SET_NULL
    )
    skipped = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    staff_id: int
    task_id: int | None
    event_id: int | None
    message_id: int | None

    class Meta:
        table = "staff_reminder"


class AuditEntry(Model):
    """Who did what, when, from where: one row per audited action, never changed or deleted by the app.

    `detail` holds a few ids and names (an email tried, a setting's new value), never message text,
    passwords or tokens. `actor` is None for a failed sign-in and for the system."""

    id = fields.IntField(primary_key=True)
    at = fields.DatetimeField()
    actor: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="audit_entries", null=True, on_delete=fields.RESTRICT
    )
    action = fields.CharField(max_length=40)
    object_kind = fields.CharField(max_length=30, default="")
    object_id = fields.IntField(null=True)
    detail: dict[str, Any] = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, default="")

    # Declared for type checkers: Tortoise sets these (foreign key ids, reverse relations).
    actor_id: int | None

    class Meta:
        table = "audit_entry"


class DeliveryState(StrEnum):
    """Where an outgoing webhook delivery is (the outbox's states, for webhooks)."""

    WAITING = "waiting"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a worker under a lease: the POST may be in flight
    RETRYING = "retrying"  # the last attempt failed; the next is at next_attempt_at
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # retries spent, or the endpoint was disabled or deleted meanwhile


class WebhookEndpoint(Model):
    """A receiver an admin registered for outgoing webhooks: its URL, the event types it gets, and the
    `whsec_` secret that signs them (encrypted at rest with inbox.crypto.SecretBox; shown once)."""

    id = fields.IntField(primary_key=True)
    url = fields.CharField(max_length=2000)
    events: list[str] = fields.JSONField(default=list)
    secret_encrypted = fields.TextField()
    enabled = fields.BooleanField(default=True)
    # Since when every attempt has failed (None: the last one succeeded); a day of it disables the endpoint.
    failing_since = fields.DatetimeField(null=True)
    disabled_reason = fields.CharField(max_length=300, default="")
    created_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="webhook_endpoints", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    created_by_id: int | None
    deliveries: fields.ReverseRelation[WebhookDelivery]

    class Meta:
        table = "webhook_endpoint"


class WebhookDelivery(Model):
    """One event for one endpoint: a durable job, written in the transaction that caused the event. `body` is
    the exact JSON sent on every attempt, under the same `webhook_id` (receivers dedupe by it)."""

    id = fields.IntField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.CASCADE
    )
    webhook_id = fields.CharField(max_length=40, unique=True)
    event_type = fields.CharField(max_length=40)
    body = fields.TextField()
    state = fields.CharEnumField(DeliveryState, max_length=10, default=DeliveryState.WAITING)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    lease_owner = fields.CharField(max_length=100, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    attempt_count = fields.IntField(default=0)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=500, default="")
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    endpoint_id: int
    attempts: fields.ReverseRelation[WebhookAttempt]

    class Meta:
        table = "webhook_delivery"


class WebhookAttempt(Model):
    """One POST of a delivery: what the endpoint answered and how long it took, or why it could not."""

    id = fields.IntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempts", on_delete=fields.CASCADE
    )
    at = fields.DatetimeField()
    status_code = fields.IntField(null=True)
    response_ms = fields.IntField(null=True)
    error = fields.CharField(max_length=500, default="")
    worker = fields.CharField(max_length=100, default="")

    delivery_id: int

    class Meta:
        table = "webhook_attempt"


async def flat_values(query: ValuesListQuery[Any]) -> list[Any]:
    """The rows of `values_list(field, flat=True)`: values, though Tortoise's types call them tuples."""
    return cast(list[Any], await query)


class EventLog(Model):
    """Every published event, in publishing order, kept a while so an API stream that reconnects can be sent what
    it missed (`Last-Event-ID`). The id is the event's id on every process's streams: one sequence, the database's."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    body = fields.TextField()  # the event as it travels on the bus (JSON, without its id)

    class Meta:
        table = "event_log"


class WorkerHeartbeat(Model):
    """A running outbox worker's sign of life, renewed every few seconds: /readyz wants a fresh one."""

    worker = fields.CharField(max_length=200, primary_key=True)  # its lease name (inbox.services.outbox.worker_name)
    beat_at = fields.DatetimeField()
    started_at = fields.DatetimeField()

    class Meta:
        table = "worker_heartbeat"


class ImportJob(Model):
    """An import started from the admin upload page: its state, in the database so any web process answers the
    progress poll (the work runs in the process that received the upload, which renews `beat_at` as it goes).

    `report` is {"lines": [...], "notices": [...]} once it finished; `problems` the rows to correct (the first
    few hundred: `problem_count` says how many in all); `failure` an unexpected error. A job unfinished and
    without a beat for a while lost its process (inbox.services.import_jobs.ABANDONED_AFTER)."""

    id = fields.CharField(max_length=24, primary_key=True)  # random: the page's address names it
    staff: fields.ForeignKeyRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="import_jobs", on_delete=fields.CASCADE
    )
    file_names: list[str] = fields.JSONField(default=list)
    dry_run = fields.BooleanField()
    started_at = fields.DatetimeField()
    beat_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True, db_index=True)
    done = fields.IntField(default=0)
    total = fields.IntField(default=0)
    report: dict[str, list[str]] | None = fields.JSONField(null=True)
    problems: list[str] = fields.JSONField(default=list)
    problem_count = fields.IntField(default=0)
    failure = fields.CharField(max_length=300, null=True)
    process = fields.CharField(max_length=200, default="")  # which process runs it (host and pid), for the logs

    staff_id: int

    class Meta:
        table = "import_job"
