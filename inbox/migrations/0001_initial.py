import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from inbox.models import Direction, MessageStatus, PhoneKind, Role, today


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Client',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('external_id', fields.CharField(null=True, unique=True, max_length=100)),
                ('preferred_language', fields.CharField(null=True, max_length=20)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'client', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ClientPhone',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='phones', on_delete=OnDelete.CASCADE)),
                ('number', fields.CharField(db_index=True, max_length=20)),
                ('kind', fields.CharEnumField(default=PhoneKind.MOBILE, description='MOBILE: mobile\nHOME: home\nWORK: work', enum_type=PhoneKind, max_length=10)),
                ('okay_to_text', fields.BooleanField(default=False)),
                ('opted_out', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'client_phone', 'app': 'models', 'pk_attr': 'id', 'table_description': "A client's phone number in E.164, with its okay-to-text state."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Office',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=200)),
                ('phone', fields.CharField(null=True, max_length=20)),
            ],
            options={'table': 'office', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Case',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=50)),
                ('title', fields.CharField(max_length=300)),
                ('legal_problem', fields.CharField(null=True, max_length=200)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='cases', on_delete=OnDelete.CASCADE)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', null=True, db_constraint=True, to_field='id', related_name='cases', on_delete=OnDelete.SET_NULL)),
                ('external_id', fields.CharField(null=True, unique=True, max_length=100)),
                ('opened_on', fields.DateField(default=today)),
                ('closed_on', fields.DateField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'case', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Channel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('label', fields.CharField(max_length=100)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', null=True, db_constraint=True, to_field='id', related_name='channels', on_delete=OnDelete.SET_NULL)),
                ('account_sid', fields.CharField(max_length=64)),
                ('from_number', fields.CharField(null=True, max_length=20)),
                ('messaging_service_sid', fields.CharField(null=True, max_length=64)),
                ('is_simulator', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channel', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A sending number (or Messaging Service) of one Twilio account.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Conversation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.ForeignKeyField('models.Channel', source_field='channel_id', db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.CASCADE)),
                ('phone', fields.CharField(db_index=True, max_length=20)),
                ('last_message_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('last_message_preview', fields.CharField(default='', max_length=200)),
                ('last_direction', fields.CharEnumField(null=True, description='INBOUND: inbound\nOUTBOUND: outbound', enum_type=Direction, max_length=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'conversation', 'app': 'models', 'unique_together': (('channel', 'phone'),), 'pk_attr': 'id', 'table_description': 'Everything exchanged with one phone number on one channel.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Organisation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(default='Case Inbox', max_length=200)),
                ('char_limit', fields.IntField(default=160)),
            ],
            options={'table': 'organisation', 'app': 'models', 'pk_attr': 'id', 'table_description': 'The one organisation this installation serves, and its texting rules.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Staff',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('name', fields.CharField(max_length=200)),
                ('role', fields.CharEnumField(description='ADVOCATE: advocate\nSUPERVISOR: supervisor\nADMIN: admin', enum_type=Role, max_length=20)),
                ('password_hash', fields.CharField(null=True, max_length=200)),
                ('mobile', fields.CharField(null=True, max_length=20)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', null=True, db_constraint=True, to_field='id', related_name='staff', on_delete=OnDelete.SET_NULL)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staff', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='api_tokens', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'api_token', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A bearer token for the JSON API. Only its SHA-256 is kept.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Assignment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.CASCADE)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.CASCADE)),
                ('primary', fields.BooleanField(default=False)),
                ('start', fields.DateField(default=today)),
                ('end', fields.DateField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'assignment', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Staff on a case. Current means no end date, or an end date in the future.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConversationRead',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', db_constraint=True, to_field='id', related_name='reads', on_delete=OnDelete.CASCADE)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='reads', on_delete=OnDelete.CASCADE)),
                ('last_read_message_id', fields.IntField(default=0)),
            ],
            options={'table': 'conversation_read', 'app': 'models', 'unique_together': (('staff', 'conversation'),), 'pk_attr': 'id', 'table_description': 'How far one staff member has read one conversation (per-reader state, not on the message).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('direction', fields.CharEnumField(description='INBOUND: inbound\nOUTBOUND: outbound', enum_type=Direction, max_length=10)),
                ('from_number', fields.CharField(max_length=64)),
                ('to_number', fields.CharField(max_length=64)),
                ('body', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(description='SCHEDULED: scheduled\nACCEPTED: accepted\nQUEUED: queued\nSENDING: sending\nSENT: sent\nDELIVERED: delivered\nREAD: read\nUNDELIVERED: undelivered\nFAILED: failed\nCANCELED: canceled\nRECEIVING: receiving\nRECEIVED: received\nPARTIALLY_DELIVERED: partially_delivered', enum_type=MessageStatus, max_length=20)),
                ('provider_sid', fields.CharField(null=True, unique=True, max_length=64)),
                ('segments', fields.IntField(default=1)),
                ('encoding', fields.CharField(default='GSM-7', max_length=10)),
                ('error_code', fields.IntField(null=True)),
                ('error_message', fields.CharField(null=True, max_length=500)),
                ('sent_by', fields.ForeignKeyField('models.Staff', source_field='sent_by_id', null=True, db_constraint=True, to_field='id', related_name='sent_messages', on_delete=OnDelete.SET_NULL)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='sent_messages', on_delete=OnDelete.SET_NULL)),
                ('send_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'message', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MessageLink',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='links', on_delete=OnDelete.CASCADE)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='id', related_name='message_links', on_delete=OnDelete.CASCADE)),
                ('reason', fields.CharField(max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'message_link', 'app': 'models', 'unique_together': (('message', 'case', 'reason'),), 'pk_attr': 'id', 'table_description': 'A message filed on a case, and why.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MessageStatusEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='timeline', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(description='SCHEDULED: scheduled\nACCEPTED: accepted\nQUEUED: queued\nSENDING: sending\nSENT: sent\nDELIVERED: delivered\nREAD: read\nUNDELIVERED: undelivered\nFAILED: failed\nCANCELED: canceled\nRECEIVING: receiving\nRECEIVED: received\nPARTIALLY_DELIVERED: partially_delivered', enum_type=MessageStatus, max_length=20)),
                ('error_code', fields.IntField(null=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'message_status_event', 'app': 'models', 'pk_attr': 'id', 'table_description': "One step of a message's status timeline."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookPayload',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=20)),
                ('provider_sid', fields.CharField(null=True, db_index=True, max_length=64)),
                ('params', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('idempotency_token', fields.CharField(null=True, max_length=200)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'webhook_payload', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Every webhook exactly as it arrived, stored before anything else is done with it.'},
            bases=['Model'],
        ),
    ]
