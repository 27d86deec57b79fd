from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# A CSV import upserts case events by the case management system's id. The model declares no unique=True:
# SQLite cannot ADD COLUMN … UNIQUE, so the uniqueness is this index (NULLs, events added by hand, repeat freely).
EVENT_EXTERNAL_ID = ["CREATE UNIQUE INDEX uid_case_event_external_id ON case_event (external_id)"]


class Migration(migrations.Migration):
    dependencies = [('models', '0013_removed_links')]

    initial = False

    operations = [
        ops.AddField(
            model_name='CaseEvent',
            name='external_id',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.RunSQL(EVENT_EXTERNAL_ID, reverse_sql=["DROP INDEX uid_case_event_external_id"]),
    ]
