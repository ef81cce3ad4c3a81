"""The policy for hostile values, one field at a time (gateway.orders.answers), without I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.orders.answers import HELD_ASKS, MAX_BIGINT, read_status
from gateway.orders.refunds import OrderFacts, settlement
from gateway.upstream import OrderStatus, StatusAnswer

D = Decimal
ORDER = OrderFacts(id=1, charge=D("0.90000"), quantity=1000)


def answer(status: OrderStatus | None, raw: str | None = None, **fields: object) -> StatusAnswer:
    return StatusAnswer(status=status, raw_status=raw or (status.value if status else "???"), **fields)  # type: ignore[arg-type]


def kinds(update: object) -> set[str]:
    return {a.kind for a in update.anomalies}  # type: ignore[attr-defined]


def test_a_sane_progress_answer_is_stored_as_sent() -> None:
    update = read_status(answer(OrderStatus.IN_PROGRESS, start_count=5, remains=300, charge=D("0.9")), ORDER)
    assert (update.status, update.start_count, update.remains, update.upstream_charge) == (
        "In progress",
        5,
        300,
        D("0.9"),
    )
    assert (update.ends, update.refund, update.held, update.anomalies) == (False, 0, None, ())


@pytest.mark.parametrize(
    ("fields", "stored", "kind"),
    [
        ({"remains": -7}, {"remains": 0}, "negative_remains"),
        ({"remains": 5000}, {"remains": 1000}, "remains_above_quantity"),
        ({"remains": MAX_BIGINT + 1}, {"remains": None}, "remains_out_of_range"),
        ({"start_count": -1}, {"start_count": None}, "bad_start_count"),
        ({"start_count": MAX_BIGINT + 1}, {"start_count": None}, "bad_start_count"),
        ({"charge": D("-0.5")}, {"upstream_charge": None}, "bad_charge"),
        ({"charge": D("1e16")}, {"upstream_charge": None}, "bad_charge"),
        ({"unreadable": ("remains 'abc': not a number",)}, {"remains": None}, "unreadable_value"),
    ],
)
def test_each_hostile_value_is_stored_the_documented_way(
    fields: dict[str, object], stored: dict[str, object], kind: str
) -> None:
    update = read_status(answer(OrderStatus.IN_PROGRESS, **fields), ORDER)
    for name, value in stored.items():
        assert getattr(update, name) == value
    assert kinds(update) == {kind}
    assert update.status == "In progress"
    assert not update.ends


def test_an_unknown_status_keeps_the_order_as_it_is() -> None:
    update = read_status(answer(None, raw="On hold (manual)", remains=10), ORDER)
    assert (update.status, update.raw_status, update.ends, update.remains) == (None, "On hold (manual)", False, 10)
    assert kinds(update) == {"unknown_status"}


def test_completed_never_refunds_even_with_remains() -> None:
    update = read_status(answer(OrderStatus.COMPLETED, remains=20), ORDER)
    assert (update.status, update.ends, update.refund) == ("Completed", True, 0)
    assert kinds(update) == {"completed_with_remains"}


@pytest.mark.parametrize(
    ("remains", "refund"), [(1, D("0.00090")), (333, D("0.29970")), (999, D("0.89910")), (1000, D("0.9"))]
)
def test_partial_refunds_from_the_reported_remains_rounded_down(remains: int, refund: Decimal) -> None:
    update = read_status(answer(OrderStatus.PARTIAL, remains=remains), ORDER)
    assert (update.status, update.ends, update.refund, update.remains) == ("Partial", True, refund, remains)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"remains": 0},
        {"remains": -3},
        {"remains": 1001},
        {"remains": MAX_BIGINT + 5},
        {"unreadable": ("remains 'x': no",)},
    ],
)
def test_partial_without_a_usable_remains_is_held(fields: dict[str, object]) -> None:
    update = read_status(answer(OrderStatus.PARTIAL, **fields), ORDER)
    assert (update.status, update.ends, update.refund, update.held, update.remains) == (None, False, 0, "Partial", None)
    assert "partial_without_remains" in kinds(update)
    assert update.asks_left == HELD_ASKS - 1


def test_a_held_status_stops_asking_after_the_last_ask() -> None:
    order = OrderFacts(1, D("0.9"), 1000, held_checks=HELD_ASKS - 1)
    assert read_status(answer(OrderStatus.PARTIAL), order).asks_left == 0


@pytest.mark.parametrize(
    ("remains", "status", "refund", "held"),
    [
        (None, "Canceled", D("0.9"), None),
        (1000, "Canceled", D("0.9"), None),
        (1200, "Canceled", D("0.9"), None),
        (400, "Partial", D("0.36"), None),
        (0, None, D(0), "Canceled"),
        (-5, None, D(0), "Canceled"),
    ],
)
def test_canceled(remains: int | None, status: str | None, refund: Decimal, held: str | None) -> None:
    update = read_status(answer(OrderStatus.CANCELED, remains=remains), ORDER)
    assert (update.status, update.refund, update.held) == (status, refund, held)


@given(
    status=st.sampled_from([*OrderStatus, None]),
    remains=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    start_count=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    charge=st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False)),
    quantity=st.integers(min_value=1, max_value=10**9),
    order_charge=st.decimals(min_value=0, max_value=10**9, places=5),
)
def test_whatever_the_upstream_says_the_update_is_storable_and_the_refund_bounded(
    status: OrderStatus | None,
    remains: int | None,
    start_count: int | None,
    charge: Decimal | None,
    quantity: int,
    order_charge: Decimal,
) -> None:
    update = read_status(
        answer(status, remains=remains, start_count=start_count, charge=charge), OrderFacts(1, order_charge, quantity)
    )
    assert 0 <= update.refund <= order_charge
    assert update.remains is None or 0 <= update.remains <= quantity
    assert update.start_count is None or 0 <= update.start_count <= MAX_BIGINT
    assert update.upstream_charge is None or 0 <= update.upstream_charge < D(10) ** 15
    assert update.status in (None, "Pending", "In progress", "Processing", "Completed", "Partial", "Canceled")
    if update.held is not None:
        assert (update.ends, update.refund, update.status) == (False, 0, None)
    if not update.ends:
        assert update.refund == 0


@pytest.mark.parametrize(
    ("remains", "refund", "expected"),
    [
        (0, None, ("Completed", D(0))),
        (1000, None, ("Canceled", D("0.9"))),
        (250, None, ("Partial", D("0.225"))),
        (None, D(0), ("Completed", D(0))),
        (None, D("0.9"), ("Canceled", D("0.9"))),
        (None, D("0.1"), ("Partial", D("0.1"))),
    ],
)
def test_settlement(remains: int | None, refund: Decimal | None, expected: tuple[str, Decimal]) -> None:
    assert settlement(ORDER, remains, refund) == expected


@pytest.mark.parametrize(
    ("remains", "refund"), [(None, None), (1, D(1)), (-1, None), (1001, None), (None, D("-0.01")), (None, D("0.90001"))]
)
def test_settlement_refuses(remains: int | None, refund: Decimal | None) -> None:
    with pytest.raises(ValueError):
        settlement(ORDER, remains, refund)
