"""The margin guard: after a catalog sync, no upstream price rise goes unnoticed.

Every price a customer can pay for a service is compared with the floor
``cost × (1 + GATEWAY_MIN_MARGIN_PERCENT/100)`` (:func:`gateway.catalog.pricing.floor_rate`):

- the **computed** ones (a markup rule, or the cost, and their discounts) never sell below the floor:
  pricing lifts them to it. A rise that makes the markup (or a discount) land under the floor is a
  *computed* breach: the rule no longer gives the margin the operator wrote down;
- the **typed** ones (a fixed rate, a customer's own rate, a discount on a fixed rate) sell as typed,
  so a rise can put them under the floor, even under cost: a *typed* breach.

``GATEWAY_MARGIN_POLICY`` says what a rise that causes a breach does:

- ``alert``: one ``margin`` alert per service, nothing else changes;
- ``disable``: the service goes off sale (``margin_hold_since``) and the alert opens;
- ``reprice``: computed prices follow the cost (the floor does it; counted as repriced, no alert);
  a service with a typed breach goes off sale and the alert opens.

Only a rise opens an alert (a price the operator typed under cost on purpose is their decision, and
is flagged ``below_cost`` in the service list). Each sync re-checks the provider's services that are
alerted or held: when the breach ends (the price came back down, the operator raised the typed
price), the alert closes and a held service goes back on sale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import alerts
from gateway.catalog import queries
from gateway.catalog.pricebook import PricedService, price_services
from gateway.catalog.pricing import customer_quote, floor_rate
from gateway.money import cost_rate, format_money

POLICIES = ("alert", "disable", "reprice")


@dataclass(frozen=True, slots=True)
class MarginGuard:
    """The two settings the guard follows."""

    min_margin_percent: Decimal
    policy: str = "alert"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"margin policy must be one of {', '.join(POLICIES)}")


@dataclass(frozen=True, slots=True)
class Breach:
    """The prices of one service under the floor: ``typed`` (sold as typed) and ``computed``
    (held at the floor by pricing)."""

    floor: Decimal
    typed: list[dict[str, Any]] = field(default_factory=list)
    computed: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MarginOutcome:
    """What the guard did in one sync (counted in the sync summary)."""

    alerted: int = 0
    off_sale: int = 0
    repriced: int = 0


def breach_of(
    service: PricedService,
    own_rates: Mapping[int, Decimal],
    discount: tuple[Decimal, int | None],
    min_margin_percent: Decimal,
) -> Breach:
    """Which of the service's customer prices fall below the floor (see the module's docstring)."""
    base = service.quote
    floor = floor_rate(base.cost_rate, min_margin_percent)
    breach = Breach(floor)
    typed_default = base.source == "fixed"
    if base.margin_protected:
        breach.computed.append({"price": base.source, "floored_to": format_money(base.rate)})
    elif typed_default and base.rate < floor:
        breach.typed.append({"price": "fixed", "rate": format_money(base.rate)})
    percent, customer_id = discount
    if percent > 0:
        discounted = customer_quote(
            base, discount_percent=percent, own_rate=None, min_margin_percent=min_margin_percent
        )
        entry = {"price": "discount", "discount_percent": str(percent), "customer_id": customer_id}
        if typed_default and discounted.rate < floor:
            breach.typed.append({**entry, "rate": format_money(discounted.rate)})
        elif not typed_default and discounted.margin_protected and not base.margin_protected:
            breach.computed.append({**entry, "floored_to": format_money(discounted.rate)})
    for owner, rate in sorted(own_rates.items()):
        if rate < floor:
            breach.typed.append({"price": "customer", "customer_id": owner, "rate": format_money(rate)})
    return breach


def _counts(policy: str, breach: Breach) -> bool:
    """Whether a breach is one the policy alerts on (``reprice`` lets computed prices follow)."""
    return bool(breach.typed) or (policy != "reprice" and bool(breach.computed))


def _holds(policy: str, breach: Breach) -> bool:
    """Whether the policy takes the service off sale for this breach."""
    return (policy == "disable" and _counts(policy, breach)) or (policy == "reprice" and bool(breach.typed))


def _details(
    service: PricedService, old_cost: Decimal | None, breach: Breach, policy: str, held: bool
) -> dict[str, Any]:
    # The cost before the rise is only known at the sync that saw it: later syncs leave it as it was.
    rise = {} if old_cost is None else {"previous_cost_rate": format_money(old_cost)}
    return {
        **rise,
        "service_id": service.id,
        "provider_id": service.provider_id,
        "name": service.name,
        "cost_rate": format_money(service.quote.cost_rate),
        "floor": format_money(breach.floor),
        "policy": policy,
        "off_sale": held,
        "below_floor": breach.typed + breach.computed,
    }


async def guard_margins(
    session: AsyncSession, provider_id: int, old_costs: Mapping[int, Decimal], guard: MarginGuard
) -> MarginOutcome:
    """Check one provider's services after its catalog was applied (same transaction); ``old_costs``
    are the services' costs before (service id -> cost per 1000 in the gateway's currency)."""
    current = await queries.provider_service_costs(session, provider_id)
    if not current:
        return MarginOutcome()
    rows = {row.id: row for row in await queries.services_for_pricing(session, sorted(current))}
    held_before = {service_id for service_id, row in rows.items() if row.margin_hold_since is not None}
    open_before = {
        alert.subject
        for alert in await alerts.list_alerts(session, alerts.AlertFilter(open=True, kind="margin", limit=100_000))
    }
    priced = await price_services(session, sorted(current), guard.min_margin_percent)
    own_rates = await queries.customer_rates_for(session, sorted(current))
    discount = await queries.largest_discount(session)
    conditions: dict[str, dict[str, Any]] = {}
    hold: list[int] = []
    release: list[int] = []
    repriced = 0
    for service in priced:
        subject = f"service:{service.id}"
        row = rows[service.id]
        old_cost = old_costs.get(service.id)
        rose = old_cost is not None and service.quote.cost_rate > old_cost
        watched = row.upstream_present and row.enabled
        breach = breach_of(service, own_rates.get(service.id, {}), discount, guard.min_margin_percent)
        if rose and breach.computed:
            repriced += 1
        # A rise opens the condition; an alerted or held service stays in it while the breach lasts.
        in_condition = (
            watched and _counts(guard.policy, breach) and (rose or subject in open_before or service.id in held_before)
        )
        if not in_condition:
            if service.id in held_before:
                release.append(service.id)
            continue
        held = _holds(guard.policy, breach) or service.id in held_before
        if held:
            hold.append(service.id)
        conditions[subject] = _details(service, old_cost if rose else None, breach, guard.policy, held)
    await queries.set_margin_holds(session, hold, release)
    result = await alerts.reconcile(session, "margin", conditions, within=[f"service:{sid}" for sid in current])
    return MarginOutcome(
        alerted=len(result.opened),
        off_sale=len(set(hold) - held_before),
        repriced=repriced,
    )


def old_cost_rates(costs: Mapping[int, tuple[Decimal, Decimal]]) -> dict[int, Decimal]:
    """Service id -> cost per 1000, from :func:`queries.provider_service_costs`."""
    return {service_id: cost_rate(rate, fx) for service_id, (rate, fx) in costs.items()}
