import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from inbox.models import DeliveryState

FOREIGN_KEY_INDEXES = [
    ("idx_fk_webhook_endpoint_created_by_id", "webhook_endpoint", "created_by_id"),
    ("idx_fk_webhook_delivery_endpoint_id", "webhook_delivery", "endpoint_id"),
    ("idx_fk_webhook_attempt_delivery_id", "webhook_attempt", "delivery_id"),
]


class Migration(migrations.Migration):
    dependencies = [("models", "0019_audit")]

    initial = False

    operations = [
        ops.CreateModel(
            name="WebhookEndpoint",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("url", fields.CharField(max_length=2000)),
                (
                    "events",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("secret_encrypted", fields.TextField(unique=False)),
                ("enabled", fields.BooleanField(default=True)),
                ("failing_since", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("disabled_reason", fields.CharField(default="", max_length=300)),
                (
                    "created_by",
                    fields.ForeignKeyField(
                        "models.Staff",
                        source_field="created_by_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="webhook_endpoints",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "webhook_endpoint",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A receiver an admin registered for outgoing webhooks: its URL, the event types it gets, and the",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WebhookDelivery",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "endpoint",
                    fields.ForeignKeyField(
                        "models.WebhookEndpoint",
                        source_field="endpoint_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("webhook_id", fields.CharField(unique=True, max_length=40)),
                ("event_type", fields.CharField(max_length=40)),
                ("body", fields.TextField(unique=False)),
                (
                    "state",
                    fields.CharEnumField(
                        default=DeliveryState.WAITING,
                        description="WAITING: waiting\nSENDING: sending\nRETRYING: retrying\nDELIVERED: delivered\nFAILED: failed",
                        enum_type=DeliveryState,
                        max_length=10,
                    ),
                ),
                ("next_attempt_at", fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ("lease_owner", fields.CharField(null=True, max_length=100)),
                ("lease_expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("attempt_count", fields.IntField(default=0)),
                ("last_status_code", fields.IntField(null=True)),
                ("last_error", fields.CharField(default="", max_length=500)),
                ("delivered_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "webhook_delivery",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One event for one endpoint: a durable job, written in the transaction that caused the event. `body` is",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WebhookAttempt",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "delivery",
                    fields.ForeignKeyField(
                        "models.WebhookDelivery",
                        source_field="delivery_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="attempts",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("status_code", fields.IntField(null=True)),
                ("response_ms", fields.IntField(null=True)),
                ("error", fields.CharField(default="", max_length=500)),
                ("worker", fields.CharField(default="", max_length=100)),
            ],
            options={
                "table": "webhook_attempt",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One POST of a delivery: what the endpoint answered and how long it took, or why it could not.",
            },
            bases=["Model"],
        ),
        # Tortoise makes no index for a foreign key (see 0017): the delivery log, an endpoint's deliveries and
        # a staff member's endpoints are read by these.
        ops.RunSQL(
            [
                f'CREATE INDEX IF NOT EXISTS {name} ON "{table}" ("{column}")'
                for name, table, column in FOREIGN_KEY_INDEXES
            ],
            reverse_sql=[f"DROP INDEX IF EXISTS {name}" for name, _, _ in FOREIGN_KEY_INDEXES],
        ),
    ]
