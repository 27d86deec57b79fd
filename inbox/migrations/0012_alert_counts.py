from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Open alerts that piled up one per text fold into one per conversation and case: the first one stays
# (its age is how long the client has waited), counts them all and moves to the latest text; it is
# addressed to everyone any of them was. Alerts on our own texts (an unconfirmed hearing's reminder) stay
# apart, as raise_alert keeps them. Portable SQL: SQLite and PostgreSQL alike.
FOLD_OPEN_ALERTS = [
    "CREATE TEMPORARY TABLE alert_fold AS "
    "SELECT a.id AS alert_id, a.message_id AS message_id, "
    "(SELECT MIN(b.id) FROM alert b JOIN message mb ON mb.id = b.message_id "
    " WHERE b.dismissed_at IS NULL AND b.case_id = a.case_id AND mb.direction = 'inbound' "
    " AND mb.conversation_id = m.conversation_id) AS keeper_id "
    "FROM alert a JOIN message m ON m.id = a.message_id "
    "WHERE a.dismissed_at IS NULL AND m.direction = 'inbound'",
    "CREATE TEMPORARY TABLE alert_keep AS "
    "SELECT keeper_id, COUNT(*) AS waiting, MAX(message_id) AS latest FROM alert_fold "
    "GROUP BY keeper_id HAVING COUNT(*) > 1",
    "INSERT INTO alert_assignee (alert_id, staff_id) "
    "SELECT DISTINCT f.keeper_id, aa.staff_id FROM alert_fold f JOIN alert_assignee aa ON aa.alert_id = f.alert_id "
    "WHERE f.alert_id <> f.keeper_id AND NOT EXISTS "
    "(SELECT 1 FROM alert_assignee x WHERE x.alert_id = f.keeper_id AND x.staff_id = aa.staff_id)",
    "DELETE FROM alert_assignee WHERE alert_id IN (SELECT alert_id FROM alert_fold WHERE alert_id <> keeper_id)",
    "DELETE FROM alert WHERE id IN (SELECT alert_id FROM alert_fold WHERE alert_id <> keeper_id)",
    # After the deletions: the latest text's (case, message) pair was another alert's until now.
    "UPDATE alert SET text_count = (SELECT waiting FROM alert_keep WHERE keeper_id = alert.id), "
    "message_id = (SELECT latest FROM alert_keep WHERE keeper_id = alert.id) "
    "WHERE id IN (SELECT keeper_id FROM alert_keep)",
    "DROP TABLE alert_keep",
    "DROP TABLE alert_fold",
]

# "Dismiss on reply" becomes the default (issue 10). An organisation that had turned it off cannot be told
# apart from one that never looked (both are false), so every organisation gets it on; the setting stays.
DISMISS_ON_REPLY = ["UPDATE organisation SET dismiss_alerts_on_reply = TRUE"]


class Migration(migrations.Migration):
    dependencies = [('models', '0011_media_sizes')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Alert',
            options={'table': 'alert', 'app': 'models', 'unique_together': (('case', 'message'),), 'pk_attr': 'id', 'table_description': 'Texts from a client on a case, waiting for someone to answer. Dismissed once, for everyone.'},
        ),
        ops.AddField(
            model_name='Alert',
            name='text_count',
            field=fields.IntField(default=1, db_default=1),
        ),
        ops.RunSQL(FOLD_OPEN_ALERTS, reverse_sql=[]),
        ops.RunSQL(DISMISS_ON_REPLY, reverse_sql=[]),
    ]
