"""idempotent requests (add, refill, cancel) and failover routes of a service

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotent_requests",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("action IN ('add', 'refill', 'cancel')", name=op.f("ck_idempotent_requests_action_known")),
        sa.CheckConstraint(
            "action <> 'add' OR order_id IS NOT NULL", name=op.f("ck_idempotent_requests_add_has_order")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_idempotent_requests_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_idempotent_requests_order_id_orders")),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_idempotent_requests")),
    )
    op.create_index("ix_idempotent_requests_created_at", "idempotent_requests", ["created_at"])
    op.create_table(
        "service_routes",
        sa.Column("service_id", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("route_service_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("priority >= 1", name=op.f("ck_service_routes_priority_positive")),
        sa.CheckConstraint("route_service_id <> service_id", name=op.f("ck_service_routes_not_itself")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_service_routes_service_id_services"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["route_service_id"],
            ["services.id"],
            name=op.f("fk_service_routes_route_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", "priority", name=op.f("pk_service_routes")),
        sa.UniqueConstraint(
            "service_id", "route_service_id", name=op.f("uq_service_routes_service_id_route_service_id")
        ),
    )
    # Routes change what a service sells (its limits) and where its orders go: a price book input.
    op.execute(
        "CREATE TRIGGER trg_service_routes_catalog_revision AFTER INSERT OR UPDATE OR DELETE ON service_routes"
        " FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_revision()"
    )
    op.add_column("orders", sa.Column("route_priority", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "orders",
        sa.Column(
            "routes_tried",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("orders", "routes_tried")
    op.drop_column("orders", "route_priority")
    op.execute("DROP TRIGGER IF EXISTS trg_service_routes_catalog_revision ON service_routes")
    op.drop_table("service_routes")
    op.drop_index("ix_idempotent_requests_created_at", table_name="idempotent_requests")
    op.drop_table("idempotent_requests")
