"""customers' status webhooks: a durable outbox written by triggers with each change

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outbox row is written by the same transaction that changes the order or refill (a trigger),
# so a change that commits always has its event and one that rolls back never does, whatever
# code path made it. Only customers with a webhook URL get rows.
_ORDER_EVENT = """
CREATE FUNCTION webhook_order_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM customers WHERE id = NEW.customer_id AND webhook_url IS NOT NULL) THEN
        INSERT INTO webhook_outbox (customer_id, order_id, event, payload)
        VALUES (NEW.customer_id, NEW.id, 'order.status', jsonb_build_object(
            'order', NEW.id, 'status', NEW.status, 'remains', NEW.remains, 'charge', NEW.charge,
            'refunded', NEW.refunded, 'currency', NEW.currency, 'at', now()));
    END IF;
    RETURN NULL;
END $$;
"""
_REFILL_EVENT = """
CREATE FUNCTION webhook_refill_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM customers WHERE id = NEW.customer_id AND webhook_url IS NOT NULL) THEN
        INSERT INTO webhook_outbox (customer_id, order_id, refill_id, event, payload)
        VALUES (NEW.customer_id, NEW.order_id, NEW.id, 'refill.status', jsonb_build_object(
            'refill', NEW.id, 'order', NEW.order_id, 'status', NEW.status, 'at', now()));
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.add_column("customers", sa.Column("webhook_url", sa.Text(), nullable=True))
    op.add_column("customers", sa.Column("webhook_secret", sa.String(length=100), nullable=True))
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "event_id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("refill_id", sa.BigInteger(), nullable=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_webhook_outbox_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_outbox_event_id")),
    )
    op.create_index(
        "ix_webhook_outbox_pending",
        "webhook_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL AND failed_at IS NULL"),
    )
    op.create_index("ix_webhook_outbox_customer", "webhook_outbox", ["customer_id", "id"])
    op.create_index(
        "ix_webhook_outbox_failed", "webhook_outbox", ["id"], postgresql_where=sa.text("failed_at IS NOT NULL")
    )
    op.create_index(
        "ix_webhook_outbox_order_pending",
        "webhook_outbox",
        ["order_id", "id"],
        postgresql_where=sa.text("delivered_at IS NULL AND failed_at IS NULL"),
    )
    op.execute(_ORDER_EVENT)
    op.execute(_REFILL_EVENT)
    op.execute(
        "CREATE TRIGGER trg_orders_webhook AFTER UPDATE ON orders FOR EACH ROW"
        " WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.remains IS DISTINCT FROM NEW.remains"
        " OR OLD.refunded IS DISTINCT FROM NEW.refunded)"
        " EXECUTE FUNCTION webhook_order_event()"
    )
    op.execute(
        "CREATE TRIGGER trg_refills_webhook AFTER UPDATE ON refills FOR EACH ROW"
        " WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION webhook_refill_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_refills_webhook ON refills")
    op.execute("DROP TRIGGER IF EXISTS trg_orders_webhook ON orders")
    op.execute("DROP FUNCTION IF EXISTS webhook_refill_event()")
    op.execute("DROP FUNCTION IF EXISTS webhook_order_event()")
    op.drop_index("ix_webhook_outbox_order_pending", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_failed", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_customer", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_pending", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
    op.drop_column("customers", "webhook_secret")
    op.drop_column("customers", "webhook_url")
