"""Pricing: every scope and its precedence, customer layers, rounding, currency conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog.pricing import MarkupRule, RuleBook, customer_quote, default_quote, floor_rate
from gateway.money import cost_rate, round_resale_rate

D = Decimal
RULES = RuleBook(
    [
        MarkupRule("global", D("10")),
        MarkupRule("provider", D("20"), provider_id=1),
        MarkupRule("category", D("30"), category="TikTok"),
        MarkupRule("service", D("40"), D("0.05"), service_id=7),
    ]
)


@pytest.mark.parametrize(
    ("service_id", "category", "provider_id", "scope"),
    [
        (7, "TikTok", 1, "service"),  # service beats everything
        (8, "TikTok", 1, "category"),  # category beats provider and global
        (8, "Instagram", 1, "provider"),  # provider beats global
        (8, "Instagram", 2, "global"),  # global when nothing else matches
    ],
)
def test_most_specific_rule_wins(service_id: int, category: str, provider_id: int, scope: str) -> None:
    rule = RULES.rule_for(service_id, category, provider_id)
    assert rule is not None
    assert rule.scope == scope


def test_no_rule_sells_at_cost() -> None:
    assert RuleBook([]).rule_for(1, "x", 1) is None
    quote = default_quote(D("1.2345"), rule=None, fixed_rate=None, min_margin_percent=D(0))
    assert quote.rate == D("1.2345")
    assert quote.source == "cost"


@pytest.mark.parametrize(
    ("cost", "percent", "fixed", "expected"),
    [
        (D("1.000000"), D("20"), D("0"), D("1.2")),
        (D("0.500000"), D("0"), D("0.1"), D("0.6")),
        (D("1.000000"), D("50"), D("0.25"), D("1.75")),
        # 0.333333 × 1.1 = 0.3666663 -> rounded up to 4 places.
        (D("0.333333"), D("10"), D("0"), D("0.3667")),
        # Already on 4 places: not moved.
        (D("2.000000"), D("12.5"), D("0"), D("2.25")),
    ],
)
def test_markup_and_rounding_up(cost: Decimal, percent: Decimal, fixed: Decimal, expected: Decimal) -> None:
    quote = default_quote(cost, rule=MarkupRule("global", percent, fixed), fixed_rate=None, min_margin_percent=D(0))
    assert quote.rate == expected
    assert not quote.below_cost


def test_fixed_rate_overrides_rules_and_is_flagged_below_cost() -> None:
    quote = default_quote(D("1"), rule=MarkupRule("global", D("50")), fixed_rate=D("0.8"), min_margin_percent=D(5))
    assert quote.rate == D("0.8")
    assert quote.source == "fixed"
    assert quote.below_cost


def test_minimum_margin_floor_protects_computed_rates() -> None:
    quote = default_quote(D("1"), rule=MarkupRule("global", D("2")), fixed_rate=None, min_margin_percent=D("10"))
    assert quote.rate == D("1.1")
    assert quote.margin_protected


def test_discount_applies_to_default_and_respects_floor() -> None:
    base = default_quote(D("1"), rule=MarkupRule("global", D("100")), fixed_rate=None, min_margin_percent=D("10"))
    assert base.rate == D("2")
    assert customer_quote(base, discount_percent=D("25"), own_rate=None, min_margin_percent=D("10")).rate == D("1.5")
    deep = customer_quote(base, discount_percent=D("90"), own_rate=None, min_margin_percent=D("10"))
    assert deep.rate == D("1.1")
    assert deep.margin_protected


def test_customer_own_rate_comes_last_even_below_cost() -> None:
    base = default_quote(D("1"), rule=MarkupRule("global", D("100")), fixed_rate=None, min_margin_percent=D("10"))
    quote = customer_quote(base, discount_percent=D("50"), own_rate=D("0.9"), min_margin_percent=D("10"))
    assert quote.rate == D("0.9")
    assert quote.source == "customer"
    assert quote.below_cost


@pytest.mark.parametrize(
    ("upstream", "fx", "expected"),
    [
        (D("1.00"), D("1"), D("1.000000")),
        (D("100"), D("0.0125"), D("1.250000")),  # e.g. INR -> USD
        (D("0.27819"), D("1.08"), D("0.300445")),  # half-up at 6 places: 0.3004452
        (D("0.0000005"), D("1"), D("0.000001")),
    ],
)
def test_currency_conversion(upstream: Decimal, fx: Decimal, expected: Decimal) -> None:
    assert cost_rate(upstream, fx) == expected


money = st.decimals(min_value=D("0.000001"), max_value=D("10000"), places=6)
percent = st.decimals(min_value=D("0"), max_value=D("1000"), places=4)
signed_percent = st.decimals(min_value=D("-100"), max_value=D("1000"), places=4)


@settings(max_examples=400, deadline=None)
@given(
    cost=money,
    rule_percent=st.one_of(st.none(), signed_percent),
    rule_fixed=st.decimals(min_value=D("0"), max_value=D("100"), places=6),
    min_margin=st.decimals(min_value=D("0"), max_value=D("100"), places=4),
    discount=st.decimals(min_value=D("0"), max_value=D("100"), places=4),
)
def test_charged_rate_never_below_cost_plus_margin_unless_set_explicitly(
    cost: Decimal, rule_percent: Decimal | None, rule_fixed: Decimal, min_margin: Decimal, discount: Decimal
) -> None:
    rule = None if rule_percent is None else MarkupRule("global", rule_percent, rule_fixed)
    base = default_quote(cost, rule=rule, fixed_rate=None, min_margin_percent=min_margin)
    final = customer_quote(base, discount_percent=discount, own_rate=None, min_margin_percent=min_margin)
    floor = cost * (100 + min_margin) / 100
    assert final.rate >= floor
    assert final.rate >= cost
    assert not final.below_cost
    assert final.rate == round_resale_rate(final.rate)
    assert floor_rate(cost, min_margin) >= floor


@pytest.mark.parametrize("text", ["1e30", "-1e30", "9" * 40, "1E+999999", "0.1e-999999"])
def test_absurd_numbers_are_refused_cleanly(text: str) -> None:
    from gateway.money import MoneyError, parse_amount, parse_rate

    with pytest.raises(MoneyError):
        parse_amount(text)
    with pytest.raises(MoneyError):
        parse_rate(text)
