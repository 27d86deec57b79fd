from tortoise import migrations
from tortoise.migrations import operations as ops
from inbox.models import MessagePurpose
from tortoise.fields.base import OnDelete
from tortoise import fields
import importlib

# The no-op AlterField 0006 defined (a module whose name starts with a digit is imported by name).
DescribeOnly = importlib.import_module('inbox.migrations.0006_outbox').DescribeOnly

class Migration(migrations.Migration):
    dependencies = [('models', '0008_campaigns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Task',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('title', fields.CharField(max_length=200)),
                ('due_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.CASCADE)),
                ('assignee', fields.ForeignKeyField('models.Staff', source_field='assignee_id', db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.CASCADE)),
                ('notes', fields.TextField(default='', unique=False)),
                ('done_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_by', fields.ForeignKeyField('models.Staff', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='tasks_created', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'task', 'app': 'models', 'pk_attr': 'id', 'table_description': "A staff member's task: a title and a due time, on a case or not. Done tasks are kept, marked."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffReminder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.CASCADE)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', null=True, db_constraint=True, to_field='id', related_name='staff_reminders', on_delete=OnDelete.CASCADE)),
                ('event', fields.ForeignKeyField('models.CaseEvent', source_field='event_id', null=True, db_constraint=True, to_field='id', related_name='staff_reminders', on_delete=OnDelete.CASCADE)),
                ('minutes_before', fields.IntField()),
                ('at_local_time', fields.CharField(null=True, max_length=5)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='staff_reminders', on_delete=OnDelete.SET_NULL)),
                ('skipped', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staff_reminder', 'app': 'models', 'pk_attr': 'id', 'table_description': "A reminder texted to a staff member's mobile, of a task (its assignee) or a case event (an attendee)."},
            bases=['Model'],
        ),
        # A new enum value in a VARCHAR column: the description only (an AlterField would rebuild the
        # message table on SQLite, see 0006 and 0007).
        DescribeOnly(
            model_name='Message',
            name='purpose',
            field=fields.CharEnumField(null=True, description='AUTO_REPLY: auto_reply\nHELP: help\nOPT_IN_REQUEST: opt_in_request\nKEYWORD_CONFIRMATION: keyword_confirmation\nSTOP_CONFIRMATION: stop_confirmation\nTEST: test\nEVENT_REMINDER: event_reminder\nCAMPAIGN: campaign\nSTAFF_REMINDER: staff_reminder', enum_type=MessagePurpose, max_length=30),
        ),
        ops.AddField(
            model_name='Staff',
            name='staff_reminders',
            field=fields.BooleanField(default=True, db_default=True),
        ),
    ]
