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

from gateway.calllog import INSERT_CALLS_SQL
from gateway.db import HotPathPool
from gateway.orders.answers import Anomaly, StatusUpdate
from gateway.orders.outcomes import OrderToSend

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
class OrderToCheck:
    id: int
    provider_id: int
    upstream_order_id: int
    created_at: datetime
    charge: Decimal
    quantity: int
    held_checks: int


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


# The upstream attempts of a send are written with its outcome (gateway.calllog explains why).
MARK_PLACED = text(
    f"""
    WITH placed AS (
        UPDATE orders SET state = 'placed', upstream_order_id = :upstream, placed_at = now(),
                          next_check_at = now() + make_interval(secs => :delay), last_error = NULL,
                          updated_at = now()
        WHERE id = :id AND state = ANY(:from_states)
        RETURNING id
    ),
    logged AS ({INSERT_CALLS_SQL})
    SELECT id FROM placed
    """  # noqa: S608 - composed of constants only
).bindparams(bindparam("calls", type_=JSONB))

WRITE_CALLS = text(INSERT_CALLS_SQL).bindparams(bindparam("calls", type_=JSONB))


async def mark_placed(
    conn: Executor | HotPathPool,
    order_id: int,
    upstream_order_id: int,
    first_check_seconds: float,
    calls: list[dict[str, Any]],
    from_states: Sequence[str] = ("submitting",),
) -> bool:
    """Record the upstream's order id (and the attempts that got it) in one statement; False when
    the order was no longer in ``from_states``. Raises on a second order with the same upstream id."""
    params = {
        "id": order_id,
        "upstream": upstream_order_id,
        "delay": first_check_seconds,
        "calls": calls,
        "from_states": list(from_states),
    }
    if isinstance(conn, HotPathPool):
        return await conn.fetchrow(MARK_PLACED, **params) is not None
    return (await conn.execute(MARK_PLACED, params)).first() is not None


async def write_calls(conn: Executor, calls: list[dict[str, Any]]) -> None:
    """Write upstream attempts collected during a send (inside the caller's transaction)."""
    if calls:
        await conn.execute(WRITE_CALLS, {"calls": calls})


async def order_with_upstream_id(conn: Executor, provider_id: int, upstream_order_id: int) -> int | None:
    """The gateway order that already carries this upstream order id, if any."""
    found = await conn.scalar(
        text("SELECT id FROM orders WHERE provider_id = :p AND upstream_order_id = :u"),
        {"p": provider_id, "u": upstream_order_id},
    )
    return None if found is None else int(found)


async def order_outcome(conn: Executor, order_id: int) -> tuple[str, int | None] | None:
    """The order's dispatch state and upstream order id."""
    row = (
        await conn.execute(text("SELECT state, upstream_order_id FROM orders WHERE id = :id"), {"id": order_id})
    ).first()
    return None if row is None else (str(row.state), row.upstream_order_id)


async def order_state(conn: Executor, order_id: int) -> str | None:
    state = await conn.scalar(text("SELECT state FROM orders WHERE id = :id"), {"id": order_id})
    return None if state is None else str(state)


async def mark_unknown(conn: Executor, order_id: int, error: str, from_states: Sequence[str] = ("submitting",)) -> bool:
    result = await conn.execute(
        text(
            "UPDATE orders SET state = 'unknown', last_error = :error, updated_at = now()"
            " WHERE id = :id AND state = ANY(:from_states) RETURNING id"
        ),
        {"id": order_id, "error": error[:1000], "from_states": list(from_states)},
    )
    return result.first() is not None


async def mark_requeued(
    conn: Executor, order_id: int, error: str, delay_seconds: float, from_states: Sequence[str] = ("submitting",)
) -> bool:
    result = await conn.execute(
        text(
            """
            UPDATE orders SET state = 'queued', last_error = :error, updated_at = now(),
                              next_attempt_at = now() + make_interval(secs => :delay)
            WHERE id = :id AND state = ANY(:from_states)
            RETURNING id
            """
        ),
        {"id": order_id, "error": error[:1000], "delay": delay_seconds, "from_states": list(from_states)},
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
            ORDER BY id LIMIT :limit
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
            RETURNING id, provider_id, upstream_order_id, created_at, charge, quantity, held_checks
            """
        ),
        {"limit": limit, "lease": lease_seconds},
    )
    return [
        OrderToCheck(
            row.id, row.provider_id, row.upstream_order_id, row.created_at, row.charge, row.quantity, row.held_checks
        )
        for row in rows
    ]


_RECORD_ANOMALIES = """
    INSERT INTO order_anomalies (order_id, kind, detail)
    SELECT :id, kind, detail FROM unnest(CAST(:kinds AS text[]), CAST(:details AS text[])) AS a(kind, detail)
    ON CONFLICT (order_id, kind, detail) DO UPDATE
        SET times = order_anomalies.times + 1, last_seen_at = now()
"""

# One status answer for one order, all in one statement (atomic on its own, so one order's answer
# never waits for or rolls back another's): progress, the final status with its refund exactly
# once (credit + ledger entry, guarded by ``refunded = 0`` and the ledger's unique index), a held
# final status, and the anomalies seen in the answer.
APPLY_STATUS = text(
    f"""
    WITH progressed AS (
        UPDATE orders SET
            status = COALESCE(CAST(:status AS varchar), status),
            status_raw = :raw,
            start_count = COALESCE(CAST(:start_count AS bigint), start_count),
            remains = COALESCE(CAST(:remains AS bigint), remains),
            upstream_charge = COALESCE(CAST(:upstream_charge AS numeric), upstream_charge),
            refunded = CAST(:refund AS numeric),
            held_status = CAST(:held AS varchar),
            held_checks = CASE WHEN CAST(:held AS varchar) IS NULL THEN 0 ELSE held_checks + 1 END,
            last_checked_at = now(),
            last_error = NULL,
            next_check_at = CASE WHEN CAST(:stop_asking AS boolean) THEN NULL
                                 ELSE now() + make_interval(secs => :delay) END,
            completed_at = CASE WHEN CAST(:ends AS boolean) THEN now() ELSE completed_at END,
            updated_at = now()
        WHERE id = :id AND state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled') AND refunded = 0
        RETURNING customer_id
    ),
    credit AS (
        UPDATE customers SET balance = balance + CAST(:refund AS numeric), updated_at = now()
        WHERE id = (SELECT customer_id FROM progressed) AND CAST(:refund AS numeric) > 0
        RETURNING id, balance
    ),
    entry AS (
        INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id, note)
        SELECT id, 'refund', CAST(:refund AS numeric), balance, :id, :note FROM credit
    ),
    noted AS ({_RECORD_ANOMALIES})
    SELECT (SELECT count(*) FROM progressed) AS applied, (SELECT count(*) FROM credit) AS refunded
    """  # noqa: S608 - composed of constants only
)


class Applied(NamedTuple):
    applied: bool
    refunded: bool


async def apply_status(
    hot: HotPathPool,
    order_id: int,
    update: StatusUpdate,
    next_check_seconds: float,
) -> Applied:
    """Apply one read status answer to one order (see :data:`APPLY_STATUS`)."""
    row = await hot.fetchrow(
        APPLY_STATUS,
        id=order_id,
        status=update.status,
        raw=update.raw_status[:200],
        start_count=update.start_count,
        remains=update.remains,
        upstream_charge=update.upstream_charge,
        refund=update.refund if update.ends else Decimal(0),
        held=update.held,
        stop_asking=update.held is not None and update.asks_left == 0,
        ends=update.ends,
        delay=next_check_seconds,
        note=f"upstream status {update.status}",
        kinds=[a.kind for a in update.anomalies],
        details=[a.detail for a in update.anomalies],
    )
    return Applied(bool(row and row["applied"]), bool(row and row["refunded"]))


RECORD_ANOMALIES = text(_RECORD_ANOMALIES)


async def record_anomalies(conn: Executor, order_id: int, anomalies: Sequence[Anomaly]) -> None:
    """Keep what made no sense about an order (the same anomaly again only bumps its count)."""
    if anomalies:
        await conn.execute(
            RECORD_ANOMALIES,
            {"id": order_id, "kinds": [a.kind for a in anomalies], "details": [a.detail[:200] for a in anomalies]},
        )


NOTE_CHECK_PROBLEM = text(
    f"""
    WITH noted_order AS (
        UPDATE orders SET last_error = :error, last_checked_at = now(),
                          next_check_at = now() + make_interval(secs => :delay)
        WHERE id = :id AND state = 'placed'
    ),
    noted AS ({_RECORD_ANOMALIES})
    SELECT 1
    """  # noqa: S608 - composed of constants only
)


async def note_check_problem(
    hot: HotPathPool, order_id: int, error: str, next_check_seconds: float, anomalies: Sequence[Anomaly] = ()
) -> None:
    """The upstream answered nothing usable for this order (a per-id error, or an answer the
    database refused): say so on the order, keep the anomaly, and ask again later."""
    await hot.fetchrow(
        NOTE_CHECK_PROBLEM,
        id=order_id,
        error=error[:1000],
        delay=next_check_seconds,
        kinds=[a.kind for a in anomalies],
        details=[a.detail for a in anomalies],
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
