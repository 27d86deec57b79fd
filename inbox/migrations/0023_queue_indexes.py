from tortoise import migrations
from tortoise.migrations import operations as ops

# The queue page at scale (issue 11 point 5): two of its questions scanned every text. "Failed today" had no
# index to start from (a scan of message, each row's timeline looked up); "with Twilio" (queued or accepted,
# outbox_state NULL) was answered from the outbox index on outbox_state = NULL — every text that ever left the
# outbox. With (status, at) on the timeline and (status, outbox_state) on message both start from the few rows
# concerned (SQLite, without statistics, prefers the index matching two equalities). Portable SQL.
INDEXES = [
    'CREATE INDEX IF NOT EXISTS "idx_message_status_event_status_at" ON "message_status_event" ("status", "at")',
    'CREATE INDEX IF NOT EXISTS "idx_message_status_outbox" ON "message" ("status", "outbox_state")',
]
DROP_INDEXES = [
    'DROP INDEX IF EXISTS "idx_message_status_event_status_at"',
    'DROP INDEX IF EXISTS "idx_message_status_outbox"',
]


class Migration(migrations.Migration):
    dependencies = [("models", "0022_webhook_claims")]

    initial = False

    operations = [ops.RunSQL(INDEXES, reverse_sql=DROP_INDEXES)]
