"""hostile upstreams: held final statuses, order anomalies, one gateway order per upstream order id

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refuse_duplicate_upstream_ids() -> None:
    """Two orders sharing one upstream order id cannot be told apart by the status sync (one
    upstream Canceled would refund both). Which one is real is an operator's decision, so the
    migration stops and names them instead of guessing."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT provider_id, upstream_order_id, array_agg(id ORDER BY id) AS ids FROM orders"
                " WHERE upstream_order_id IS NOT NULL GROUP BY provider_id, upstream_order_id"
                " HAVING count(*) > 1 ORDER BY provider_id, upstream_order_id LIMIT 20"
            )
        )
        .all()
    )
    if rows:
        listed = "; ".join(
            f"provider {r.provider_id} upstream order {r.upstream_order_id}: orders {r.ids}" for r in rows
        )
        raise RuntimeError(
            "orders share an upstream order id, so one upstream answer would apply to several of them: "
            f"{listed}. Check each upstream order in the provider's panel, set the wrong orders'"
            " upstream_order_id to NULL and their state to 'unknown', then migrate again."
        )


def upgrade() -> None:
    _refuse_duplicate_upstream_ids()
    op.create_index(
        "uq_orders_provider_id_upstream_order_id",
        "orders",
        ["provider_id", "upstream_order_id"],
        unique=True,
        postgresql_where=sa.text("upstream_order_id IS NOT NULL"),
    )
    op.add_column("orders", sa.Column("held_status", sa.String(length=16), nullable=True))
    op.add_column("orders", sa.Column("held_checks", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_check_constraint(
        "held_status_known", "orders", "held_status IS NULL OR held_status IN ('Partial', 'Canceled')"
    )
    op.create_check_constraint("held_only_placed", "orders", "held_status IS NULL OR state = 'placed'")
    op.create_index("ix_orders_held", "orders", ["id"], postgresql_where=sa.text("held_status IS NOT NULL"))
    op.create_table(
        "order_anomalies",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("times", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_anomalies_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_anomalies")),
        sa.UniqueConstraint("order_id", "kind", "detail", name=op.f("uq_order_anomalies_order_id_kind_detail")),
    )
    op.create_index("ix_order_anomalies_kind", "order_anomalies", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_order_anomalies_kind", table_name="order_anomalies")
    op.drop_table("order_anomalies")
    op.drop_index("ix_orders_held", table_name="orders", postgresql_where=sa.text("held_status IS NOT NULL"))
    op.drop_constraint(op.f("ck_orders_held_only_placed"), "orders", type_="check")
    op.drop_constraint(op.f("ck_orders_held_status_known"), "orders", type_="check")
    op.drop_column("orders", "held_checks")
    op.drop_column("orders", "held_status")
    op.drop_index(
        "uq_orders_provider_id_upstream_order_id",
        table_name="orders",
        postgresql_where=sa.text("upstream_order_id IS NOT NULL"),
    )
