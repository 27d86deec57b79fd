import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

FOREIGN_KEY_INDEXES = [("idx_fk_import_job_staff_id", "import_job", "staff_id")]


class Migration(migrations.Migration):
    dependencies = [("models", "0020_outgoing_webhooks")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ImportJob",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=24)),
                (
                    "staff",
                    fields.ForeignKeyField(
                        "models.Staff",
                        source_field="staff_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="import_jobs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "file_names",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("dry_run", fields.BooleanField()),
                ("started_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("beat_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("finished_at", fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ("done", fields.IntField(default=0)),
                ("total", fields.IntField(default=0)),
                (
                    "report",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                (
                    "problems",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("problem_count", fields.IntField(default=0)),
                ("failure", fields.CharField(null=True, max_length=300)),
                ("process", fields.CharField(default="", max_length=200)),
            ],
            options={
                "table": "import_job",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An import started from the admin upload page: its state, in the database so any web process answers the",
            },
            bases=["Model"],
        ),
        # Tortoise makes no index for a foreign key (see 0017): deleting a staff member looks their jobs up by it.
        ops.RunSQL(
            [
                f'CREATE INDEX IF NOT EXISTS {name} ON "{table}" ("{column}")'
                for name, table, column in FOREIGN_KEY_INDEXES
            ],
            reverse_sql=[f"DROP INDEX IF EXISTS {name}" for name, _, _ in FOREIGN_KEY_INDEXES],
        ),
    ]
