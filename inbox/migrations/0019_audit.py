from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
import importlib

# RunSQL per dialect, each statement run whole (a trigger's body has semicolons), as 0010 defined it.
RunSQLPerDialect = importlib.import_module('inbox.migrations.0010_search').RunSQLPerDialect

# The audit page filters by actor, action, object and date, newest first (keyset paging on id).
INDEXES = [
    'CREATE INDEX "idx_audit_entry_actor" ON "audit_entry" ("actor_id", "id")',
    'CREATE INDEX "idx_audit_entry_action" ON "audit_entry" ("action", "id")',
    'CREATE INDEX "idx_audit_entry_object" ON "audit_entry" ("object_kind", "object_id", "id")',
    'CREATE INDEX "idx_audit_entry_at" ON "audit_entry" ("at")',
]
DROP_INDEXES = [f'DROP INDEX "{name}"' for name in
                ("idx_audit_entry_actor", "idx_audit_entry_action", "idx_audit_entry_object", "idx_audit_entry_at")]

# Append-only on PostgreSQL: the database itself refuses to change or delete an entry, whatever code asks
# (TRUNCATE, an owner's deliberate act, still works). SQLite gets no trigger: whoever holds the file can edit it.
APPEND_ONLY = [
    """CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: they cannot be changed or deleted';
END
$$""",
    """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
]
DROP_APPEND_ONLY = ['DROP TRIGGER audit_entry_append_only ON audit_entry', 'DROP FUNCTION audit_entry_append_only()']


class Migration(migrations.Migration):
    dependencies = [('models', '0018_worker_heartbeat')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.ForeignKeyField('models.Staff', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='audit_entries', on_delete=OnDelete.RESTRICT)),
                ('action', fields.CharField(max_length=40)),
                ('object_kind', fields.CharField(default='', max_length=30)),
                ('object_id', fields.IntField(null=True)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('ip', fields.CharField(default='', max_length=64)),
            ],
            options={'table': 'audit_entry', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Who did what, when, from where: one row per audited action, never changed or deleted by the app.'},
            bases=['Model'],
        ),
        ops.RunSQL(INDEXES, reverse_sql=DROP_INDEXES),
        RunSQLPerDialect(sqlite=[], postgres=APPEND_ONLY, sqlite_reverse=[], postgres_reverse=DROP_APPEND_ONLY),
    ]
