"""What the operator does with orders: list and inspect them, settle unknown ones, retry queued ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.ledger.ledger import refund_order
from gateway.models import ORDER_STATES, ORDER_STATUSES, LedgerEntry, Order, UpstreamCall
from gateway.orders import queries


@dataclass(frozen=True, slots=True)
class OrderFilter:
    customer_id: int | None = None
    status: str | None = None
    state: str | None = None
    provider_id: int | None = None
    service_id: int | None = None
    limit: int = 100
    before: int | None = None


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
    return list((await session.scalars(query)).all())


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


async def order_history(session: AsyncSession, order_id: int) -> tuple[list[LedgerEntry], list[UpstreamCall]]:
    entries = (
        await session.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id))
    ).all()
    calls = (
        await session.scalars(select(UpstreamCall).where(UpstreamCall.order_id == order_id).order_by(UpstreamCall.id))
    ).all()
    return list(entries), list(calls)


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
        "created_at": order.created_at,
        "placed_at": order.placed_at,
        "completed_at": order.completed_at,
        "last_checked_at": order.last_checked_at,
    }
