from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('models', '0010_search')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Media',
            name='width',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Media',
            name='height',
            field=fields.IntField(null=True),
        ),
    ]
