from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0017_page_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WorkerHeartbeat',
            fields=[
                ('worker', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('beat_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'worker_heartbeat', 'app': 'models', 'pk_attr': 'worker', 'table_description': "A running outbox worker's sign of life, renewed every few seconds: /readyz wants a fresh one."},
            bases=['Model'],
        ),
    ]
