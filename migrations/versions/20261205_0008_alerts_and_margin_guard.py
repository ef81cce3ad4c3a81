"""alerts (margin guard, charge drift, operational conditions) and the margin hold of a service

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = (
    "margin",
    "charge_drift",
    "low_balance",
    "orders_unknown",
    "orders_queued",
    "circuit_open",
    "order_anomalies",
)


def upgrade() -> None:
    op.add_column("services", sa.Column("margin_hold_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in _KINDS) + ")", name=op.f("ck_alerts_kind_known")
        ),
        sa.CheckConstraint("length(subject) BETWEEN 1 AND 200", name=op.f("ck_alerts_subject_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    # One open alert per condition: concurrent evaluators meet here (INSERT ... ON CONFLICT).
    op.create_index(
        "uq_alerts_open", "alerts", ["kind", "subject"], unique=True, postgresql_where=sa.text("closed_at IS NULL")
    )
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])
    # The anomalies alert reads the last day's anomalies on every evaluation.
    op.create_index("ix_order_anomalies_last_seen_at", "order_anomalies", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_order_anomalies_last_seen_at", table_name="order_anomalies")
    op.drop_index("ix_alerts_opened_at", table_name="alerts")
    op.drop_index("uq_alerts_open", table_name="alerts")
    op.drop_table("alerts")
    op.drop_column("services", "margin_hold_since")
