from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from inbox.models import EventKind, MessagePurpose
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
import importlib

# The no-op AlterField 0006 defined (a module whose name starts with a digit is imported by name).
DescribeOnly = importlib.import_module('inbox.migrations.0006_outbox').DescribeOnly

class Migration(migrations.Migration):
    dependencies = [('models', '0006_outbox')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CaseEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='HEARING: hearing\nAPPOINTMENT: appointment\nMEETING: meeting\nDEADLINE: deadline', enum_type=EventKind, max_length=20)),
                ('title', fields.CharField(max_length=200)),
                ('starts_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('place', fields.CharField(default='', max_length=300)),
                ('notes', fields.TextField(default='', unique=False)),
                ('created_by', fields.ForeignKeyField('models.Staff', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='events_created', on_delete=OnDelete.SET_NULL)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'case_event', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A hearing, appointment, meeting or deadline on a case. Cancelled events are kept, marked.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventAttendee',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event', fields.ForeignKeyField('models.CaseEvent', source_field='event_id', db_constraint=True, to_field='id', related_name='attendees', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='events_attended', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'event_attendee', 'app': 'models', 'unique_together': (('event', 'staff'),), 'pk_attr': 'id', 'table_description': 'A staff member attending a case event.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventReminder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event', fields.ForeignKeyField('models.CaseEvent', source_field='event_id', db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.CASCADE)),
                ('minutes_before', fields.IntField()),
                ('at_local_time', fields.CharField(null=True, max_length=5)),
                ('quick_entry', fields.ForeignKeyField('models.QuickEntry', source_field='quick_entry_id', null=True, db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.SET_NULL)),
                ('ask_confirmation', fields.BooleanField(default=False)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.SET_NULL)),
                ('skipped', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'event_reminder', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A client reminder of a case event: its lead time and the scheduled text it made in the outbox.'},
            bases=['Model'],
        ),
        # A new enum value in a VARCHAR column: the description only (an AlterField would rebuild the
        # message table on SQLite and lose what refers to it, see 0005 and 0006).
        DescribeOnly(
            model_name='Message',
            name='purpose',
            field=fields.CharEnumField(null=True, description='AUTO_REPLY: auto_reply\nHELP: help\nOPT_IN_REQUEST: opt_in_request\nKEYWORD_CONFIRMATION: keyword_confirmation\nSTOP_CONFIRMATION: stop_confirmation\nTEST: test\nEVENT_REMINDER: event_reminder', enum_type=MessagePurpose, max_length=30),
        ),
        ops.AddField(
            model_name='Organisation',
            name='reminder_defaults',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
