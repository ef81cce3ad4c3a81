"""What the operator does with orders: list and inspect them, resolve unknown ones, settle the
ones whose final status waits for a refund decision, retry queued ones."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.ledger.ledger import refund_order
from gateway.models import (
    ORDER_STATES,
    ORDER_STATUSES,
    TERMINAL_STATUSES,
    LedgerEntry,
    Order,
    OrderAnomaly,
    UpstreamCall,
)
from gateway.orders import queries
from gateway.orders.answers import OrderFacts, settlement


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


async def list_orders(session: AsyncSession, flt: OrderFilter) -> list[Order]:
    if flt.status is not None and flt.status not in ORDER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ORDER_STATUSES)}", field="status")
    if flt.state is not None and flt.state not in ORDER_STATES:
        raise InvalidInput(f"state must be one of {', '.join(ORDER_STATES)}", field="state")
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
    return list((await session.scalars(query)).all())


async def anomaly_counts(session: AsyncSession, order_ids: list[int]) -> dict[int, int]:
    """How many distinct anomalies each of these orders has (absent: none)."""
    if not order_ids:
        return {}
    rows = await session.execute(
        select(OrderAnomaly.order_id, func.count())
        .where(OrderAnomaly.order_id.in_(order_ids))
        .group_by(OrderAnomaly.order_id)
    )
    return {int(row[0]): int(row[1]) for row in rows}


async def stuck_orders(session: AsyncSession, older_than_seconds: int, limit: int) -> list[Order]:
    """Orders not finished although created more than ``older_than_seconds`` ago, oldest first."""
    ids = [
        row.id
        for row in await session.execute(queries.STUCK_ORDER_IDS, {"older_than": older_than_seconds, "limit": limit})
    ]
    if not ids:
        return []
    orders = {o.id: o for o in (await session.scalars(select(Order).where(Order.id.in_(ids)))).all()}
    return [orders[i] for i in ids]


async def require_order(session: AsyncSession, order_id: int) -> Order:
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


@dataclass(frozen=True, slots=True)
class OrderHistory:
    ledger: list[LedgerEntry]
    calls: list[UpstreamCall]
    anomalies: list[OrderAnomaly]


async def order_history(session: AsyncSession, order_id: int) -> OrderHistory:
    """The order's ledger entries, upstream calls (by when they started) and anomalies."""
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


async def resolve_unknown(session: AsyncSession, order_id: int, outcome: str, upstream_order_id: int | None) -> Order:
    """Settle an order whose upstream outcome is unknown: ``placed`` (with the upstream's id; the
    status sync takes over) or ``failed`` (refunded in full)."""
    order = await require_order(session, order_id)
    if order.state != "unknown":
        raise Conflict(f"order {order_id} is {order.state}, not unknown", field="outcome")
    if outcome == "placed":
        if upstream_order_id is None:
            raise InvalidInput("upstream_order_id is required to resolve as placed", field="upstream_order_id")
        if not 0 < upstream_order_id < 2**63:
            raise InvalidInput("upstream_order_id must be a positive id", field="upstream_order_id")
        other = await queries.order_with_upstream_id(session, order.provider_id, upstream_order_id)
        if other is not None:
            # One upstream order, one gateway order: otherwise one upstream answer moves both.
            raise Conflict(
                f"upstream order {upstream_order_id} already belongs to order {other}", field="upstream_order_id"
            )
        if not await queries.mark_unknown_placed(session, order_id, upstream_order_id):
            raise Conflict(f"order {order_id} changed meanwhile", field="outcome")
    elif outcome == "failed":
        if upstream_order_id is not None:
            raise InvalidInput("upstream_order_id only goes with outcome placed", field="upstream_order_id")
        charge = await queries.mark_ended_unsent(
            session, order_id, ("unknown",), "failed", "resolved as failed by the operator"
        )
        if charge is None:
            raise Conflict(f"order {order_id} changed meanwhile", field="outcome")
        await refund_order(session, order_id, charge, "resolved as failed by the operator")
    else:
        raise InvalidInput("outcome must be placed or failed", field="outcome")
    await session.refresh(order)
    return order


async def settle(
    session: AsyncSession, order_id: int, remains: int | None, refund: Decimal | None, note: str | None
) -> Order:
    """End a placed, unfinished order by the operator's decision: from the units not delivered
    (``remains``) or the amount to give back (``refund``), exactly one. For orders whose final
    status is held for lack of a usable remains, or that the upstream no longer answers for."""
    order = await require_order(session, order_id)
    if order.state != "placed" or order.status in TERMINAL_STATUSES:
        raise Conflict(
            f"order {order_id} is {order.state} and {order.status}: only a placed, unfinished order can be settled"
        )
    facts = OrderFacts(order.id, order.charge, order.quantity)
    try:
        status, amount = settlement(facts, remains, refund)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="remains" if remains is not None else "refund") from None
    ended = await session.execute(
        update(Order)
        .where(
            Order.id == order_id, Order.state == "placed", Order.status.not_in(TERMINAL_STATUSES), Order.refunded == 0
        )
        .values(
            status=status,
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
    if ended.first() is None:
        raise Conflict(f"order {order_id} changed meanwhile")
    reason = f"settled by the operator: {note}" if note else "settled by the operator"
    await refund_order(session, order_id, amount, reason[:500])
    await session.refresh(order)
    return order


async def retry_now(session: AsyncSession, order_id: int) -> Order:
    """Make a queued order due for dispatch right away."""
    order = await require_order(session, order_id)
    if not await queries.make_queued_due(session, order_id):
        raise Conflict(f"order {order_id} is {order.state}, not queued")
    await session.refresh(order)
    return order


def order_fields(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "service_id": order.service_id,
        "provider_id": order.provider_id,
        "upstream_service_id": order.upstream_service_id,
        "upstream_order_id": order.upstream_order_id,
        "link": order.link,
        "quantity": order.quantity,
        "params": order.params,
        "rate": order.rate,
        "charge": order.charge,
        "cost": order.cost,
        "profit": order.charge - order.refunded - order.cost,
        "refunded": order.refunded,
        "currency": order.currency,
        "status": order.status,
        "status_raw": order.status_raw,
        "state": order.state,
        "remains": order.remains,
        "start_count": order.start_count,
        "attempts": order.attempts,
        "last_error": order.last_error,
        "held_status": order.held_status,
        "created_at": order.created_at,
        "submitted_at": order.submitted_at,
        "placed_at": order.placed_at,
        "completed_at": order.completed_at,
        "last_checked_at": order.last_checked_at,
    }
