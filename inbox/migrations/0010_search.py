from tortoise import migrations
from tortoise.migrations import operations as ops


class RunSQLPerDialect(ops.RunSQL):
    """RunSQL with statements for each dialect (SQLite and PostgreSQL search text differently).

    Each statement is run whole: the SQLite schema editor splits a migration's SQL at every semicolon
    (in a transaction), which would cut a trigger's body apart.
    """

    def __init__(self, *, sqlite, postgres, sqlite_reverse, postgres_reverse):
        super().__init__(sqlite, reverse_sql=sqlite_reverse)
        self.by_dialect = {"sqlite": (sqlite, sqlite_reverse), "postgres": (postgres, postgres_reverse)}

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await self._run_sql(state_editor, self.by_dialect[state_editor.DIALECT][0])

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await self._run_sql(state_editor, self.by_dialect[state_editor.DIALECT][1])

    async def _run_sql(self, state_editor, sqls):
        for sql in sqls:
            if state_editor.collect_sql:
                state_editor.collected_sql.append(sql)
            else:
                await state_editor.client.execute_query(sql)


class Migration(migrations.Migration):
    dependencies = [('models', '0009_staff_reminders')]

    initial = False

    # Full-text search of every message's text (inbox/services/search.py reads these).
    # SQLite: an FTS5 index over message.body (external content: the text is not stored twice), kept in step
    # by triggers and filled from the rows already there. A later migration must not rebuild the message
    # table on SQLite (Tortoise's AlterField does): the triggers would go with it.
    # PostgreSQL: a GIN index on the 'simple' configuration (no stemming, no stop words: names and words in
    # any language match as typed); the search's WHERE must use this very expression.
    operations = [
        RunSQLPerDialect(
            sqlite=[
                "CREATE VIRTUAL TABLE message_fts USING fts5(body, content='message', content_rowid='id',"
                " tokenize='unicode61 remove_diacritics 2')",
                "CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN"
                " INSERT INTO message_fts (rowid, body) VALUES (new.id, new.body); END",
                "CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN"
                " INSERT INTO message_fts (message_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
                # Status updates rewrite the whole row: only a changed text touches the index.
                "CREATE TRIGGER message_fts_update AFTER UPDATE OF body ON message WHEN old.body IS NOT new.body"
                " BEGIN"
                " INSERT INTO message_fts (message_fts, rowid, body) VALUES ('delete', old.id, old.body);"
                " INSERT INTO message_fts (rowid, body) VALUES (new.id, new.body); END",
                "INSERT INTO message_fts (message_fts) VALUES ('rebuild')",
            ],
            sqlite_reverse=[
                "DROP TRIGGER message_fts_update",
                "DROP TRIGGER message_fts_delete",
                "DROP TRIGGER message_fts_insert",
                "DROP TABLE message_fts",
            ],
            postgres=["CREATE INDEX idx_message_body_fts ON message USING GIN (to_tsvector('simple', body))"],
            postgres_reverse=["DROP INDEX idx_message_body_fts"],
        ),
    ]
