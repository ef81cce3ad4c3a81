"""The ledger: the only code that moves a customer's balance.

Every movement is one SQL statement that updates the cached balance and appends the entry with
the balance after it, so the two can never disagree: per customer, ``balance`` equals the sum of
the entries, always. Debits are guarded (``balance >= amount``) in the same statement, and the
schema refuses a second charge or refund for one order and a refund above its charge.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.errors import InvalidInput, NotFound
from gateway.money import ZERO

Executor = AsyncConnection | AsyncSession

_CREDIT = text(
    """
    WITH credit AS (
        UPDATE customers SET balance = balance + :amount, updated_at = now()
        WHERE id = :customer_id
        RETURNING id, balance
    )
    INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, note, actor)
    SELECT id, :kind, :amount, balance, :note, :actor FROM credit
    RETURNING balance_after
    """
)

_DEBIT = text(
    """
    WITH debit AS (
        UPDATE customers SET balance = balance - :amount, updated_at = now()
        WHERE id = :customer_id AND balance >= :amount
        RETURNING id, balance
    )
    INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, note, actor)
    SELECT id, 'adjustment', -CAST(:amount AS numeric), balance, :note, :actor FROM debit
    RETURNING balance_after
    """
)

# Refund an order, at most once: the order's ``refunded`` moves from 0 to the amount in the same
# statement that credits the balance and appends the entry (the unique index is the backstop).
_REFUND = text(
    """
    WITH refunded AS (
        UPDATE orders SET refunded = :amount, updated_at = now()
        WHERE id = :order_id AND refunded = 0 AND CAST(:amount AS numeric) > 0 AND CAST(:amount AS numeric) <= charge
        RETURNING customer_id
    ),
    credit AS (
        UPDATE customers SET balance = balance + :amount, updated_at = now()
        WHERE id = (SELECT customer_id FROM refunded)
        RETURNING id, balance
    )
    INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id, note)
    SELECT id, 'refund', :amount, balance, :order_id, :note FROM credit
    RETURNING balance_after
    """
)


async def add_funds(
    conn: Executor, customer_id: int, amount: Decimal, *, note: str | None, actor: str | None
) -> Decimal:
    """Credit (positive: a deposit) or debit (negative: an adjustment) a balance; returns the new one.

    A debit that would take the balance below zero is refused and changes nothing.
    """
    if amount == 0:
        raise InvalidInput("amount must not be zero", field="amount")
    params: dict[str, Any] = {"customer_id": customer_id, "note": note, "actor": actor}
    if amount > 0:
        result = await conn.execute(_CREDIT, {**params, "amount": amount, "kind": "deposit"})
    else:
        result = await conn.execute(_DEBIT, {**params, "amount": -amount})
    row = result.first()
    if row is None:
        exists = await conn.execute(text("SELECT balance FROM customers WHERE id = :c"), {"c": customer_id})
        current = exists.scalar_one_or_none()
        if current is None:
            raise NotFound(f"customer {customer_id} not found")
        raise InvalidInput(f"a deduction of {-amount} would take the balance {current} below zero", field="amount")
    return Decimal(row.balance_after)


async def refund_order(conn: Executor, order_id: int, amount: Decimal, note: str) -> Decimal | None:
    """Refund ``amount`` of an order's charge, once. Returns the balance after, or None when
    nothing was refunded (zero amount, or the order was refunded before)."""
    if amount <= ZERO:
        return None
    row = (await conn.execute(_REFUND, {"order_id": order_id, "amount": amount, "note": note})).first()
    return None if row is None else Decimal(row.balance_after)
