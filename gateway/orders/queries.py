"""Every query of the orders domain, named for what it does or returns.

State changes are conditional updates (``WHERE state = ...``): whoever changes a row first wins,
everyone else changes nothing. That, ``FOR UPDATE SKIP LOCKED`` on claims and the ledger's
constraints are what make any number of API processes and workers safe on one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db import HotPathPool

Executor = AsyncConnection | AsyncSession

# The whole charge in one statement: debit the balance (guarded), insert the order, append the
# charge entry. No row back: not enough funds, nothing changed. The order starts in ``submitting``
# because the caller sends it upstream right after; a crash before that leaves an order that the
# recovery sweep marks ``unknown`` (never sent twice) rather than one that might be sent again.
CHARGE_AND_CREATE = text(
    """
    WITH debit AS (
        UPDATE customers SET balance = balance - :charge, updated_at = now()
        WHERE id = :customer_id AND balance >= :charge
        RETURNING id, balance
    ),
    created AS (
        INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, link, quantity, params,
                            rate, charge, cost, currency, state, submitted_at, attempts, request_id)
        SELECT id, :service_id, :provider_id, :upstream_service_id, :link, :quantity, :params,
               :rate, :charge, :cost, :currency, 'submitting', now(), 1, :request_id
        FROM debit
        RETURNING id, created_at
    ),
    entry AS (
        INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id)
        SELECT debit.id, 'charge', -CAST(:charge AS numeric), debit.balance, created.id FROM debit, created
    )
    SELECT created.id, created.created_at, debit.balance FROM created, debit
    """
).bindparams(bindparam("params", type_=JSONB))

ACTIVE_ORDER_ON_LINK = text(
    """
    SELECT 1 FROM orders
    WHERE service_id = :service_id AND link = :link AND customer_id = :customer_id
      AND status IN ('Pending', 'In progress', 'Processing') AND state NOT IN ('failed', 'canceled')
    LIMIT 1
    """
)


@dataclass(frozen=True, slots=True)
class OrderToSend:
    id: int
    provider_id: int
    upstream_service_id: int
    params: dict[str, Any]
    created_at: datetime
    attempts: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class OrderToCheck:
    id: int
    provider_id: int
    upstream_order_id: int
    created_at: datetime


def _to_send(row: Row[Any]) -> OrderToSend:
    return OrderToSend(
        id=row.id,
        provider_id=row.provider_id,
        upstream_service_id=row.upstream_service_id,
        params=row.params,
        created_at=row.created_at,
        attempts=row.attempts,
        request_id=row.request_id,
    )


async def claim_queued_orders(conn: Executor, limit: int) -> list[OrderToSend]:
    """Take up to ``limit`` due queued orders into ``submitting`` (committed before any send)."""
    rows = await conn.execute(
        text(
            """
            UPDATE orders SET state = 'submitting', submitted_at = now(), attempts = attempts + 1,
                              updated_at = now()
            WHERE id IN (
                SELECT id FROM orders
                WHERE state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                ORDER BY next_attempt_at NULLS FIRST, id
                LIMIT :limit FOR UPDATE SKIP LOCKED
            )
            RETURNING id, provider_id, upstream_service_id, params, created_at, attempts, request_id
            """
        ),
        {"limit": limit},
    )
    return [_to_send(row) for row in rows]


MARK_PLACED = text(
    """
    UPDATE orders SET state = 'placed', upstream_order_id = :upstream, placed_at = now(),
                      next_check_at = now() + make_interval(secs => :delay), last_error = NULL,
                      updated_at = now()
    WHERE id = :id AND state = 'submitting'
    RETURNING id
    """
)


async def mark_placed(conn: Executor, order_id: int, upstream_order_id: int, first_check_seconds: float) -> bool:
    result = await conn.execute(
        MARK_PLACED, {"id": order_id, "upstream": upstream_order_id, "delay": first_check_seconds}
    )
    return result.first() is not None


async def mark_placed_alone(
    hot: HotPathPool, order_id: int, upstream_order_id: int, first_check_seconds: float
) -> bool:
    """:func:`mark_placed` as a statement of its own (no other write belongs with it)."""
    row = await hot.fetchrow(MARK_PLACED, id=order_id, upstream=upstream_order_id, delay=first_check_seconds)
    return row is not None


async def mark_unknown(conn: Executor, order_id: int, error: str) -> bool:
    result = await conn.execute(
        text(
            "UPDATE orders SET state = 'unknown', last_error = :error, updated_at = now()"
            " WHERE id = :id AND state = 'submitting' RETURNING id"
        ),
        {"id": order_id, "error": error[:1000]},
    )
    return result.first() is not None


async def mark_requeued(conn: Executor, order_id: int, error: str, delay_seconds: float) -> bool:
    result = await conn.execute(
        text(
            """
            UPDATE orders SET state = 'queued', last_error = :error, updated_at = now(),
                              next_attempt_at = now() + make_interval(secs => :delay)
            WHERE id = :id AND state = 'submitting'
            RETURNING id
            """
        ),
        {"id": order_id, "error": error[:1000], "delay": delay_seconds},
    )
    return result.first() is not None


async def mark_ended_unsent(
    conn: Executor, order_id: int, from_states: Sequence[str], state: str, error: str
) -> Decimal | None:
    """End an order that never reached the upstream (``failed`` or ``canceled``), status Canceled.

    Returns its charge (to refund), or None when the order was not in one of ``from_states``.
    """
    result = await conn.execute(
        text(
            """
            UPDATE orders SET state = :state, status = 'Canceled', last_error = :error, completed_at = now(),
                              remains = quantity, updated_at = now()
            WHERE id = :id AND state = ANY(:from_states)
            RETURNING charge
            """
        ),
        {"id": order_id, "state": state, "error": error[:1000], "from_states": list(from_states)},
    )
    row = result.first()
    return None if row is None else Decimal(row.charge)


async def expired_queued_order_ids(conn: Executor, max_age_seconds: float, limit: int) -> list[int]:
    rows = await conn.execute(
        text(
            """
            SELECT id FROM orders
            WHERE state = 'queued' AND created_at < now() - make_interval(secs => :age)
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
            """
        ),
        {"age": max_age_seconds, "limit": limit},
    )
    return [row.id for row in rows]


async def mark_stale_submitting_unknown(conn: Executor, stale_seconds: float) -> list[int]:
    """Orders left ``submitting`` by a process that died: they may have been sent, so unknown."""
    rows = await conn.execute(
        text(
            """
            UPDATE orders SET state = 'unknown', updated_at = now(),
                              last_error = 'the gateway stopped while sending this order; check the upstream'
            WHERE id IN (
                SELECT id FROM orders
                WHERE state = 'submitting' AND submitted_at < now() - make_interval(secs => :stale)
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """
        ),
        {"stale": stale_seconds},
    )
    return [row.id for row in rows]


async def claim_orders_to_check(conn: Executor, limit: int, lease_seconds: float) -> list[OrderToCheck]:
    """Lease active orders due for a status check (least recently checked, then newest, first)."""
    rows = await conn.execute(
        text(
            """
            UPDATE orders SET next_check_at = now() + make_interval(secs => :lease)
            WHERE id IN (
                SELECT id FROM orders
                WHERE state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled') AND next_check_at <= now()
                ORDER BY last_checked_at NULLS FIRST, id DESC
                LIMIT :limit FOR UPDATE SKIP LOCKED
            )
            RETURNING id, provider_id, upstream_order_id, created_at
            """
        ),
        {"limit": limit, "lease": lease_seconds},
    )
    return [OrderToCheck(row.id, row.provider_id, row.upstream_order_id, row.created_at) for row in rows]


async def apply_progress(
    conn: Executor,
    order_id: int,
    status: str | None,
    raw_status: str,
    start_count: int | None,
    remains: int | None,
    upstream_charge: Decimal | None,
    next_check_seconds: float,
) -> Row[Any] | None:
    """Record a status answer. A terminal status is applied only once and never moves back;
    returns the order's money facts when this call made it terminal, else None."""
    result = await conn.execute(
        text(
            """
            UPDATE orders SET
                status = COALESCE(CAST(:status AS varchar), status),
                status_raw = :raw,
                start_count = COALESCE(CAST(:start_count AS bigint), start_count),
                remains = COALESCE(CAST(:remains AS bigint), remains),
                upstream_charge = COALESCE(CAST(:upstream_charge AS numeric), upstream_charge),
                last_checked_at = now(),
                last_error = NULL,
                next_check_at = now() + make_interval(secs => :delay),
                completed_at = CASE WHEN CAST(:status AS varchar) IN ('Completed', 'Partial', 'Canceled') THEN now() ELSE completed_at END,
                updated_at = now()
            WHERE id = :id AND state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled')
            RETURNING status, charge, quantity, remains
            """
        ),
        {
            "id": order_id,
            "status": status,
            "raw": raw_status[:200],
            "start_count": start_count,
            "remains": remains,
            "upstream_charge": upstream_charge,
            "delay": next_check_seconds,
        },
    )
    row = result.first()
    if row is None or status not in ("Completed", "Partial", "Canceled"):
        return None
    return row


async def note_check_problem(conn: Executor, order_id: int, error: str, next_check_seconds: float) -> None:
    await conn.execute(
        text(
            """
            UPDATE orders SET last_error = :error, last_checked_at = now(),
                              next_check_at = now() + make_interval(secs => :delay)
            WHERE id = :id AND state = 'placed'
            """
        ),
        {"id": order_id, "error": error[:1000], "delay": next_check_seconds},
    )


async def mark_unknown_placed(conn: Executor, order_id: int, upstream_order_id: int) -> bool:
    """The operator found an unknown order upstream: placed, checked at the next sync."""
    result = await conn.execute(
        text(
            """
            UPDATE orders SET state = 'placed', upstream_order_id = :upstream, placed_at = now(),
                              next_check_at = now(), last_error = NULL, updated_at = now()
            WHERE id = :id AND state = 'unknown' RETURNING id
            """
        ),
        {"id": order_id, "upstream": upstream_order_id},
    )
    return result.first() is not None


async def make_queued_due(conn: Executor, order_id: int) -> bool:
    """A queued order becomes due for dispatch now."""
    result = await conn.execute(
        text("UPDATE orders SET next_attempt_at = now() WHERE id = :id AND state = 'queued' RETURNING id"),
        {"id": order_id},
    )
    return result.first() is not None


# --- reads for the operator ---------------------------------------------------------------------

STUCK_ORDER_IDS = text(
    """
    SELECT id FROM orders
    WHERE state NOT IN ('failed', 'canceled') AND status NOT IN ('Completed', 'Partial', 'Canceled')
      AND created_at < now() - make_interval(secs => :older_than)
    ORDER BY created_at LIMIT :limit
    """
)


# --- reads for the customer -------------------------------------------------------------------

CUSTOMER_ORDERS = text(
    """
    SELECT id, status, state, charge, refunded, start_count, remains, quantity, currency
    FROM orders WHERE customer_id = :customer_id AND id = ANY(:ids)
    """
)


class OrderStatusRow(NamedTuple):
    """What a status answer shows of one order (the columns of ``CUSTOMER_ORDERS``, in order)."""

    id: int
    status: str
    state: str
    charge: Decimal
    refunded: Decimal
    start_count: int | None
    remains: int | None
    quantity: int
    currency: str


async def customer_orders(hot: HotPathPool, customer_id: int, ids: Sequence[int]) -> dict[int, OrderStatusRow]:
    """The caller's own orders among ``ids`` (a foreign id is simply absent)."""
    rows = await hot.fetch(CUSTOMER_ORDERS, customer_id=customer_id, ids=list(ids))
    return {row[0]: OrderStatusRow(*row) for row in rows}
