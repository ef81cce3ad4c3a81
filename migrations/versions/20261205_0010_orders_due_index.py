"""orders: the status sync's index by next check alone (the lease and the lag gauge read it)

The lease takes the most overdue live orders first and the lag gauge reads the oldest
``next_check_at``; both need the live orders ordered by ``next_check_at`` across providers, which
``ix_orders_sync`` (provider first) could not give without reading it whole. It replaces that one
(nothing asked by provider), so a status answer still updates one index of this kind, not two.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled')"


def upgrade() -> None:
    op.create_index("ix_orders_due", "orders", ["next_check_at"], postgresql_where=sa.text(_LIVE))
    op.drop_index("ix_orders_sync", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_sync", "orders", ["provider_id", "next_check_at"], postgresql_where=sa.text(_LIVE))
    op.drop_index("ix_orders_due", table_name="orders")
