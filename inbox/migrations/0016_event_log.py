from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0015_recipient_fillfactor')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EventLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('body', fields.TextField(unique=False)),
            ],
            options={'table': 'event_log', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Every published event, in publishing order, kept a while so an API stream that reconnects can be sent what'},
            bases=['Model'],
        ),
    ]
