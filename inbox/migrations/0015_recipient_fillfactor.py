from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL: campaign_recipient's pages are filled to 45 % only, so that a campaign's start can set each
# recipient's pointer to its text (campaign_recipient.message_id) as a HOT update: the new row version goes on the
# same page and no index gets a new entry (message_id is not indexed). A recipient row is written at the preview
# and updated once at the start (and once more if the client answers a survey); with full pages every update moved
# the row and added an entry to both indexes (~40 % of that UPDATE's time for 10,000 recipients). The table
# takes about twice the pages. Only new pages are filled so; rows already there stay where they are.
# SQLite has no fill factor: nothing to do there.
FILL = 45


class RunOnPostgres(ops.RunSQL):
    """RunSQL on PostgreSQL only."""

    def __init__(self, sql, reverse_sql):
        super().__init__(sql, reverse_sql=reverse_sql)
        self.forward_sql, self.backward_sql = sql, reverse_sql

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        await self._run(state_editor, self.forward_sql)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        await self._run(state_editor, self.backward_sql)

    async def _run(self, state_editor, sqls):
        if state_editor is None or state_editor.DIALECT != "postgres":
            return
        for sql in sqls:
            if state_editor.collect_sql:
                state_editor.collected_sql.append(sql)
            else:
                await state_editor.client.execute_query(sql)


class Migration(migrations.Migration):
    dependencies = [('models', '0014_import_external_ids')]

    initial = False

    operations = [
        RunOnPostgres(
            [f"ALTER TABLE campaign_recipient SET (fillfactor = {FILL})"],
            ["ALTER TABLE campaign_recipient RESET (fillfactor)"],
        ),
    ]
