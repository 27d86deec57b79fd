from tortoise import migrations
from tortoise.migrations import operations as ops
from inbox.models import AttemptOutcome, MessagePurpose, OutboxState
from tortoise.fields.base import OnDelete
from tortoise import fields

class DescribeOnly(ops.AlterField):
    """A change to a field's description alone (a new enum value in a VARCHAR column): the model state
    follows, the database is left as it is. Tortoise 1.1 would rebuild the whole table on SQLite for
    it, which loses rows that refer to the table (see 0005)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        return None


# Texts already waiting when the outbox arrives: scheduled ones wait for their time; queued ones
# with no SID may or may not have reached Twilio (the old worker had no leases), so they are looked
# up before they are sent again.
INTO_THE_OUTBOX = [
    "UPDATE message SET outbox_state = 'waiting', next_attempt_at = send_at "
    "WHERE direction = 'outbound' AND status = 'scheduled'",
    "UPDATE message SET outbox_state = 'waiting', next_attempt_at = updated_at, outcome_unknown = TRUE, "
    "first_attempt_at = created_at "
    "WHERE direction = 'outbound' AND status = 'queued' AND provider_sid IS NULL",
]


class Migration(migrations.Migration):
    dependencies = [('models', '0005_widen_sender_columns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SendAttempt',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='attempts', on_delete=OnDelete.CASCADE)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharEnumField(description='ACCEPTED: accepted\nRETRY: retry\nUNKNOWN: unknown\nFAILED: failed', enum_type=AttemptOutcome, max_length=10)),
                ('error_code', fields.IntField(null=True)),
                ('detail', fields.CharField(default='', max_length=500)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('worker', fields.CharField(default='', max_length=100)),
            ],
            options={'table': 'send_attempt', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One try at handing a text to the provider, and how it ended.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Channel',
            name='pace_next_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        DescribeOnly(
            model_name='Message',
            name='purpose',
            field=fields.CharEnumField(null=True, description='AUTO_REPLY: auto_reply\nHELP: help\nOPT_IN_REQUEST: opt_in_request\nKEYWORD_CONFIRMATION: keyword_confirmation\nSTOP_CONFIRMATION: stop_confirmation\nTEST: test', enum_type=MessagePurpose, max_length=30),
        ),
        ops.AddField(
            model_name='Message',
            name='attempt_count',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Message',
            name='first_attempt_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='lease_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='lease_owner',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Message',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Message',
            name='outbox_state',
            field=fields.CharEnumField(null=True, db_index=True, description='WAITING: waiting\nSENDING: sending\nRETRYING: retrying', enum_type=OutboxState, max_length=12),
        ),
        ops.AddField(
            model_name='Message',
            name='outcome_unknown',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.RunSQL(INTO_THE_OUTBOX, reverse_sql=[]),
    ]
