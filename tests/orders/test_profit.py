"""Profit defined once: the Python of one order and the SQL of the reports give the same cent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from gateway.money import prorate
from gateway.orders.profit import cost_sql, order_cost, order_profit, revenue_sql
from gateway.runtime import Runtime

D = Decimal
STATES = ("queued", "submitting", "placed", "unknown", "failed", "canceled")
STATUSES = ("Pending", "In progress", "Processing", "Completed", "Partial", "Canceled")


@dataclass(frozen=True)
class Amounts:
    charge: Decimal
    refunded: Decimal
    cost: Decimal
    state: str = "placed"
    status: str = "Completed"
    quantity: int = 100
    remains: int | None = None


def _amount(rng: random.Random, top: int) -> Decimal:
    return D(rng.randrange(top * 100_000 + 1)).scaleb(-5)


def _cases() -> list[Amounts]:
    rng = random.Random(20261205)
    cases = [
        Amounts(D("1.00"), D("0.25"), D("0.40"), status="Partial", remains=25),
        Amounts(D("0.00002"), D("0.00001"), D("0.00001")),  # 0.000005: the tie, half-up
        Amounts(D("0.03"), D("0.01"), D("0.00007")),
        Amounts(D(0), D(0), D("0.40"), status="Partial", remains=150),  # remains above the quantity
        Amounts(D(0), D(0), D("0.40"), status="Partial", remains=-3),
        Amounts(D(0), D(0), D("0.40"), status="Partial", remains=None),
        Amounts(D(0), D(0), D("0.40"), state="failed", status="Canceled"),
        # 10500.0000049999999500…: Postgres' '/' keeps 12 decimals here (…0050000000), and
        # round(…, 5) of that gives 10500.00001; the exact half-up is 10500.00000.
        Amounts(D("1000.00001"), D("0.00001"), D("10500.00011")),
    ]
    for _ in range(3000):
        charge = _amount(rng, rng.choice((0, 1, 100, 1_000_000)))
        quantity = rng.choice((1, 3, 7, 100, 1000, 999_983))
        cases.append(
            Amounts(
                charge=charge,
                refunded=D(rng.randrange(int(charge * 100_000) + 1)).scaleb(-5),
                cost=_amount(rng, rng.choice((1, 100, 1_000_000))),
                state=rng.choice(STATES),
                status=rng.choice(STATUSES),
                quantity=quantity,
                remains=rng.choice((None, 0, rng.randrange(quantity + 1), quantity + 5)),
            )
        )
    return cases


async def test_the_sql_gives_the_same_cost_and_profit_as_the_python(runtime: Runtime) -> None:
    cases = _cases()
    query = text(
        f"SELECT {cost_sql('o')} AS cost, {revenue_sql('o')} - {cost_sql('o')} AS profit"
        " FROM unnest(CAST(:charge AS numeric[]), CAST(:refunded AS numeric[]), CAST(:cost AS numeric[]),"
        " CAST(:state AS text[]), CAST(:status AS text[]), CAST(:quantity AS bigint[]), CAST(:remains AS bigint[]))"
        " WITH ORDINALITY AS o(charge, refunded, cost, state, status, quantity, remains, n) ORDER BY o.n"
    )
    columns = {name: [getattr(c, name) for c in cases] for name in Amounts.__dataclass_fields__}
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query, columns)).all()
    assert len(rows) == len(cases)
    wrong = [
        (case, row.cost, order_cost(case))
        for case, row in zip(cases, rows, strict=True)
        if (row.cost, row.profit) != (order_cost(case), order_profit(case))
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("order", "cost"),
    [
        (Amounts(D("1.00"), D(0), D("0.40")), "0.40000"),
        (Amounts(D("1.00"), D("0.25"), D("0.40"), status="Partial", remains=25), "0.30000"),
        (Amounts(D("1.00"), D("1.00"), D("0.40"), status="Canceled"), "0.00000"),
        (Amounts(D("1.00"), D(0), D("0.40"), state="unknown", status="Pending"), "0.40000"),
        (Amounts(D(0), D(0), D("0.40")), "0.40000"),
        (Amounts(D(0), D(0), D("0.40"), status="Canceled"), "0.00000"),
        (Amounts(D(0), D(0), D("0.40"), state="canceled", status="Canceled"), "0.00000"),
        (Amounts(D(0), D(0), D("0.40"), status="Partial", remains=25), "0.30000"),
        (Amounts(D(0), D(0), D("0.40"), status="Partial", remains=500), "0.00000"),
    ],
)
def test_order_cost(order: Amounts, cost: str) -> None:
    assert order_cost(order) == D(cost)
    assert str(order_cost(order)) == cost
    assert order_profit(order) == order.charge - order.refunded - D(cost)


amounts = st.decimals(min_value=0, max_value=D("999999999999999.99999"), places=5)


@given(amount=amounts, part=amounts, whole=amounts.filter(lambda d: d > 0))
def test_prorate_is_the_exact_quotient_rounded_half_up(amount: Decimal, part: Decimal, whole: Decimal) -> None:
    with localcontext() as ctx:
        ctx.prec = 200  # enough for the exact quotient of these to decide the 5th place
        expected = (amount * part / whole).quantize(D("0.00001"), rounding=ROUND_HALF_UP)
    assert prorate(amount, part, whole) == expected


def test_prorate_refuses_what_it_is_not_for() -> None:
    for args in ((D(-1), D(1), D(1)), (D(1), D(-1), D(1)), (D(1), D(1), D(0))):
        with pytest.raises(ValueError, match="prorate"):
            prorate(*args)
