from tortoise import migrations
from tortoise.migrations import operations as ops

# Campaign enqueue (issue 9): starting a campaign UPDATEs campaign_recipient.message_id for every recipient
# (the pointer to its text). 0017 indexed that foreign key by the every-foreign-key rule, so on PostgreSQL the
# UPDATE changed an indexed column and was never HOT: each recipient's new row version went into all six of
# the table's indexes (~0.15-0.2 s of server CPU per 10,000). No query looks a recipient up by message_id
# alone: every reader filters by campaign_id first (the (campaign_id, number) index), and the app never
# deletes a message (the only other user: ON DELETE SET NULL's look-up). Without this index the UPDATE is
# HOT again on the pages 0015's fill factor leaves room on. tests/test_pages_at_scale.py names the exception.
# IF EXISTS / IF NOT EXISTS: portable SQL (SQLite and PostgreSQL), and an operator's own index is not an error.


class Migration(migrations.Migration):
    dependencies = [("models", "0023_queue_indexes")]

    initial = False

    operations = [
        ops.RunSQL(
            ["DROP INDEX IF EXISTS idx_fk_campaign_recipient_message_id"],
            reverse_sql=[
                'CREATE INDEX IF NOT EXISTS idx_fk_campaign_recipient_message_id ON "campaign_recipient" ("message_id")'
            ],
        ),
    ]
