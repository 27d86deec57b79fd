from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from inbox.models import AutoReplyMode, ConsentSource, MessagePurpose
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_links_notes_media_alerts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConsentEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(db_index=True, max_length=20)),
                ('client_phone', fields.ForeignKeyField('models.ClientPhone', source_field='client_phone_id', null=True, db_constraint=True, to_field='id', related_name='consent_log', on_delete=OnDelete.CASCADE)),
                ('okay_to_text', fields.BooleanField()),
                ('opted_out', fields.BooleanField()),
                ('source', fields.CharEnumField(description='STAFF: staff\nAPI: api\nIMPORT: import\nKEYWORD: keyword\nREPLY: reply\nPROVIDER: provider', enum_type=ConsentSource, max_length=20)),
                ('detail', fields.CharField(default='', max_length=300)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='consent_events', on_delete=OnDelete.SET_NULL)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='consent_changes', on_delete=OnDelete.SET_NULL)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'consent_event', 'app': 'models', 'pk_attr': 'id', 'table_description': "One change of a number's okay-to-text state: who or what made it, when, and why."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QuickEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(db_index=True, max_length=100)),
                ('language', fields.CharField(null=True, max_length=20)),
                ('body', fields.TextField(unique=False)),
                ('position', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'quick_entry', 'app': 'models', 'unique_together': (('name', 'language'),), 'pk_attr': 'id', 'table_description': "A canned text (Prime's Quick Entry) with {placeholders}. Variants share a name, one per language."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Channel',
            name='auth_token_encrypted',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Channel',
            name='auto_reply_mode',
            field=fields.CharEnumField(default=AutoReplyMode.OFF, description='OFF: off\nALWAYS: always\nOUTSIDE_HOURS: outside_hours', enum_type=AutoReplyMode, max_length=20),
        ),
        ops.AddField(
            model_name='Channel',
            name='auto_reply_text',
            field=fields.TextField(default='', unique=False),
        ),
        ops.AddField(
            model_name='Channel',
            name='call_response',
            field=fields.TextField(default='Thank you for calling. This number does not accept calls.', unique=False),
        ),
        ops.AddField(
            model_name='Channel',
            name='help_text',
            field=fields.TextField(default='Case Inbox: reply STOP to stop texts, START to receive them again.', unique=False),
        ),
        ops.AddField(
            model_name='Channel',
            name='office_hours',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Channel',
            name='throughput',
            field=fields.IntField(default=1),
        ),
        ops.AddField(
            model_name='Channel',
            name='time_zone',
            field=fields.CharField(default='America/New_York', max_length=64),
        ),
        ops.AddField(
            model_name='Channel',
            name='twilio_handles_opt_out',
            field=fields.BooleanField(default=True),
        ),
        ops.AddField(
            model_name='Client',
            name='time_zone',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Conversation',
            name='last_auto_reply_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='purpose',
            field=fields.CharEnumField(null=True, description='AUTO_REPLY: auto_reply\nHELP: help\nOPT_IN_REQUEST: opt_in_request\nKEYWORD_CONFIRMATION: keyword_confirmation\nTEST: test', enum_type=MessagePurpose, max_length=30),
        ),
        ops.AddField(
            model_name='Organisation',
            name='opt_in_requests',
            field=fields.BooleanField(default=True),
        ),
        ops.AddField(
            model_name='Organisation',
            name='opt_in_text',
            field=fields.TextField(default='We have received your request to get text messages about your case. Please reply Y or YES to confirm. Message and data rates may apply. Reply STOP to stop, HELP for help.', unique=False),
        ),
        ops.AddField(
            model_name='Organisation',
            name='quiet_hours_end',
            field=fields.IntField(default=21),
        ),
        ops.AddField(
            model_name='Organisation',
            name='quiet_hours_start',
            field=fields.IntField(default=8),
        ),
        ops.AddField(
            model_name='Organisation',
            name='time_zone',
            field=fields.CharField(default='America/New_York', max_length=64),
        ),
    ]
