"""services: the operator's description; an index for the average delivery time per service

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("services", sa.Column("description_override", sa.Text(), nullable=True))
    # The last completed orders of a service, newest first: what the average delivery time reads.
    op.create_index(
        "ix_orders_completed_by_service",
        "orders",
        ["service_id", sa.text("completed_at DESC")],
        postgresql_where=sa.text("status = 'Completed' AND completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_completed_by_service", table_name="orders")
    op.drop_column("services", "description_override")
