"""Which customer prices a margin breach names (pure: gateway/catalog/margins.breach_of)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.catalog.margins import MarginGuard, breach_of
from gateway.catalog.pricebook import PricedService
from gateway.catalog.pricing import MarkupRule, default_quote

D = Decimal
MIN = D(10)  # floor = cost x 1.1


def _service(cost: str, *, percent: str | None = None, fixed: str | None = None) -> PricedService:
    rule = None if percent is None else MarkupRule(scope="global", percent=D(percent))
    quote = default_quote(D(cost), rule=rule, fixed_rate=None if fixed is None else D(fixed), min_margin_percent=MIN)
    return PricedService(
        id=1, provider_id=1, upstream_service_id=1, name="s", type="Default", category="c", min=1, max=10,
        refill=False, cancel=False, dripfeed=False, for_sale=True, quote=quote,
    )  # fmt: skip


def test_a_markup_above_the_floor_breaches_nothing() -> None:
    breach = breach_of(_service("1.00", percent="20"), {}, (D(0), None), MIN)
    assert (breach.typed, breach.computed, breach.floor) == ([], [], D("1.1"))


def test_a_markup_under_the_floor_is_a_computed_breach_lifted_to_the_floor() -> None:
    breach = breach_of(_service("1.00", percent="5"), {}, (D(0), None), MIN)
    assert breach.typed == []
    assert breach.computed == [{"price": "markup:global", "floored_to": "1.10"}]


def test_a_discount_that_the_floor_lifts_is_a_computed_breach() -> None:
    breach = breach_of(_service("1.00", percent="20"), {}, (D(15), 7), MIN)
    assert breach.computed == [{"price": "discount", "discount_percent": "15", "customer_id": 7, "floored_to": "1.10"}]


def test_typed_prices_under_the_floor_are_typed_breaches() -> None:
    breach = breach_of(_service("1.00", fixed="1.05"), {3: D("1.20"), 4: D("0.90")}, (D(10), 5), MIN)
    assert breach.computed == []
    assert breach.typed == [
        {"price": "fixed", "rate": "1.05"},
        # A discount on a fixed rate never goes below the fixed rate itself (pricing.py), still under the floor.
        {"price": "discount", "discount_percent": "10", "customer_id": 5, "rate": "1.05"},
        {"price": "customer", "customer_id": 4, "rate": "0.90"},
    ]


def test_a_discount_on_a_fixed_rate_above_the_floor_stops_at_the_floor() -> None:
    # pricing.py floors a discount on a fixed rate at min(fixed, floor): here the floor, so no breach.
    breach = breach_of(_service("1.00", fixed="1.20"), {}, (D(20), 9), MIN)
    assert (breach.typed, breach.computed) == ([], [])


def test_the_policy_must_be_known() -> None:
    with pytest.raises(ValueError, match="margin policy"):
        MarginGuard(MIN, "ignore")
