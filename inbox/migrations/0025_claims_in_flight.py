from tortoise import migrations
from tortoise.migrations import operations as ops

# A claim never overtakes an earlier text of the same sender that is being processed (inbox.services.ingest). It
# looked that text up among all the sender's unprocessed ones (0022's index): with a burst's backlog of 30,000 texts
# each look-up read ~300 rows, and on PostgreSQL a claim took 1.9 s. Only texts being processed (claimed, not yet
# finished: a batch or two) are looked for, so the index holds just those.
IN_FLIGHT = (
    "CREATE INDEX IF NOT EXISTS idx_webhook_payload_in_flight "
    'ON "webhook_payload" ("sender", "id") WHERE processed_at IS NULL AND claimed_until IS NOT NULL'
)
SENDER = (
    "CREATE INDEX IF NOT EXISTS idx_webhook_payload_unprocessed_sender "
    'ON "webhook_payload" ("sender", "id") WHERE processed_at IS NULL'
)


class Migration(migrations.Migration):
    dependencies = [("models", "0024_recipient_pointer_unindexed")]

    initial = False

    operations = [
        ops.RunSQL(
            [IN_FLIGHT, "DROP INDEX IF EXISTS idx_webhook_payload_unprocessed_sender"],
            reverse_sql=[SENDER, "DROP INDEX IF EXISTS idx_webhook_payload_in_flight"],
        ),
    ]
