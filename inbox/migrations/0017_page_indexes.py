from tortoise import migrations
from tortoise.migrations import operations as ops

# Pages at scale (issue 11): Tortoise makes no index for a foreign key, and 1.1's AddField never makes a
# db_index one, so the thread, timeline, mark-read, case and alert queries scanned whole tables. Every
# foreign-key column whose table has no index leading with it gets one here (a UNIQUE constraint leading
# with the column already serves: conversation.channel_id, message_link.message_id, alert.case_id …), and
# the hot paths get theirs: the opt-in request look-up and the open alerts in the dashboard's order.
# IF NOT EXISTS: an operator who added one by hand keeps theirs. Portable SQL (SQLite and PostgreSQL).
FOREIGN_KEYS = [
    ("client_phone", "client_id"),
    ("case", "client_id"),
    ("case", "office_id"),
    ("channel", "office_id"),
    ("staff", "office_id"),
    ("api_token", "staff_id"),
    ("staff_session", "staff_id"),
    ("assignment", "staff_id"),
    ("assignment", "case_id"),
    ("conversation_read", "conversation_id"),
    ("message", "sent_by_id"),
    ("message", "case_id"),
    ("message_status_event", "message_id"),
    ("message_link", "case_id"),
    ("message_link", "linked_by_id"),
    ("case_note", "message_id"),
    ("media", "message_id"),
    ("alert", "message_id"),
    ("alert", "dismissed_by_id"),
    ("alert_assignee", "staff_id"),
    ("consent_event", "client_phone_id"),
    ("consent_event", "message_id"),
    ("consent_event", "staff_id"),
    ("send_attempt", "message_id"),
    ("case_event", "case_id"),
    ("case_event", "created_by_id"),
    ("event_attendee", "staff_id"),
    ("event_reminder", "event_id"),
    ("event_reminder", "message_id"),
    ("event_reminder", "quick_entry_id"),
    ("campaign", "channel_id"),
    ("campaign", "created_by_id"),
    ("campaign_recipient", "client_id"),
    ("campaign_recipient", "case_id"),
    ("campaign_recipient", "message_id"),
    ("campaign_recipient", "reply_id"),
    ("task", "case_id"),
    ("task", "assignee_id"),
    ("task", "created_by_id"),
    ("staff_reminder", "staff_id"),
    ("staff_reminder", "task_id"),
    ("staff_reminder", "event_id"),
    ("staff_reminder", "message_id"),
    ("removed_link", "message_id"),
    ("removed_link", "linked_by_id"),
    ("removed_link", "removed_by_id"),
]

# name → (table, columns, WHERE or ""): the indexes this migration makes.
INDEXES = {f"idx_fk_{table}_{column}": (table, column, "") for table, column in FOREIGN_KEYS}
# consent.pending_opt_in_request: the latest opt-in request to one number (rare rows: purpose leads).
INDEXES["idx_message_purpose_to"] = ("message", "purpose, to_number, id", "")
# The open alerts, oldest first (the dashboard's keyset pages), without reading the dismissed ones.
INDEXES["idx_alert_open_by_age"] = ("alert", "created_at, id", "dismissed_at IS NULL")


def _create(name: str, table: str, columns: str, where: str) -> str:
    quoted = ", ".join(f'"{c.strip()}"' for c in columns.split(","))
    return f'CREATE INDEX IF NOT EXISTS {name} ON "{table}" ({quoted})' + (f" WHERE {where}" if where else "")


class Migration(migrations.Migration):
    dependencies = [("models", "0016_event_log")]

    initial = False

    operations = [
        ops.RunSQL(
            [_create(name, *spec) for name, spec in INDEXES.items()],
            reverse_sql=[f"DROP INDEX IF EXISTS {name}" for name in INDEXES],
        ),
    ]
