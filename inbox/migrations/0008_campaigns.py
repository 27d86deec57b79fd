from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from inbox.models import CampaignState, Exclusion, MessagePurpose, OutboxState
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
import importlib

# The no-op AlterField 0006 defined (a module whose name starts with a digit is imported by name).
DescribeOnly = importlib.import_module('inbox.migrations.0006_outbox').DescribeOnly


class Migration(migrations.Migration):
    dependencies = [('models', '0007_case_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('filters', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('state', fields.CharEnumField(default=CampaignState.DRAFT, db_index=True, description='DRAFT: draft\nSENDING: sending\nPAUSED: paused\nCANCELED: canceled\nFINISHED: finished', enum_type=CampaignState, max_length=12)),
                ('channel', fields.ForeignKeyField('models.Channel', source_field='channel_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('created_by', fields.ForeignKeyField('models.Staff', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('answer_options', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('reply_window_days', fields.IntField(default=7)),
                ('replies_raise_alerts', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paused_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('canceled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A bulk message or survey to the clients a filter picks.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignRecipient',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='recipients', on_delete=OnDelete.CASCADE)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='campaign_recipients', on_delete=OnDelete.SET_NULL)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='campaign_recipients', on_delete=OnDelete.SET_NULL)),
                ('number', fields.CharField(null=True, max_length=64)),
                ('excluded', fields.CharEnumField(null=True, description='NO_CONSENT: no_consent\nOPTED_OUT: opted_out\nNO_MOBILE: no_mobile\nDUPLICATE: duplicate\nINVALID_NUMBER: invalid_number', enum_type=Exclusion, max_length=20)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', null=True, db_constraint=True, to_field='id', related_name='campaign_recipients', on_delete=OnDelete.SET_NULL)),
                ('answer', fields.CharField(null=True, max_length=40)),
                ('reply', fields.ForeignKeyField('models.Message', source_field='reply_id', null=True, db_constraint=True, to_field='id', related_name='survey_answers', on_delete=OnDelete.SET_NULL)),
                ('replied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign_recipient', 'app': 'models', 'indexes': [Index(fields=['campaign_id', 'number'])], 'pk_attr': 'id', 'table_description': "One client and case a campaign's filter matched: sent a text, or left out and why."},
            bases=['Model'],
        ),
        # New enum values in VARCHAR columns: the descriptions only (an AlterField would rebuild the
        # message table on SQLite and lose what refers to it, see 0005 and 0006).
        DescribeOnly(
            model_name='Message',
            name='outbox_state',
            field=fields.CharEnumField(null=True, db_index=True, description='WAITING: waiting\nSENDING: sending\nRETRYING: retrying\nHELD: held', enum_type=OutboxState, max_length=12),
        ),
        DescribeOnly(
            model_name='Message',
            name='purpose',
            field=fields.CharEnumField(null=True, description='AUTO_REPLY: auto_reply\nHELP: help\nOPT_IN_REQUEST: opt_in_request\nKEYWORD_CONFIRMATION: keyword_confirmation\nSTOP_CONFIRMATION: stop_confirmation\nTEST: test\nEVENT_REMINDER: event_reminder\nCAMPAIGN: campaign', enum_type=MessagePurpose, max_length=30),
        ),
        ops.AddField(
            model_name='Message',
            name='campaign',
            field=fields.ForeignKeyField('models.Campaign', source_field='campaign_id', null=True, db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.SET_NULL),
        ),
        # Tortoise 1.1's AddField makes no index for db_index, and no database indexes a foreign key by itself:
        # made here are the indexes that the hot queries need — a campaign's progress counts its messages, the
        # outbox claims by state and due time (0006's db_index made none), a thread reads its conversation's.
        ops.RunSQL(
            [
                "CREATE INDEX idx_message_campaign_id ON message (campaign_id)",
                "CREATE INDEX idx_message_outbox_due ON message (outbox_state, next_attempt_at)",
                "CREATE INDEX idx_message_conversation ON message (conversation_id, id)",
            ],
            reverse_sql=[
                "DROP INDEX idx_message_campaign_id",
                "DROP INDEX idx_message_outbox_due",
                "DROP INDEX idx_message_conversation",
            ],
        ),
    ]
