"""Pricing: from an upstream rate to the rate one customer pays. Pure functions, no I/O.

The layers, in order:

1. **cost** = upstream rate × the provider's conversion rate (``money.cost_rate``);
2. **markup**: the most specific rule wins (service > category > provider > global);
   ``rate = cost × (1 + percent/100) + fixed``; no rule: ``rate = cost``;
3. a **fixed** per-service rate set by the operator replaces 2;
4. the customer's **discount** percent applies to the result of 2 or 3;
5. the customer's **own rate** for the service replaces everything.

Computed rates (2 and 4) are rounded up to 4 places and never fall below the **floor**:
``cost × (1 + min_margin/100)``, which protects against upstream price rises between syncs and
against a rule or discount that would sell at a loss. Rates the operator typed for one service
(3 and 5) are used as typed, even below cost: that is an explicit decision, and it is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.money import HUNDRED, ZERO, round_resale_rate

SCOPE_ORDER = ("service", "category", "provider", "global")


@dataclass(frozen=True, slots=True)
class MarkupRule:
    scope: str
    percent: Decimal
    fixed: Decimal = ZERO
    provider_id: int | None = None
    category: str | None = None
    service_id: int | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """A resale rate and how it came about."""

    rate: Decimal
    cost_rate: Decimal
    source: str  # "markup:<scope>", "cost", "fixed", "customer"
    below_cost: bool
    margin_protected: bool


class RuleBook:
    """The markup rules indexed by target, for a lookup per service in O(1)."""

    def __init__(self, rules: list[MarkupRule]) -> None:
        self.global_rule: MarkupRule | None = None
        self.by_provider: dict[int, MarkupRule] = {}
        self.by_category: dict[str, MarkupRule] = {}
        self.by_service: dict[int, MarkupRule] = {}
        for rule in rules:
            if rule.scope == "global":
                self.global_rule = rule
            elif rule.scope == "provider" and rule.provider_id is not None:
                self.by_provider[rule.provider_id] = rule
            elif rule.scope == "category" and rule.category is not None:
                self.by_category[rule.category] = rule
            elif rule.scope == "service" and rule.service_id is not None:
                self.by_service[rule.service_id] = rule

    def rule_for(self, service_id: int, category: str, provider_id: int) -> MarkupRule | None:
        """The most specific rule that applies to a service."""
        return (
            self.by_service.get(service_id)
            or self.by_category.get(category)
            or self.by_provider.get(provider_id)
            or self.global_rule
        )


def floor_rate(cost_rate: Decimal, min_margin_percent: Decimal) -> Decimal:
    """The lowest computed rate allowed for a service of this cost."""
    return round_resale_rate(cost_rate * (HUNDRED + min_margin_percent) / HUNDRED)


def apply_markup(cost_rate: Decimal, rule: MarkupRule | None) -> Decimal:
    if rule is None:
        return cost_rate
    return cost_rate * (HUNDRED + rule.percent) / HUNDRED + rule.fixed


def default_quote(
    cost_rate: Decimal, *, rule: MarkupRule | None, fixed_rate: Decimal | None, min_margin_percent: Decimal
) -> Quote:
    """The service's default resale rate (what a customer without discount or own rate pays)."""
    if fixed_rate is not None:
        return Quote(fixed_rate, cost_rate, "fixed", fixed_rate < cost_rate, margin_protected=False)
    computed = round_resale_rate(apply_markup(cost_rate, rule))
    floor = floor_rate(cost_rate, min_margin_percent)
    source = f"markup:{rule.scope}" if rule is not None else "cost"
    if computed < floor:
        return Quote(floor, cost_rate, source, below_cost=False, margin_protected=True)
    return Quote(computed, cost_rate, source, below_cost=computed < cost_rate, margin_protected=False)


def customer_quote(
    base: Quote, *, discount_percent: Decimal, own_rate: Decimal | None, min_margin_percent: Decimal
) -> Quote:
    """One customer's rate for a service, from the service's default quote."""
    if own_rate is not None:
        return Quote(own_rate, base.cost_rate, "customer", own_rate < base.cost_rate, margin_protected=False)
    if discount_percent <= 0:
        return base
    discounted = round_resale_rate(base.rate * (HUNDRED - discount_percent) / HUNDRED)
    if base.source == "fixed":
        # The operator fixed the price; a discount still must not turn it into a loss it did not choose.
        floor = min(base.rate, floor_rate(base.cost_rate, min_margin_percent))
    else:
        floor = floor_rate(base.cost_rate, min_margin_percent)
    if discounted < floor:
        return Quote(floor, base.cost_rate, base.source, floor < base.cost_rate, margin_protected=True)
    return Quote(discounted, base.cost_rate, base.source, discounted < base.cost_rate, margin_protected=False)
