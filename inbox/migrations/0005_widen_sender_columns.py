from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class WidenOutsideSQLite(ops.AlterField):
    """AlterField everywhere but SQLite, which never enforces a VARCHAR's length.

    Tortoise 1.1 alters a SQLite column by rebuilding the table: the copy loses its indexes and
    UNIQUE constraints, and the DROP TABLE of the original cascades to the rows that refer to it
    (every message of every conversation). Widening needs none of that on SQLite.
    """

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [('models', '0004_staff_sessions')]

    initial = False

    # Senders that are not phone numbers (whatsapp:+1…, messenger:…, a named sender) are kept as Twilio
    # sent them: up to 64 characters, like Message.from_number and to_number. Client phones are looked
    # up by sender, and Tortoise checks a filter's value against the column: they widen too.
    operations = [
        WidenOutsideSQLite(
            model_name='ClientPhone',
            name='number',
            field=fields.CharField(db_index=True, max_length=64),
        ),
        WidenOutsideSQLite(
            model_name='ConsentEvent',
            name='number',
            field=fields.CharField(db_index=True, max_length=64),
        ),
        WidenOutsideSQLite(
            model_name='Conversation',
            name='phone',
            field=fields.CharField(db_index=True, max_length=64),
        ),
    ]
