"""allow a zero charge entry (a free or sub-cent order still gets its one charge entry)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_ledger_entries_amount_not_zero"), "ledger_entries", type_="check")
    op.create_check_constraint("amount_not_zero", "ledger_entries", "amount <> 0 OR kind = 'charge'")
    op.drop_constraint(op.f("ck_ledger_entries_kind_shape"), "ledger_entries", type_="check")
    op.create_check_constraint(
        "kind_shape",
        "ledger_entries",
        "(kind = 'charge' AND amount <= 0 AND order_id IS NOT NULL)"
        " OR (kind = 'refund' AND amount > 0 AND order_id IS NOT NULL)"
        " OR (kind = 'deposit' AND amount > 0 AND order_id IS NULL)"
        " OR (kind = 'adjustment' AND order_id IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_ledger_entries_kind_shape"), "ledger_entries", type_="check")
    op.create_check_constraint(
        "kind_shape",
        "ledger_entries",
        "(kind = 'charge' AND amount < 0 AND order_id IS NOT NULL)"
        " OR (kind = 'refund' AND amount > 0 AND order_id IS NOT NULL)"
        " OR (kind = 'deposit' AND amount > 0 AND order_id IS NULL)"
        " OR (kind = 'adjustment' AND order_id IS NULL)",
    )
    op.drop_constraint(op.f("ck_ledger_entries_amount_not_zero"), "ledger_entries", type_="check")
    op.create_check_constraint("amount_not_zero", "ledger_entries", "amount <> 0")
