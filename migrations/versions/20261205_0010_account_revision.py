"""customers: a key rotation or an allowlist change moves the catalog revision too

The hot path may act on an account it read a moment ago (a process' short-lived account cache),
and the charge statement only goes through when the catalog revision is still the one that
account was read at. The revision already moved with everything that decides a price (the
catalog, markups, rates, a customer's discount) and with a customer being disabled; this makes it
move with what decides whether a key may act at all: its hash (rotation) and its allowed IPs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigger(columns: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_customers_catalog_revision ON customers")
    op.execute(
        f"CREATE TRIGGER trg_customers_catalog_revision AFTER UPDATE OF {columns} ON customers"
        " FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_revision()"
    )


def upgrade() -> None:
    _trigger("discount_percent, enabled, api_key_hash, allowed_ips")


def downgrade() -> None:
    _trigger("discount_percent, enabled")
