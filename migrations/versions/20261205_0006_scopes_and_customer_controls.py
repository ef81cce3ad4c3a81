"""scoped admin tokens; per-customer IP allowlist and daily spend limit

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tokens issued before scopes existed had every power: they keep it until the operator
    # reissues them with a narrower scope (README, Security).
    op.add_column(
        "admin_tokens", sa.Column("scope", sa.String(length=10), server_default=sa.text("'admin'"), nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_admin_tokens_scope_known"), "admin_tokens", "scope IN ('read', 'operator', 'admin')"
    )
    op.add_column("audit_log", sa.Column("scope", sa.String(length=10), nullable=True))
    op.add_column("customers", sa.Column("allowed_ips", postgresql.ARRAY(postgresql.CIDR()), nullable=True))
    op.add_column("customers", sa.Column("daily_spend_limit", sa.Numeric(20, 5), nullable=True))
    op.add_column("customers", sa.Column("spent_today", sa.Numeric(20, 5), server_default=sa.text("0"), nullable=False))
    op.add_column("customers", sa.Column("spent_day", sa.Date(), nullable=True))
    op.add_column("customers", sa.Column("ip_refused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("customers", sa.Column("ip_refused_from", sa.String(length=45), nullable=True))
    op.create_check_constraint(
        op.f("ck_customers_daily_spend_limit_positive"),
        "customers",
        "daily_spend_limit IS NULL OR daily_spend_limit > 0",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_customers_daily_spend_limit_positive"), "customers", type_="check")
    for column in ("ip_refused_from", "ip_refused_at", "spent_day", "spent_today", "daily_spend_limit", "allowed_ips"):
        op.drop_column("customers", column)
    op.drop_column("audit_log", "scope")
    op.drop_constraint(op.f("ck_admin_tokens_scope_known"), "admin_tokens", type_="check")
    op.drop_column("admin_tokens", "scope")
