"""What an order earned: revenue, the cost the upstream kept, and profit. Defined once, here, as
Python (one order: the operator's order pages) and as SQL (many orders: the reports), side by side.

- **revenue** = what the customer paid and kept paying: ``charge - refunded``;
- **cost** = what the upstream charged for what was delivered. Upstreams refund canceled and
  partial orders the way the gateway refunds its customers, so the order's cost is scaled by the
  part of the charge that was not refunded: ``cost × (charge - refunded) / charge`` (rounded
  half-up to 5 places by :func:`gateway.money.prorate`). A failed or canceled order (never placed,
  or refused) and a Canceled one cost nothing. An order charged nothing (a free or sub-cent order)
  has no refund to scale by, so its status says what was delivered: Partial keeps
  ``cost × (quantity - remains) / quantity``, anything else the whole cost;
- **profit** = revenue - cost.

An order still running counts its whole cost: the upstream has charged it and refunds only when it
ends. The reports sum these per-order figures, so an order's profit on its page is exactly its share
of the report's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from gateway.lifecycle import OrderState, OrderStatus, sql_list
from gateway.money import ZERO, prorate, prorate_sql, quantize_amount

# Orders that were never placed or were refused upstream: the upstream kept nothing.
_UNPLACED_STATES = (OrderState.FAILED, OrderState.CANCELED)


class OrderAmounts(Protocol):
    """What profit needs of an order (an ``Order`` row has it)."""

    @property
    def charge(self) -> Decimal: ...
    @property
    def refunded(self) -> Decimal: ...
    @property
    def cost(self) -> Decimal: ...
    @property
    def state(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def remains(self) -> int | None: ...


def order_revenue(order: OrderAmounts) -> Decimal:
    """What the customer paid for the order and was not refunded."""
    return order.charge - order.refunded


def order_cost(order: OrderAmounts) -> Decimal:
    """What the upstream charged for what it delivered of the order (see the module's docstring)."""
    if order.charge > 0:
        return prorate(order.cost, order.charge - order.refunded, order.charge)
    if order.state in _UNPLACED_STATES or order.status == OrderStatus.CANCELED:
        return quantize_amount(ZERO)
    if order.status == OrderStatus.PARTIAL and order.remains is not None and order.quantity > 0:
        undelivered = min(max(order.remains, 0), order.quantity)
        return prorate(order.cost, order.quantity - undelivered, order.quantity)
    return quantize_amount(order.cost)


def order_profit(order: OrderAmounts) -> Decimal:
    """Revenue minus cost, as the reports count it."""
    return order_revenue(order) - order_cost(order)


def revenue_sql(alias: str = "o") -> str:
    """:func:`order_revenue` over the ``orders`` row called ``alias``."""
    return f"({alias}.charge - {alias}.refunded)"


def cost_sql(alias: str = "o") -> str:
    """:func:`order_cost` over the ``orders`` row called ``alias``: the same cases, the same rounding."""
    o = alias
    kept = prorate_sql(f"{o}.cost", f"{o}.charge - {o}.refunded", f"{o}.charge")
    delivered = prorate_sql(
        f"{o}.cost", f"{o}.quantity - greatest(0, least({o}.remains, {o}.quantity))", f"{o}.quantity"
    )
    return (
        f"(CASE WHEN {o}.charge > 0 THEN {kept}"
        f" WHEN {o}.state IN {sql_list(_UNPLACED_STATES)} OR {o}.status = '{OrderStatus.CANCELED}' THEN 0"
        f" WHEN {o}.status = '{OrderStatus.PARTIAL}' AND {o}.remains IS NOT NULL AND {o}.quantity > 0 THEN {delivered}"
        f" ELSE {o}.cost END)"
    )
