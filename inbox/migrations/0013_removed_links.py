from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# The case transcript reads a case's removed links; Tortoise makes no index for a foreign key.
CASE_INDEX = ['CREATE INDEX "idx_removed_link_case" ON "removed_link" ("case_id")']


class Migration(migrations.Migration):
    dependencies = [('models', '0012_alert_counts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RemovedLink',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='removed_links', on_delete=OnDelete.CASCADE)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='removed_links', on_delete=OnDelete.CASCADE)),
                ('reason', fields.CharField(max_length=40)),
                ('linked_by', fields.ForeignKeyField('models.Staff', source_field='linked_by_id', null=True, db_constraint=True, to_field='id', related_name='links_filed_then_removed', on_delete=OnDelete.SET_NULL)),
                ('linked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('removed_by', fields.ForeignKeyField('models.Staff', source_field='removed_by_id', null=True, db_constraint=True, to_field='id', related_name='links_removed', on_delete=OnDelete.SET_NULL)),
                ('removed_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'removed_link', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A link taken off a case, kept for the case file.'},
            bases=['Model'],
        ),
        ops.RunSQL(CASE_INDEX, reverse_sql=['DROP INDEX "idx_removed_link_case"']),
    ]
