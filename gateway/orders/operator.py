"""What the operator does with orders: list and inspect them, resolve unknown ones, settle the
ones whose final status waits for a refund decision, retry queued ones. Everything runs in the
admin request's unit of work (its session), through the order store."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.lifecycle import FINAL_STATUSES, OrderState, OrderStatus
from gateway.models import Order, Provider
from gateway.orders.drift import expected_cost, reported_cost
from gateway.orders.profit import order_profit
from gateway.orders.refunds import OrderFacts, settlement, unsent
from gateway.orders.store import OrderFilter, OrderHistory, OrderStore

__all__ = [
    "OrderFilter",
    "OrderHistory",
    "anomaly_counts",
    "list_orders",
    "order_fields",
    "order_history",
    "require_order",
    "resolve_unknown",
    "retry_now",
    "settle",
    "stuck_orders",
]

RESOLVED_FAILED = "resolved as failed by the operator"


async def list_orders(session: AsyncSession, flt: OrderFilter) -> list[Order]:
    if flt.status is not None and flt.status not in set(OrderStatus):
        raise InvalidInput(f"status must be one of {', '.join(OrderStatus)}", field="status")
    if flt.state is not None and flt.state not in set(OrderState):
        raise InvalidInput(f"state must be one of {', '.join(OrderState)}", field="state")
    return await OrderStore.bound(session).list_orders(flt)


async def anomaly_counts(session: AsyncSession, order_ids: list[int]) -> dict[int, int]:
    """How many distinct anomalies each of these orders has (absent: none)."""
    return await OrderStore.bound(session).anomaly_counts(order_ids)


async def stuck_orders(session: AsyncSession, older_than_seconds: int, limit: int) -> list[Order]:
    """Orders not finished although created more than ``older_than_seconds`` ago, oldest first."""
    return await OrderStore.bound(session).stuck_orders(older_than_seconds, limit)


async def require_order(session: AsyncSession, order_id: int) -> Order:
    order = await OrderStore.bound(session).get_order(order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


async def order_history(session: AsyncSession, order_id: int) -> OrderHistory:
    """The order's ledger entries, upstream calls (by when they started) and anomalies."""
    return await OrderStore.bound(session).history(order_id)


async def resolve_unknown(session: AsyncSession, order_id: int, outcome: str, upstream_order_id: int | None) -> Order:
    """Settle an order whose upstream outcome is unknown: ``placed`` (with the upstream's id; the
    status sync takes over) or ``failed`` (refunded in full)."""
    tx = OrderStore.bound(session)
    order = await require_order(session, order_id)
    if order.state != OrderState.UNKNOWN:
        raise Conflict(f"order {order_id} is {order.state}, not unknown", field="outcome")
    if outcome == "placed":
        if upstream_order_id is None:
            raise InvalidInput("upstream_order_id is required to resolve as placed", field="upstream_order_id")
        if not 0 < upstream_order_id < 2**63:
            raise InvalidInput("upstream_order_id must be a positive id", field="upstream_order_id")
        other = await tx.order_with_upstream_id(order.provider_id, upstream_order_id)
        if other is not None:
            # One upstream order, one gateway order: otherwise one upstream answer moves both.
            raise Conflict(
                f"upstream order {upstream_order_id} already belongs to order {other}", field="upstream_order_id"
            )
        if not await tx.resolve_placed(order_id, upstream_order_id):
            raise Conflict(f"order {order_id} changed meanwhile", field="outcome")
    elif outcome == "failed":
        if upstream_order_id is not None:
            raise InvalidInput("upstream_order_id only goes with outcome placed", field="upstream_order_id")
        charge = await tx.end_unsent(order_id, OrderState.FAILED, RESOLVED_FAILED, only=[OrderState.UNKNOWN])
        if charge is None:
            raise Conflict(f"order {order_id} changed meanwhile", field="outcome")
        await tx.refund(order_id, unsent(charge), RESOLVED_FAILED)
    else:
        raise InvalidInput("outcome must be placed or failed", field="outcome")
    await tx.refresh(order)
    return order


async def settle(
    session: AsyncSession, order_id: int, remains: int | None, refund: Decimal | None, note: str | None
) -> Order:
    """End a placed, unfinished order by the operator's decision: from the units not delivered
    (``remains``) or the amount to give back (``refund``), exactly one. For orders whose final
    status is held for lack of a usable remains, or that the upstream no longer answers for."""
    tx = OrderStore.bound(session)
    order = await require_order(session, order_id)
    if order.state != OrderState.PLACED or order.status in FINAL_STATUSES:
        raise Conflict(
            f"order {order_id} is {order.state} and {order.status}: only a placed, unfinished order can be settled"
        )
    try:
        status, amount = settlement(OrderFacts(order.id, order.charge, order.quantity), remains, refund)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="remains" if remains is not None else "refund") from None
    if not await tx.settle(order_id, status, remains):
        raise Conflict(f"order {order_id} changed meanwhile")
    await tx.refund(order_id, amount, f"settled by the operator: {note}" if note else "settled by the operator")
    await tx.refresh(order)
    return order


async def retry_now(session: AsyncSession, order_id: int) -> Order:
    """Make a queued order due for dispatch right away."""
    tx = OrderStore.bound(session)
    order = await require_order(session, order_id)
    if not await tx.make_queued_due(order_id):
        raise Conflict(f"order {order_id} is {order.state}, not queued")
    await tx.refresh(order)
    return order


def order_fields(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "service_id": order.service_id,
        "provider_id": order.provider_id,
        "upstream_service_id": order.upstream_service_id,
        "route_priority": order.route_priority,
        "routes_tried": order.routes_tried,
        "upstream_order_id": order.upstream_order_id,
        "link": order.link,
        "quantity": order.quantity,
        "params": order.params,
        "rate": order.rate,
        "charge": order.charge,
        "cost": order.cost,
        "profit": order_profit(order),
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


@dataclass(frozen=True, slots=True)
class OrderChargeDrift:
    """One order's charge drift (gateway/orders/drift.py): ``reported`` and ``drift`` are None
    while the upstream reported no charge for it."""

    upstream_charge: Decimal | None
    expected: Decimal
    reported: Decimal | None

    @property
    def drift(self) -> Decimal | None:
        return None if self.reported is None else self.reported - self.expected


async def order_charge_drift(session: AsyncSession, order: Order) -> OrderChargeDrift:
    """What the upstream billed for the order against its expected cost, in the gateway's currency."""
    provider = await session.get(Provider, order.provider_id)
    fx_rate = provider.fx_rate if provider is not None else Decimal(1)
    return OrderChargeDrift(order.upstream_charge, expected_cost(order), reported_cost(order, fx_rate))
