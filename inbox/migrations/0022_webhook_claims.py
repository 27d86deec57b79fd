from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Fast ingest (issue 11): stored inbound texts are claimed for processing under a lease (claimed_until), by the
# web process or by workers. The claim looks for unprocessed texts oldest first: a partial index holds just
# those (every webhook ever received stays in the table), so a worker polling often reads a few index entries;
# the second finds an earlier unprocessed text of the same sender (a claim never overtakes one being processed).
UNPROCESSED = [
    'CREATE INDEX IF NOT EXISTS idx_webhook_payload_unprocessed ON "webhook_payload" ("id") WHERE processed_at IS NULL',
    "CREATE INDEX IF NOT EXISTS idx_webhook_payload_unprocessed_sender "
    'ON "webhook_payload" ("sender", "id") WHERE processed_at IS NULL',
]


class Migration(migrations.Migration):
    dependencies = [("models", "0021_import_jobs")]

    initial = False

    operations = [
        ops.AddField(
            model_name="WebhookPayload",
            name="claimed_until",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="WebhookPayload",
            name="sender",
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.RunSQL(
            UNPROCESSED,
            reverse_sql=[
                "DROP INDEX IF EXISTS idx_webhook_payload_unprocessed",
                "DROP INDEX IF EXISTS idx_webhook_payload_unprocessed_sender",
            ],
        ),
    ]
