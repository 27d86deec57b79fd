from tortoise import migrations
from tortoise.migrations import operations as ops
from inbox.models import AlertPolicy, LinkingPolicy, MediaStatus
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Alert',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='alerts', on_delete=OnDelete.CASCADE)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='alerts', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('dismissed_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('dismissed_by', fields.ForeignKeyField('models.Staff', source_field='dismissed_by_id', null=True, db_constraint=True, to_field='id', related_name='alerts_dismissed', on_delete=OnDelete.SET_NULL)),
                ('dismissed_because', fields.CharField(null=True, max_length=20)),
            ],
            options={'table': 'alert', 'app': 'models', 'unique_together': (('case', 'message'),), 'pk_attr': 'id', 'table_description': 'An inbound text on a case, waiting for someone to answer. Dismissed once, for everyone.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AlertAssignee',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('alert', fields.ForeignKeyField('models.Alert', source_field='alert_id', db_constraint=True, to_field='id', related_name='assignees', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='alerts', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'alert_assignee', 'app': 'models', 'unique_together': (('alert', 'staff'),), 'pk_attr': 'id', 'table_description': 'Whom an alert is addressed to, fixed when it is raised (the alert policy at that moment).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CaseNote',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.CASCADE)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.CASCADE)),
                ('author', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'case_note', 'app': 'models', 'unique_together': (('case', 'message'),), 'pk_attr': 'id', 'table_description': 'A text filed on a case: what was said, by whom, when (one per message and case).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Media',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='media', on_delete=OnDelete.CASCADE)),
                ('position', fields.IntField(default=0)),
                ('source_url', fields.CharField(null=True, max_length=1000)),
                ('declared_type', fields.CharField(default='application/octet-stream', max_length=200)),
                ('content_type', fields.CharField(default='application/octet-stream', max_length=200)),
                ('filename', fields.CharField(default='attachment', max_length=255)),
                ('size', fields.IntField(default=0)),
                ('sha256', fields.CharField(null=True, db_index=True, max_length=64)),
                ('status', fields.CharEnumField(default=MediaStatus.PENDING, description='PENDING: pending\nSTORED: stored\nFAILED: failed\nREFUSED: refused', enum_type=MediaStatus, max_length=10)),
                ('error', fields.CharField(null=True, max_length=500)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('deleted_at_provider', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'media', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One attachment of a message (MMS), stored under INBOX_MEDIA_DIR by content hash.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='MessageLink',
            name='linked_by',
            field=fields.ForeignKeyField('models.Staff', source_field='linked_by_id', null=True, db_constraint=True, to_field='id', related_name='links_made', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Organisation',
            name='alert_policy',
            field=fields.CharEnumField(default=AlertPolicy.PRIMARY, description='PRIMARY: primary\nALL: all', enum_type=AlertPolicy, max_length=20),
        ),
        ops.AddField(
            model_name='Organisation',
            name='delete_media_at_provider',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Organisation',
            name='dismiss_alerts_on_reply',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Organisation',
            name='linking_policy',
            field=fields.CharEnumField(default=LinkingPolicy.DEFAULT, description='DEFAULT: default\nBEST_GUESS: best_guess', enum_type=LinkingPolicy, max_length=20),
        ),
    ]
