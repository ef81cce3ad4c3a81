"""catalog revision: a counter that moves on every price-relevant write

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level triggers: a sync that touches 5,000 services bumps the counter once.
WATCHED = {
    # Balance checks and sync bookkeeping write to providers too; only these columns matter
    # to prices and to how orders reach the provider.
    "providers": "INSERT OR DELETE OR UPDATE OF fx_rate, enabled, api_url, api_key",
    "services": "INSERT OR UPDATE OR DELETE",
    "markup_rules": "INSERT OR UPDATE OR DELETE",
    "customer_rates": "INSERT OR UPDATE OR DELETE",
    # Balances change on every order; only the discount matters to prices.
    "customers": "UPDATE OF discount_percent, enabled",
}


def upgrade() -> None:
    op.create_table(
        "catalog_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_catalog_revision_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_revision")),
    )
    op.execute("INSERT INTO catalog_revision (id, revision) VALUES (1, 0)")
    op.execute(
        """
        CREATE FUNCTION bump_catalog_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1;
            RETURN NULL;
        END
        $$
        """
    )
    for table, events in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER trg_{table}_catalog_revision AFTER {events} ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_revision()"
        )


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_catalog_revision ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_catalog_revision()")
    op.drop_table("catalog_revision")
