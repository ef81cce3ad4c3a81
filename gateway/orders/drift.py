"""Charge drift: what an upstream billed for an order against what the gateway expected to pay.

Defined once, here, as Python (one order's page) and as SQL (per provider, the report and the
alert), side by side:

- **expected cost** = the order's ``cost`` (its route's rate × quantity when it was sent), pro rata
  for what was delivered of a ``Partial`` (``cost × (quantity - remains) / quantity``), nothing for a
  ``Canceled`` one (the upstream gives the whole charge back);
- **reported cost** = the ``charge`` the upstream's last status answer carried (parsed as hostile
  input by :mod:`gateway.orders.answers`; an absurd value is never stored), converted with the
  provider's ``fx_rate`` into the gateway's currency;
- **drift** = reported - expected; as a percent of expected for a provider.

Only orders the upstream reported a charge for count (many panels send none), so a provider that
reports nothing shows no drift rather than a -100 % one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from gateway.lifecycle import OrderStatus
from gateway.money import ZERO, prorate, prorate_sql, quantize_amount


class ChargedOrder(Protocol):
    """What drift needs of an order (an ``Order`` row has it)."""

    @property
    def cost(self) -> Decimal: ...
    @property
    def status(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def remains(self) -> int | None: ...
    @property
    def upstream_charge(self) -> Decimal | None: ...


def expected_cost(order: ChargedOrder) -> Decimal:
    """What the upstream should have charged for the order by now (see the module's docstring)."""
    if order.status == OrderStatus.CANCELED:
        return quantize_amount(ZERO)
    if order.status == OrderStatus.PARTIAL and order.remains is not None and order.quantity > 0:
        undelivered = min(max(order.remains, 0), order.quantity)
        return prorate(order.cost, order.quantity - undelivered, order.quantity)
    return quantize_amount(order.cost)


def reported_cost(order: ChargedOrder, fx_rate: Decimal) -> Decimal | None:
    """The upstream's reported charge in the gateway's currency, None when it reported none."""
    if order.upstream_charge is None:
        return None
    return quantize_amount(order.upstream_charge * fx_rate)


def expected_cost_sql(alias: str = "o") -> str:
    """:func:`expected_cost` over the ``orders`` row called ``alias``."""
    o = alias
    delivered = prorate_sql(
        f"{o}.cost", f"{o}.quantity - greatest(0, least({o}.remains, {o}.quantity))", f"{o}.quantity"
    )
    return (
        f"(CASE WHEN {o}.status = '{OrderStatus.CANCELED}' THEN 0"
        f" WHEN {o}.status = '{OrderStatus.PARTIAL}' AND {o}.remains IS NOT NULL AND {o}.quantity > 0 THEN {delivered}"
        f" ELSE {o}.cost END)"
    )


def reported_cost_sql(alias: str = "o", provider_alias: str = "p") -> str:
    """:func:`reported_cost` (before rounding) over ``orders`` ``alias`` joined to its provider."""
    return f"({alias}.upstream_charge * {provider_alias}.fx_rate)"


def drift_percent(expected: Decimal, reported: Decimal) -> Decimal | None:
    """``(reported - expected) / expected`` in percent, rounded to 2 places; None when nothing was
    expected (then any reported charge is drift without a percentage)."""
    if expected <= 0:
        return None
    return ((reported - expected) * 100 / expected).quantize(Decimal("0.01"))
