"""The order store: every statement about orders and refills, and the only code that writes them.

- :class:`OrderStore` runs the statements that stand on their own (the hot path's single
  autocommit statements, the worker's claims and leases) and opens units of work;
- :class:`OrderTx` is the store inside one unit of work: a transaction the store opened
  (``async with store.begin() as tx``) or the admin request's session (``store.bound(session)``).

Every write of a state names its target and reaches it only from the states
:mod:`gateway.lifecycle` allows (``WHERE state = ANY(...)``): whoever changes a row first wins,
everyone else changes nothing. That, ``FOR UPDATE SKIP LOCKED`` on claims and leases, and the
ledger's constraints are what make any number of API processes and workers safe on one database.
Refunds go through the ledger's statement, or are written by the same statement as the final
status that causes them (:data:`APPLY_STATUS`).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from sqlalchemy import bindparam, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gateway.db import HotPathPool
from gateway.dberrors import violated_constraint
from gateway.ledger.ledger import refund_order
from gateway.lifecycle import (
    FINAL_REFILL_STATUSES,
    FINAL_STATUSES,
    OrderState,
    OrderStatus,
    RefillState,
    RefillStatus,
    order_sources,
    refill_sources,
    sql_list,
)
from gateway.models import LedgerEntry, Order, OrderAnomaly, Refill, UpstreamCall
from gateway.observability.metrics import OrderSnapshot
from gateway.orders.answers import Anomaly, StatusUpdate
from gateway.orders.drift import expected_cost_sql, reported_cost_sql
from gateway.orders.groupcommit import GroupCommit
from gateway.orders.outcomes import OrderToSend
from gateway.providers.calllog import INSERT_CALLS_SQL

Executor = AsyncConnection | AsyncSession

_FINAL = sql_list(FINAL_STATUSES)
_FINAL_REFILL = sql_list(FINAL_REFILL_STATUSES)
_ACTIVE = sql_list(s for s in OrderStatus if s not in FINAL_STATUSES)

# --- placing ----------------------------------------------------------------------------------

# The whole charge in one statement: debit the balance (guarded by the funds and the customer's
# daily spend limit, both read from the row the UPDATE locks, so concurrent adds cannot pass
# either; by the account the caller acted for, also read from the locked row, so a customer
# disabled, a key rotated, an allowlist or a discount changed while this waited for the row is no
# charge; and by the revision of the price book the price came from), insert the order (on the route it is sent to first), append the charge entry. No row
# back: not enough funds or the day's limit reached, nothing changed. The order starts in ``submitting``
# because the caller sends it upstream right after; a crash before that leaves an order that the
# recovery sweep marks ``unknown`` (never sent twice) rather than one that might be sent again.
_CHARGE_AND_CREATE = """
    WITH debit AS (
        UPDATE customers SET balance = balance - :charge,
                             spent_today = {spent_today} + :charge,
                             spent_day = {today},
                             updated_at = now()
        WHERE id = :customer_id AND balance >= :charge
          AND (daily_spend_limit IS NULL OR {spent_today} + :charge <= daily_spend_limit)
          AND {account_unchanged}
          AND (SELECT revision FROM catalog_revision WHERE id = 1) = :revision
        RETURNING id, balance
    ),
    created AS (
        INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, route_priority, link, quantity,
                            params, rate, charge, cost, currency, state, submitted_at, attempts, request_id)
        SELECT id, :service_id, :provider_id, :upstream_service_id, :route_priority, :link, :quantity,
               :params, :rate, :charge, :cost, :currency, 'submitting', now(), 1, :request_id
        FROM debit
        RETURNING id, created_at
    ),
    entry AS (
        INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id)
        SELECT debit.id, 'charge', -CAST(:charge AS numeric), debit.balance, created.id FROM debit, created
    ){keyed}
    SELECT created.id, created.created_at, debit.balance FROM created, debit
"""
# An add with an idempotency key stores the key with its order in the same statement: the
# primary key (customer, key) makes a second order for one key impossible, whatever crashes.
_KEYED = """,
    keyed AS (
        INSERT INTO idempotent_requests (customer_id, key, action, request_hash, order_id)
        SELECT :customer_id, :idempotency_key, 'add', :request_hash, id FROM created
    )"""
IDEMPOTENCY_KEY_CONSTRAINT = "pk_idempotent_requests"
# The account a charge acts for, as the caller read it (perhaps a moment ago: AccountCache): still
# enabled, the same key, allowlist and discount. In the debit's WHERE, Postgres re-checks it on
# the row version it finally locks, after any wait for a concurrent change of the customer.
_ACCOUNT_UNCHANGED = (
    "(enabled AND api_key_hash = :key_hash AND discount_percent = :discount"
    " AND allowed_ips::text[] IS NOT DISTINCT FROM CAST(:allowed_ips AS text[]))"
)
# The day a daily spend limit counts is the UTC day; what was spent on an earlier day counts 0.
_TODAY = "(now() AT TIME ZONE 'UTC')::date"
_SPENT_TODAY = f"CASE WHEN spent_day = {_TODAY} THEN spent_today ELSE 0 END"
CHARGE_AND_CREATE = text(
    _CHARGE_AND_CREATE.format(keyed="", spent_today=_SPENT_TODAY, today=_TODAY, account_unchanged=_ACCOUNT_UNCHANGED)
).bindparams(bindparam("params", type_=JSONB))
CHARGE_AND_CREATE_KEYED = text(
    _CHARGE_AND_CREATE.format(
        keyed=_KEYED, spent_today=_SPENT_TODAY, today=_TODAY, account_unchanged=_ACCOUNT_UNCHANGED
    )
).bindparams(bindparam("params", type_=JSONB))
# Why a charge changed nothing: the account or the price book is not the one the caller priced
# with; else the day's limit when the customer has one and this charge would pass it; else the
# funds (a concurrent deposit may have come in since: the funds are still why).
WHY_NOT_CHARGED = text(
    f"SELECT daily_spend_limit IS NOT NULL AND {_SPENT_TODAY} + :charge > daily_spend_limit AS over_limit,"  # noqa: S608
    f" {_ACCOUNT_UNCHANGED} AS account_unchanged,"
    " (SELECT revision FROM catalog_revision WHERE id = 1) AS revision"
    " FROM customers WHERE id = :customer_id"
)
# The duplicate-link guard's lock: adds on one customer, service and link take turns, so the
# check for an active order and the charge are one step for each (held to the commit).
LINK_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock_key, 0))")

ACTIVE_ORDER_ON_LINK = text(
    f"""
    SELECT 1 FROM orders
    WHERE service_id = :service_id AND link = :link AND customer_id = :customer_id
      AND status IN {_ACTIVE} AND state NOT IN ('failed', 'canceled')
    LIMIT 1
    """  # noqa: S608 - composed of constants only
)

# The routes an order records having tried (the first ones: an order retried for hours keeps its
# first failures, and its last error is on the order itself).
MAX_ROUTES_TRIED = 50

# --- recording a send's outcome -------------------------------------------------------------

# A placed order and the upstream attempts that got it, in one statement (the attempts are the
# operator's evidence: durable as soon as the outcome is).
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

# The same for several placed orders at once (:class:`~gateway.orders.groupcommit.GroupCommit`):
# the orders that were placed while the previous statement was in flight.
MARK_PLACED_MANY = text(
    f"""
    WITH placed AS (
        UPDATE orders AS o SET state = 'placed', upstream_order_id = p.upstream, placed_at = now(),
                               next_check_at = now() + make_interval(secs => p.delay), last_error = NULL,
                               updated_at = now()
        FROM unnest(CAST(:ids AS bigint[]), CAST(:upstreams AS bigint[]), CAST(:delays AS float8[]))
             AS p(id, upstream, delay)
        WHERE o.id = p.id AND o.state = ANY(:from_states)
        RETURNING o.id
    ),
    logged AS ({INSERT_CALLS_SQL})
    SELECT id FROM placed
    """  # noqa: S608 - composed of constants only
).bindparams(bindparam("calls", type_=JSONB))

WRITE_CALLS = text(INSERT_CALLS_SQL).bindparams(bindparam("calls", type_=JSONB))

# --- following orders -----------------------------------------------------------------------

_RECORD_ANOMALIES = """
    INSERT INTO order_anomalies (order_id, kind, detail)
    SELECT :id, kind, detail FROM unnest(CAST(:kinds AS text[]), CAST(:details AS text[])) AS a(kind, detail)
    ON CONFLICT (order_id, kind, detail) DO UPDATE
        SET times = order_anomalies.times + 1, last_seen_at = now()
"""
RECORD_ANOMALIES = text(_RECORD_ANOMALIES)

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
        WHERE id = :id AND state = 'placed' AND status NOT IN {_FINAL} AND refunded = 0
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

# Many orders' answers that only report progress (a known status that is not final, nothing to
# refund, no anomaly, nothing held) in one statement: the same columns and the same guard as
# APPLY_STATUS with a zero refund, so it moves no money. At volume almost every answer is one of
# these, and one statement per batch instead of one per order is what keeps the status sync cheap
# (a round trip costs the worker more CPU than the update costs Postgres). Anything else is
# applied by APPLY_STATUS, one order at a time.
APPLY_PROGRESS = text(
    f"""
    UPDATE orders AS o SET
        status = a.status,
        status_raw = a.raw,
        start_count = COALESCE(a.start_count, o.start_count),
        remains = COALESCE(a.remains, o.remains),
        upstream_charge = COALESCE(a.upstream_charge, o.upstream_charge),
        held_status = NULL,
        held_checks = 0,
        last_checked_at = now(),
        last_error = NULL,
        next_check_at = now() + make_interval(secs => a.delay),
        updated_at = now()
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), CAST(:raws AS varchar[]),
        CAST(:start_counts AS bigint[]), CAST(:remains AS bigint[]), CAST(:charges AS numeric[]),
        CAST(:delays AS float8[])
    ) AS a(id, status, raw, start_count, remains, upstream_charge, delay)
    WHERE o.id = a.id AND o.state = 'placed' AND o.status NOT IN {_FINAL} AND o.refunded = 0
      AND a.status NOT IN {_FINAL}
    RETURNING o.id
    """  # noqa: S608 - composed of constants only
)


def is_progress(update: StatusUpdate) -> bool:
    """An answer that only reports progress: a known status, not final, nothing held or refunded,
    nothing that made no sense. Only these may be applied in a batch (:data:`APPLY_PROGRESS`)."""
    return (
        update.status is not None
        and update.status not in FINAL_STATUSES
        and not update.ends
        and update.held is None
        and not update.anomalies
        and update.refund == 0
    )


# How far behind the status sync is: the oldest ``next_check_at`` of the live orders (a leased
# order's is its lease's end, so an order being asked about now is not counted as overdue).
STATUS_CHECK_LAG = text(
    f"""
    SELECT extract(epoch FROM now() - min(next_check_at))::float8 AS lag FROM orders
    WHERE state = 'placed' AND status NOT IN {_FINAL}
    """  # noqa: S608 - composed of constants only
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

# --- leases: what the worker follows (orders and refills alike) --------------------------------

Followed = Literal["orders", "refills"]
# Placed and not finished: what the status sync (orders) and the refill sync (refills) ask about.
_FOLLOWED: dict[str, tuple[str, str, str]] = {
    # table: (unfinished, order of the lease, the columns a poll needs)
    "orders": (
        f"status NOT IN {_FINAL}",
        # The most overdue first, straight from ix_orders_due: every order's wait is bounded,
        # whatever the backlog. No tie-breaker: with one on ``id``, orders made due by one
        # statement (the same ``next_check_at``) were sorted whole on every lease (150 ms at 100k).
        "next_check_at",
        "id, provider_id, upstream_order_id AS upstream_id, created_at, charge, quantity, held_checks",
    ),
    "refills": (
        f"status NOT IN {_FINAL_REFILL}",
        "next_check_at, id",
        "id, provider_id, upstream_refill_id AS upstream_id, created_at",
    ),
}


def _lease_statement(table: Followed) -> Any:
    unfinished, order_by, columns = _FOLLOWED[table]
    return text(
        f"""
        UPDATE {table} SET next_check_at = now() + make_interval(secs => :lease)
        WHERE id IN (
            SELECT id FROM {table}
            WHERE state = 'placed' AND {unfinished} AND next_check_at <= now()
            ORDER BY {order_by}
            LIMIT :limit FOR UPDATE SKIP LOCKED
        )
        RETURNING {columns}
        """  # noqa: S608 - composed of constants only
    )


_LEASES = {table: _lease_statement(table) for table in ("orders", "refills")}


def _stale_statement(table: Followed, since: str, sources: list[str]) -> Any:
    return text(
        f"""
        UPDATE {table} SET state = 'unknown', updated_at = now(), last_error = :error
        WHERE id IN (
            SELECT id FROM {table}
            WHERE state = ANY(CAST(:from_states AS varchar[]))
              AND {since} < now() - make_interval(secs => :stale)
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id
        """  # noqa: S608 - composed of constants only
    ).bindparams(from_states=sources)


# Sends left ``submitting`` by a process that died: they may have been sent, so unknown.
_STALE = {
    "orders": _stale_statement(
        "orders", "submitted_at", order_sources(OrderState.UNKNOWN, only=[OrderState.SUBMITTING])
    ),
    "refills": _stale_statement(
        "refills", "created_at", refill_sources(RefillState.UNKNOWN, only=[RefillState.SUBMITTING])
    ),
}
_STALE_ERROR = {
    "orders": "the gateway stopped while sending this order; check the upstream",
    "refills": "the gateway stopped while sending this refill request; check the upstream",
}


@dataclass(frozen=True, slots=True)
class Leased:
    """An order or refill leased for one poll: its id, provider and upstream id; for orders also
    what reading a status answer needs (``charge`` and ``quantity`` never change)."""

    id: int
    provider_id: int
    upstream_id: int
    created_at: datetime
    charge: Decimal = Decimal(0)
    quantity: int = 0
    held_checks: int = 0


# --- reads for the customer -------------------------------------------------------------------

CUSTOMER_ORDERS = text(
    """
    SELECT id, status, state, charge, refunded, start_count, remains, quantity, currency
    FROM orders WHERE customer_id = :customer_id AND id = ANY(:ids)
    """
)

CUSTOMER_REFILLS = text("SELECT id, status FROM refills WHERE customer_id = :customer_id AND id = ANY(:ids)")


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


class Applied(NamedTuple):
    applied: bool
    refunded: bool


# --- reads for the operator and the metrics ---------------------------------------------------

STUCK_ORDER_IDS = text(
    f"""
    SELECT id FROM orders
    WHERE state NOT IN ('failed', 'canceled') AND status NOT IN {_FINAL}
      AND created_at < now() - make_interval(secs => :older_than)
    ORDER BY created_at LIMIT :limit
    """  # noqa: S608 - composed of constants only
)

_ORDER_SNAPSHOT = text(
    f"""
    SELECT status, state, count(*) AS orders,
           count(*) FILTER (WHERE held_status IS NOT NULL) AS held,
           extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'queued')) AS queued_age,
           extract(epoch FROM now() - min(coalesce(last_checked_at, placed_at, created_at)) FILTER (
               WHERE state = 'placed' AND status NOT IN {_FINAL} AND held_status IS NULL)) AS stale_age
    FROM orders
    GROUP BY status, state
    """  # noqa: S608 - composed of constants only
)
# Anomalies are never deleted, so their count per kind only grows: exposed as a counter.
_ANOMALY_SNAPSHOT = text("SELECT kind, count(*) AS anomalies FROM order_anomalies GROUP BY kind")
# Both counts read partial indexes (pending, given up): cheap however long the delivered history.
_WEBHOOK_SNAPSHOT = text(
    """
    SELECT (SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL) AS pending,
           (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM webhook_outbox
            WHERE delivered_at IS NULL AND failed_at IS NULL)::float8 AS oldest,
           (SELECT count(*) FROM webhook_outbox WHERE failed_at IS NOT NULL) AS failed
    """
)
SNAPSHOT_STATEMENT_TIMEOUT_MS = 5000

# For the operational alerts (OrderStore.alert_facts): a count and the first few order ids each.
_UNKNOWN_FACTS = text(
    "SELECT count(*) AS orders, (array_agg(id ORDER BY id))[1:20] AS sample FROM orders WHERE state = 'unknown'"
)
_QUEUED_FACTS = text(
    """
    SELECT count(*) AS orders, (array_agg(id ORDER BY id))[1:20] AS sample,
           extract(epoch FROM now() - min(created_at)) AS oldest
    FROM orders WHERE state = 'queued' AND created_at < now() - make_interval(secs => :age)
    """
)
_RECENT_ANOMALIES = text(
    """
    SELECT kind, count(DISTINCT order_id) AS orders, (array_agg(DISTINCT order_id))[1:20] AS sample
    FROM order_anomalies WHERE last_seen_at >= now() - make_interval(secs => :since)
    GROUP BY kind
    """
)
_DRIFT_BY_PROVIDER = text(
    f"""
    SELECT o.provider_id, count(*) AS orders,
           coalesce(sum({expected_cost_sql("o")}), 0) AS expected,
           round(coalesce(sum({reported_cost_sql("o", "p")}), 0), 5) AS reported
    FROM orders o JOIN providers p ON p.id = o.provider_id
    WHERE o.created_at >= now() - make_interval(secs => :since) AND o.upstream_charge IS NOT NULL
      AND o.state = 'placed'
    GROUP BY o.provider_id
    """  # noqa: S608 - composed of constants only
)


@dataclass(frozen=True, slots=True)
class ProviderDrift:
    """A provider's orders with a reported charge, what they should have cost, what it billed."""

    provider_id: int
    orders: int
    expected: Decimal
    reported: Decimal


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What the operational alerts are computed from (see :meth:`OrderStore.alert_facts`)."""

    unknown: int
    unknown_sample: list[int]
    queued_old: int
    queued_sample: list[int]
    oldest_queued_seconds: float
    # Anomaly kind -> (orders with it seen in the window, the first few order ids).
    anomalies: dict[str, tuple[int, list[int]]]
    drift: list[ProviderDrift]


@dataclass(frozen=True, slots=True)
class OrderFilter:
    customer_id: int | None = None
    status: str | None = None
    state: str | None = None
    provider_id: int | None = None
    service_id: int | None = None
    limit: int = 100
    before: int | None = None
    # True: only orders whose final status is held for a refund decision; False: none of them.
    held: bool | None = None
    # True: only orders with anomalies; False: only orders without.
    anomalies: bool | None = None


@dataclass(frozen=True, slots=True)
class RefillFilter:
    state: str | None = None
    status: str | None = None
    customer_id: int | None = None
    order_id: int | None = None
    provider_id: int | None = None
    limit: int = 100
    before: int | None = None


@dataclass(frozen=True, slots=True)
class OrderHistory:
    ledger: list[LedgerEntry]
    calls: list[UpstreamCall]
    anomalies: list[OrderAnomaly]


class OrderTx:
    """The order store inside one unit of work (a connection in a transaction, or a session)."""

    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    # --- the life of an order: moves between states --------------------------------------------

    async def mark_unknown(self, order_id: int, error: str, *, only: Sequence[OrderState] | None = None) -> bool:
        """The outcome of a send is unknown (it may have arrived): never re-sent, never refunded."""
        result = await self.conn.execute(
            text(
                "UPDATE orders SET state = 'unknown', last_error = :error, updated_at = now()"
                " WHERE id = :id AND state = ANY(:from_states) RETURNING id"
            ),
            {"id": order_id, "error": error[:1000], "from_states": order_sources(OrderState.UNKNOWN, only=only)},
        )
        return result.first() is not None

    async def requeue(self, order_id: int, error: str, delay_seconds: float) -> bool:
        """Definitely not placed: back to ``queued``, sent again after ``delay_seconds``."""
        result = await self.conn.execute(
            text(
                """
                UPDATE orders SET state = 'queued', last_error = :error, updated_at = now(),
                                  next_attempt_at = now() + make_interval(secs => :delay)
                WHERE id = :id AND state = ANY(:from_states)
                RETURNING id
                """
            ),
            {
                "id": order_id,
                "error": error[:1000],
                "delay": delay_seconds,
                "from_states": order_sources(OrderState.QUEUED),
            },
        )
        return result.first() is not None

    async def end_unsent(
        self,
        order_id: int,
        target: Literal[OrderState.FAILED, OrderState.CANCELED],
        error: str,
        *,
        only: Sequence[OrderState] | None = None,
    ) -> Decimal | None:
        """End an order that never reached the upstream (``failed`` or ``canceled``), status
        Canceled, all of it undelivered. Returns its charge (to refund), or None when it was not
        in a state that may end so."""
        result = await self.conn.execute(
            text(
                """
                UPDATE orders SET state = :state, status = 'Canceled', last_error = :error, completed_at = now(),
                                  remains = quantity, updated_at = now()
                WHERE id = :id AND state = ANY(:from_states)
                RETURNING charge
                """
            ),
            {
                "id": order_id,
                "state": str(target),
                "error": error[:1000],
                "from_states": order_sources(target, only=only),
            },
        )
        row = result.first()
        return None if row is None else Decimal(row.charge)

    async def resolve_placed(self, order_id: int, upstream_order_id: int) -> bool:
        """The operator found an unknown order upstream: placed, checked at the next sync."""
        result = await self.conn.execute(
            text(
                """
                UPDATE orders SET state = 'placed', upstream_order_id = :upstream, placed_at = now(),
                                  next_check_at = now(), last_error = NULL, updated_at = now()
                WHERE id = :id AND state = ANY(:from_states) RETURNING id
                """
            ),
            {
                "id": order_id,
                "upstream": upstream_order_id,
                "from_states": order_sources(OrderState.PLACED, only=[OrderState.UNKNOWN]),
            },
        )
        return result.first() is not None

    async def switch_route(
        self,
        order: OrderToSend,
        *,
        provider_id: int,
        upstream_service_id: int,
        priority: int,
        cost: Decimal,
        error: str | None,
    ) -> bool:
        """Move an order being sent to another route of its service (provider, upstream service,
        cost), noting in ``routes_tried`` why the route it was on did not take it (``error``;
        None: it was not tried, the order only starts elsewhere). Only while the order is still
        ``submitting`` on the route the caller knows; committed before anything is sent there,
        so a crash can only leave the order pointing where it may have gone."""
        result = await self.conn.execute(
            text(
                f"""
                UPDATE orders SET provider_id = :provider_id, upstream_service_id = :upstream_service_id,
                                  route_priority = :priority, cost = :cost,
                                  last_error = COALESCE(CAST(:error AS text), last_error),
                                  routes_tried = CASE
                                      WHEN CAST(:error AS text) IS NULL
                                           OR jsonb_array_length(routes_tried) >= {MAX_ROUTES_TRIED}
                                      THEN routes_tried
                                      ELSE routes_tried || jsonb_build_array(jsonb_build_object(
                                          'priority', route_priority, 'provider_id', provider_id,
                                          'upstream_service_id', upstream_service_id,
                                          'error', CAST(:error AS text), 'at', now()))
                                  END,
                                  updated_at = now()
                WHERE id = :id AND state = 'submitting' AND provider_id = :from_provider
                  AND upstream_service_id = :from_service
                RETURNING id
                """  # noqa: S608 - composed of constants only
            ),
            {
                "id": order.id,
                "from_provider": order.provider_id,
                "from_service": order.upstream_service_id,
                "provider_id": provider_id,
                "upstream_service_id": upstream_service_id,
                "priority": priority,
                "cost": cost,
                "error": None if error is None else error[:500],
            },
        )
        return result.first() is not None

    async def make_queued_due(self, order_id: int) -> bool:
        """A queued order becomes due for dispatch now."""
        result = await self.conn.execute(
            text("UPDATE orders SET next_attempt_at = now() WHERE id = :id AND state = 'queued' RETURNING id"),
            {"id": order_id},
        )
        return result.first() is not None

    async def settle(self, order_id: int, status: OrderStatus, remains: int | None) -> bool:
        """End a placed, unfinished order with the operator's final status (the refund is the
        caller's next statement, in this unit of work)."""
        ended = await self.conn.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.state == OrderState.PLACED,
                Order.status.not_in(FINAL_STATUSES),
                Order.refunded == 0,
            )
            .values(
                status=str(status),
                remains=remains if remains is not None else Order.remains,
                held_status=None,
                held_checks=0,
                next_check_at=None,
                completed_at=func.now(),
                last_error=None,
                updated_at=func.now(),
            )
            .returning(Order.id)
        )
        return ended.first() is not None

    async def refund(self, order_id: int, amount: Decimal, note: str) -> Decimal | None:
        """Refund ``amount`` of the order's charge, once (the ledger's statement)."""
        return await refund_order(self.conn, order_id, amount, note[:500])

    async def cancel_requested(self, order_ids: Sequence[int]) -> None:
        """The upstream accepted a cancel: look at these orders soon (the refund follows their
        final status)."""
        await self.conn.execute(
            text("UPDATE orders SET cancel_requested_at = now(), next_check_at = now() WHERE id = ANY(:ids)"),
            {"ids": list(order_ids)},
        )

    # --- evidence ---------------------------------------------------------------------------

    async def write_calls(self, calls: list[dict[str, Any]]) -> None:
        """Write upstream attempts collected during a send."""
        if calls:
            await self.conn.execute(WRITE_CALLS, {"calls": calls})

    async def record_anomalies(self, order_id: int, anomalies: Sequence[Anomaly]) -> None:
        """Keep what made no sense about an order (the same anomaly again only bumps its count)."""
        if anomalies:
            await self.conn.execute(
                RECORD_ANOMALIES,
                {"id": order_id, "kinds": [a.kind for a in anomalies], "details": [a.detail[:200] for a in anomalies]},
            )

    # --- reads ------------------------------------------------------------------------------

    async def order_with_upstream_id(self, provider_id: int, upstream_order_id: int) -> int | None:
        """The gateway order that already carries this upstream order id, if any."""
        found = await self.conn.scalar(
            text("SELECT id FROM orders WHERE provider_id = :p AND upstream_order_id = :u"),
            {"p": provider_id, "u": upstream_order_id},
        )
        return None if found is None else int(found)

    async def state_of(self, order_id: int) -> tuple[OrderState, int | None] | None:
        """The order's dispatch state and upstream order id."""
        row = (
            await self.conn.execute(
                text("SELECT state, upstream_order_id FROM orders WHERE id = :id"), {"id": order_id}
            )
        ).first()
        return None if row is None else (OrderState(row.state), row.upstream_order_id)

    async def expired_queued_ids(self, max_age_seconds: float, limit: int) -> list[int]:
        rows = await self.conn.execute(
            text(
                "SELECT id FROM orders WHERE state = 'queued' AND created_at < now() - make_interval(secs => :age)"
                " ORDER BY id LIMIT :limit"
            ),
            {"age": max_age_seconds, "limit": limit},
        )
        return [row.id for row in rows]

    async def customer_orders_for(
        self, customer_id: int, order_ids: Sequence[int], *, with_flag: str
    ) -> dict[int, Any]:
        """The customer's own orders among ``order_ids`` with their service's ``refill`` or
        ``cancel`` flag (a foreign id is simply absent)."""
        flag = {"refill": "s.refill", "cancel": "s.cancel"}[with_flag]
        rows = await self.conn.execute(
            text(
                f"""
                SELECT o.id, o.provider_id, o.upstream_order_id, o.status, o.state, {flag} AS allowed
                FROM orders o JOIN services s ON s.id = o.service_id
                WHERE o.customer_id = :customer_id AND o.id = ANY(:ids)
                """  # noqa: S608 - the column is one of two constants
            ),
            {"customer_id": customer_id, "ids": list(order_ids)},
        )
        return {row.id: row for row in rows}

    # --- the operator's reads ---------------------------------------------------------------

    async def list_orders(self, flt: OrderFilter) -> list[Order]:
        query = select(Order).order_by(Order.id.desc()).limit(flt.limit)
        for column, value in (
            (Order.customer_id, flt.customer_id),
            (Order.status, flt.status),
            (Order.state, flt.state),
            (Order.provider_id, flt.provider_id),
            (Order.service_id, flt.service_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.before is not None:
            query = query.where(Order.id < flt.before)
        if flt.held is not None:
            query = query.where(Order.held_status.is_not(None) if flt.held else Order.held_status.is_(None))
        if flt.anomalies is not None:
            has = exists().where(OrderAnomaly.order_id == Order.id)
            query = query.where(has if flt.anomalies else ~has)
        return list((await self._session().scalars(query)).all())

    async def stuck_orders(self, older_than_seconds: int, limit: int) -> list[Order]:
        """Orders not finished although created more than ``older_than_seconds`` ago, oldest first."""
        session = self._session()
        ids = [
            row.id for row in await session.execute(STUCK_ORDER_IDS, {"older_than": older_than_seconds, "limit": limit})
        ]
        if not ids:
            return []
        orders = {o.id: o for o in (await session.scalars(select(Order).where(Order.id.in_(ids)))).all()}
        return [orders[i] for i in ids]

    async def get_order(self, order_id: int) -> Order | None:
        return await self._session().get(Order, order_id)

    async def refresh(self, entity: Order | Refill) -> None:
        await self._session().refresh(entity)

    async def anomaly_counts(self, order_ids: list[int]) -> dict[int, int]:
        """How many distinct anomalies each of these orders has (absent: none)."""
        if not order_ids:
            return {}
        rows = await self.conn.execute(
            select(OrderAnomaly.order_id, func.count())
            .where(OrderAnomaly.order_id.in_(order_ids))
            .group_by(OrderAnomaly.order_id)
        )
        return {int(row[0]): int(row[1]) for row in rows}

    async def history(self, order_id: int) -> OrderHistory:
        """The order's ledger entries, upstream calls (by when they started) and anomalies."""
        session = self._session()
        entries = (
            await session.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id))
        ).all()
        calls = (
            await session.scalars(
                select(UpstreamCall)
                .where(UpstreamCall.order_id == order_id)
                .order_by(UpstreamCall.created_at, UpstreamCall.id)
            )
        ).all()
        anomalies = (
            await session.scalars(
                select(OrderAnomaly).where(OrderAnomaly.order_id == order_id).order_by(OrderAnomaly.first_seen_at)
            )
        ).all()
        return OrderHistory(list(entries), list(calls), list(anomalies))

    # --- refills ----------------------------------------------------------------------------

    async def create_refills(self, order_ids: Sequence[int]) -> dict[int, int]:
        """A ``submitting`` refill per order; order id -> refill id."""
        rows = await self.conn.execute(
            text(
                """
                INSERT INTO refills (order_id, customer_id, provider_id, state)
                SELECT id, customer_id, provider_id, 'submitting' FROM orders WHERE id = ANY(:ids)
                RETURNING id, order_id
                """
            ),
            {"ids": list(order_ids)},
        )
        return {row.order_id: row.id for row in rows}

    async def refill_placed(self, refill_id: int, upstream_refill_id: int, check_in_seconds: float) -> bool:
        """The upstream took the refill request (only while it is being sent)."""
        result = await self.conn.execute(
            text(
                """
                UPDATE refills SET state = 'placed', upstream_refill_id = :upstream, updated_at = now(),
                                   next_check_at = now() + make_interval(secs => :delay)
                WHERE id = :id AND state = ANY(:from_states)
                RETURNING id
                """
            ),
            {
                "id": refill_id,
                "upstream": upstream_refill_id,
                "delay": check_in_seconds,
                "from_states": refill_sources(RefillState.PLACED, only=[RefillState.SUBMITTING]),
            },
        )
        return result.first() is not None

    async def refill_ended(
        self,
        refill_id: int,
        target: Literal[RefillState.UNKNOWN, RefillState.FAILED],
        error: str,
        *,
        rejected: bool,
        only: Sequence[RefillState],
    ) -> bool:
        """A refill request's end: unknown (may have arrived) or failed (``rejected``: the
        customer sees Rejected)."""
        result = await self.conn.execute(
            text(
                """
                UPDATE refills SET state = :state, last_error = :error, updated_at = now(),
                                   status = CASE WHEN CAST(:rejected AS boolean) THEN 'Rejected' ELSE status END
                WHERE id = :id AND state = ANY(:from_states)
                RETURNING id
                """
            ),
            {
                "id": refill_id,
                "state": str(target),
                "error": error[:1000],
                "rejected": rejected,
                "from_states": refill_sources(target, only=only),
            },
        )
        return result.first() is not None

    async def resolve_refill_placed(self, refill_id: int, upstream_refill_id: int) -> bool:
        """The operator found an unknown refill upstream: placed, checked at the next refill sync."""
        result = await self.conn.execute(
            text(
                """
                UPDATE refills SET state = 'placed', upstream_refill_id = :upstream, last_error = NULL,
                                   next_check_at = now(), updated_at = now()
                WHERE id = :id AND state = ANY(:from_states)
                RETURNING id
                """
            ),
            {
                "id": refill_id,
                "upstream": upstream_refill_id,
                "from_states": refill_sources(RefillState.PLACED, only=[RefillState.UNKNOWN]),
            },
        )
        return result.first() is not None

    async def apply_refill_answer(self, refill_id: int, status: RefillStatus | None, raw: str, delay: float) -> None:
        await self.conn.execute(
            text(
                f"""
                UPDATE refills SET status = COALESCE(CAST(:status AS varchar), status), status_raw = :raw,
                                   last_error = NULL, last_checked_at = now(), updated_at = now(),
                                   next_check_at = now() + make_interval(secs => :delay)
                WHERE id = :id AND state = 'placed' AND status NOT IN {_FINAL_REFILL}
                """  # noqa: S608 - composed of constants only
            ),
            {"id": refill_id, "status": None if status is None else str(status), "raw": raw[:200], "delay": delay},
        )

    async def note_refill_problem(self, refill_id: int, error: str, delay: float) -> None:
        await self.conn.execute(
            text(
                """
                UPDATE refills SET last_error = :error, last_checked_at = now(),
                                   next_check_at = now() + make_interval(secs => :delay)
                WHERE id = :id AND state = 'placed'
                """
            ),
            {"id": refill_id, "error": error[:1000], "delay": delay},
        )

    async def list_refills(self, flt: RefillFilter) -> list[Refill]:
        """Refills matching the filter, newest first; ``before`` pages by id."""
        query = select(Refill).order_by(Refill.id.desc()).limit(flt.limit)
        for column, value in (
            (Refill.state, flt.state),
            (Refill.status, flt.status),
            (Refill.customer_id, flt.customer_id),
            (Refill.order_id, flt.order_id),
            (Refill.provider_id, flt.provider_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.before is not None:
            query = query.where(Refill.id < flt.before)
        return list((await self._session().scalars(query)).all())

    async def get_refill(self, refill_id: int) -> Refill | None:
        return await self._session().get(Refill, refill_id)

    async def refill_calls(self, refill_id: int) -> list[UpstreamCall]:
        """The upstream calls made about this refill alone, by when they started."""
        calls = await self._session().scalars(
            select(UpstreamCall)
            .where(UpstreamCall.refill_id == refill_id)
            .order_by(UpstreamCall.created_at, UpstreamCall.id)
        )
        return list(calls.all())

    def _session(self) -> AsyncSession:
        if not isinstance(self.conn, AsyncSession):
            raise TypeError("the operator's reads run in the request's session")
        return self.conn


class NotCharged(enum.Enum):
    """Why a charge changed nothing."""

    FUNDS = "funds"
    DAILY_LIMIT = "daily_limit"
    # The account is not the one the caller read (disabled, another key, allowlist or discount),
    # or the price book is not the current one. Nothing was charged; read the account again and
    # price again.
    ACCOUNT_CHANGED = "account_changed"


class _Placed(NamedTuple):
    order_id: int
    upstream_order_id: int
    first_check_seconds: float
    calls: list[dict[str, Any]]


# How long recording placed orders may take before the callers are told it failed: the outcome
# is then held and recorded by a retry (dispatch.record_pending, which first looks whether the
# statement did commit), and the customer's answer does not wait on a stuck statement.
RECORD_TIMEOUT_SECONDS = 5.0

_PLACED_FROM = order_sources(OrderState.PLACED, only=[OrderState.SUBMITTING, OrderState.UNKNOWN])


class OrderStore:
    """The order store of one process: single statements on the hot path, claims and leases, and
    units of work (:meth:`begin`, :meth:`bound`)."""

    def __init__(self, engine: AsyncEngine, hot: HotPathPool) -> None:
        self._engine = engine
        self._hot = hot
        self._placed: GroupCommit[_Placed, bool] = GroupCommit(self._mark_one_placed, self._mark_many_placed)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[OrderTx]:
        """One transaction: commits when the block ends normally, rolls back on any error."""
        async with self._engine.begin() as conn:
            yield OrderTx(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[OrderTx]:
        """A connection for reads (no transaction kept open across anything else)."""
        async with self._engine.connect() as conn:
            yield OrderTx(conn)

    @staticmethod
    def bound(session: AsyncSession) -> OrderTx:
        """The store in the caller's unit of work (the admin request's session)."""
        return OrderTx(session)

    # --- placing ----------------------------------------------------------------------------

    async def charge_and_create(
        self, values: dict[str, Any], *, guard_link: bool, idempotency: tuple[str, bytes] | None = None
    ) -> tuple[int, datetime] | None:
        """Charge the customer and create the order ``submitting``, in one statement (no row:
        not enough funds, or the daily spend limit). With ``guard_link`` the check for an active
        order on the same link and the charge share a transaction under a lock of that customer,
        service and link (so concurrent adds on one link cannot both pass); an active order raises
        :class:`ActiveOrderOnLink`. With
        ``idempotency`` (key, request hash) the key is stored with the order by the same
        statement; a key another call already stored raises :class:`IdempotencyKeyTaken` (and
        nothing was charged)."""
        statement = CHARGE_AND_CREATE
        if idempotency is not None:
            statement = CHARGE_AND_CREATE_KEYED
            values = {**values, "idempotency_key": idempotency[0], "request_hash": idempotency[1]}
        try:
            if not guard_link:
                # One statement, atomic on its own: no transaction around it.
                record = await self._hot.fetchrow(statement, **values)
                return None if record is None else (record["id"], record["created_at"])
            async with self._engine.begin() as conn:
                lock_key = f"link:{values['customer_id']}:{values['service_id']}:{values['link']}"
                await conn.execute(LINK_LOCK, {"lock_key": lock_key})
                active = await conn.execute(
                    ACTIVE_ORDER_ON_LINK,
                    {"service_id": values["service_id"], "link": values["link"], "customer_id": values["customer_id"]},
                )
                if active.first() is not None:
                    raise ActiveOrderOnLink
                created = (await conn.execute(statement, values)).first()
                return None if created is None else (created.id, created.created_at)
        except DBAPIError as exc:
            if violated_constraint(exc) == IDEMPOTENCY_KEY_CONSTRAINT:
                raise IdempotencyKeyTaken from None
            raise

    async def why_not_charged(self, values: dict[str, Any]) -> NotCharged:
        """After a charge of ``values`` (as given to :meth:`charge_and_create`) changed nothing: why."""
        row = await self._hot.fetchrow(
            WHY_NOT_CHARGED,
            customer_id=values["customer_id"],
            charge=values["charge"],
            key_hash=values["key_hash"],
            discount=values["discount"],
            allowed_ips=values["allowed_ips"],
        )
        if row is None or not row["account_unchanged"] or row["revision"] != values["revision"]:
            return NotCharged.ACCOUNT_CHANGED
        return NotCharged.DAILY_LIMIT if row["over_limit"] else NotCharged.FUNDS

    async def claim_queued(self, limit: int) -> list[OrderToSend]:
        """Take up to ``limit`` due queued orders into ``submitting`` (committed before any send)."""
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                text(
                    """
                    UPDATE orders SET state = 'submitting', submitted_at = now(), attempts = attempts + 1,
                                      updated_at = now()
                    WHERE id IN (
                        SELECT id FROM orders
                        WHERE state = ANY(:from_states) AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                        ORDER BY next_attempt_at NULLS FIRST, id
                        LIMIT :limit FOR UPDATE SKIP LOCKED
                    )
                    RETURNING id, provider_id, upstream_service_id, params, created_at, attempts, request_id,
                              service_id, route_priority, quantity
                    """
                ),
                {"limit": limit, "from_states": order_sources(OrderState.SUBMITTING)},
            )
            return [
                OrderToSend(
                    id=row.id,
                    provider_id=row.provider_id,
                    upstream_service_id=row.upstream_service_id,
                    params=row.params,
                    created_at=row.created_at,
                    attempts=row.attempts,
                    request_id=row.request_id,
                    service_id=row.service_id,
                    route_priority=row.route_priority,
                    quantity=row.quantity,
                )
                for row in rows
            ]

    async def mark_placed(
        self, order_id: int, upstream_order_id: int, first_check_seconds: float, calls: list[dict[str, Any]]
    ) -> bool:
        """Record the upstream's order id and the attempts that got it, committed before this
        returns (hot path: one statement, shared with the orders placed meanwhile); False when
        the order could not move to placed any more. Raises on a second order with the same
        upstream id (the unique index)."""
        return await self._placed.write(_Placed(order_id, upstream_order_id, first_check_seconds, calls))

    async def _mark_one_placed(self, placed: _Placed) -> bool:
        row = await self._hot.fetchrow(
            MARK_PLACED,
            statement_timeout=RECORD_TIMEOUT_SECONDS,
            id=placed.order_id,
            upstream=placed.upstream_order_id,
            delay=placed.first_check_seconds,
            calls=placed.calls,
            from_states=_PLACED_FROM,
        )
        return row is not None

    async def _mark_many_placed(self, batch: Sequence[_Placed]) -> list[bool]:
        rows = await self._hot.fetch(
            MARK_PLACED_MANY,
            statement_timeout=RECORD_TIMEOUT_SECONDS,
            ids=[p.order_id for p in batch],
            upstreams=[p.upstream_order_id for p in batch],
            delays=[p.first_check_seconds for p in batch],
            calls=[call for p in batch for call in p.calls],
            from_states=_PLACED_FROM,
        )
        applied = {row["id"] for row in rows}
        return [p.order_id in applied for p in batch]

    # --- following ---------------------------------------------------------------------------

    async def lease(self, table: Followed, limit: int, lease_seconds: float) -> list[Leased]:
        """Lease up to ``limit`` placed, unfinished orders or refills due for a check (their
        ``next_check_at`` pushed ahead, so no other worker takes them meanwhile)."""
        async with self._engine.begin() as conn:
            rows = await conn.execute(_LEASES[table], {"limit": limit, "lease": lease_seconds})
            return [Leased(**row._mapping) for row in rows]

    async def apply_status(self, order_id: int, update: StatusUpdate, next_check_seconds: float) -> Applied:
        """Apply one read status answer to one order (see :data:`APPLY_STATUS`)."""
        row = await self._hot.fetchrow(
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

    async def apply_progress(self, updates: Sequence[tuple[int, StatusUpdate, float]]) -> set[int]:
        """Apply many answers that only report progress (:func:`is_progress`) in one statement
        (:data:`APPLY_PROGRESS`); each item is (order id, the read answer, seconds to the next
        check). Returns the ids it changed (the others had moved on: same guard as one by one)."""
        if not updates:
            return set()
        if not all(is_progress(update) for _, update, _ in updates):
            raise ValueError("only progress answers are applied in a batch")
        # The ids go in sorted, but the join decides the order the rows are locked in (a hash
        # join locks them in the table's order): a batch can still lose a deadlock to another
        # statement on many orders, and is then applied one by one by the caller.
        updates = sorted(updates, key=lambda item: item[0])
        rows = await self._hot.fetch(
            APPLY_PROGRESS,
            ids=[order_id for order_id, _, _ in updates],
            statuses=[update.status for _, update, _ in updates],
            raws=[update.raw_status[:200] for _, update, _ in updates],
            start_counts=[update.start_count for _, update, _ in updates],
            remains=[update.remains for _, update, _ in updates],
            charges=[update.upstream_charge for _, update, _ in updates],
            delays=[float(delay) for _, _, delay in updates],
        )
        return {int(row["id"]) for row in rows}

    async def note_check_problem(
        self, order_id: int, error: str, next_check_seconds: float, anomalies: Sequence[Anomaly] = ()
    ) -> None:
        """The upstream answered nothing usable for this order (a per-id error, or an answer the
        database refused): say so on the order, keep the anomaly, and ask again later."""
        await self._hot.fetchrow(
            NOTE_CHECK_PROBLEM,
            id=order_id,
            error=error[:1000],
            delay=next_check_seconds,
            kinds=[a.kind for a in anomalies],
            details=[a.detail for a in anomalies],
        )

    async def stale_to_unknown(self, table: Followed, stale_seconds: float) -> list[int]:
        """Orders or refills a dead process left ``submitting``: they may have been sent, so unknown."""
        async with self._engine.begin() as conn:
            rows = await conn.execute(_STALE[table], {"stale": stale_seconds, "error": _STALE_ERROR[table]})
            return [row.id for row in rows]

    # --- reads for customers and metrics ----------------------------------------------------

    async def customer_orders(self, customer_id: int, ids: Sequence[int]) -> dict[int, OrderStatusRow]:
        """The caller's own orders among ``ids`` (a foreign id is simply absent)."""
        rows = await self._hot.fetch(CUSTOMER_ORDERS, customer_id=customer_id, ids=list(ids))
        return {row[0]: OrderStatusRow(*row) for row in rows}

    async def customer_refills(self, customer_id: int, ids: Sequence[int]) -> dict[int, str]:
        """The caller's own refills' statuses (a foreign or unknown id is simply absent)."""
        rows = await self._hot.fetch(CUSTOMER_REFILLS, customer_id=customer_id, ids=list(ids))
        return {row["id"]: row["status"] for row in rows}

    async def snapshot(self) -> OrderSnapshot:
        """Order counts by status and state, the age of the oldest queued order, how long ago the
        stalest active (placed, not final, not held) order was last checked upstream, how many
        final statuses wait for a refund decision, the anomalies recorded per kind, and how far
        the status sync is behind (:data:`STATUS_CHECK_LAG`)."""
        async with self._engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL statement_timeout = {SNAPSHOT_STATEMENT_TIMEOUT_MS}"))
            rows = (await conn.execute(_ORDER_SNAPSHOT)).all()
            anomalies = {str(r.kind): int(r.anomalies) for r in await conn.execute(_ANOMALY_SNAPSHOT)}
            hooks = (await conn.execute(_WEBHOOK_SNAPSHOT)).one()
            lag = (await conn.execute(STATUS_CHECK_LAG)).scalar()
        return OrderSnapshot(
            counts={(str(r.status), str(r.state)): int(r.orders) for r in rows},
            oldest_queued_seconds=max((float(r.queued_age) for r in rows if r.queued_age is not None), default=0.0),
            stalest_active_seconds=max((float(r.stale_age) for r in rows if r.stale_age is not None), default=0.0),
            held=sum(int(r.held) for r in rows),
            anomalies=anomalies,
            webhooks_pending=int(hooks.pending),
            webhooks_oldest_pending_seconds=float(hooks.oldest),
            webhooks_failed=int(hooks.failed),
            status_check_lag_seconds=max(0.0, float(lag)) if lag is not None else 0.0,
        )

    async def alert_facts(self, queued_older_than_seconds: float, since_seconds: float) -> AlertFacts:
        """What the operational alerts look at (gateway/orders/watch.py), in one short read: orders
        ``unknown``, orders queued longer than ``queued_older_than_seconds``, anomalies seen in the
        last ``since_seconds`` per kind, and per provider the expected and reported cost
        (gateway/orders/drift.py) of the orders created in that window that the upstream reported a
        charge for."""
        async with self._engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL statement_timeout = {SNAPSHOT_STATEMENT_TIMEOUT_MS}"))
            unknown = (await conn.execute(_UNKNOWN_FACTS)).one()
            queued = (await conn.execute(_QUEUED_FACTS, {"age": queued_older_than_seconds})).one()
            anomalies = {
                str(r.kind): (int(r.orders), [int(i) for i in r.sample])
                for r in await conn.execute(_RECENT_ANOMALIES, {"since": since_seconds})
            }
            drift = [
                ProviderDrift(int(r.provider_id), int(r.orders), Decimal(r.expected), Decimal(r.reported))
                for r in await conn.execute(_DRIFT_BY_PROVIDER, {"since": since_seconds})
            ]
        return AlertFacts(
            unknown=int(unknown.orders),
            unknown_sample=[int(i) for i in unknown.sample or []],
            queued_old=int(queued.orders),
            queued_sample=[int(i) for i in queued.sample or []],
            oldest_queued_seconds=float(queued.oldest or 0.0),
            anomalies=anomalies,
            drift=drift,
        )


class ActiveOrderOnLink(Exception):
    """The customer has an active order on this link and service (duplicate-link guard)."""


class IdempotencyKeyTaken(Exception):
    """Another call stored this idempotency key first (with its order): nothing was charged."""
