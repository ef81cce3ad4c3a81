"""Reading scalar values: status spellings, numbers as numbers or strings, flags."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.upstream import OrderState, RefillState
from gateway.upstream.coerce import is_no_value, order_state, refill_state, to_bool, to_int

# --- statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", OrderState.PENDING),
        ("In progress", OrderState.IN_PROGRESS),
        ("Inprogress", OrderState.IN_PROGRESS),
        ("in progress", OrderState.IN_PROGRESS),
        ("IN_PROGRESS", OrderState.IN_PROGRESS),
        ("Active", OrderState.IN_PROGRESS),
        ("Processing", OrderState.PROCESSING),
        ("processing", OrderState.PROCESSING),
        ("Completed", OrderState.COMPLETED),
        ("Partial", OrderState.PARTIAL),
        ("Canceled", OrderState.CANCELED),
        ("Cancelled", OrderState.CANCELED),
        ("canceled", OrderState.CANCELED),
        ("Refunded", OrderState.CANCELED),
        (" completed ", OrderState.COMPLETED),
        ("Weird", None),
        ("Fail", None),
        ("Error", None),
    ],
)
def test_order_status_spellings(raw: str, expected: OrderState | None) -> None:
    assert order_state(raw) is expected


def test_canonical_names_are_exactly_the_protocols() -> None:
    assert [s.value for s in OrderState] == [
        "Pending",
        "In progress",
        "Processing",
        "Completed",
        "Partial",
        "Canceled",
    ]
    assert [s.value for s in RefillState] == ["Pending", "In progress", "Completed", "Rejected"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", RefillState.PENDING),
        ("Inprogress", RefillState.IN_PROGRESS),
        ("completed", RefillState.COMPLETED),
        ("Rejected", RefillState.REJECTED),
        ("Canceled", None),
    ],
)
def test_refill_status_spellings(raw: str, expected: RefillState | None) -> None:
    assert refill_state(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [(157, 157), ("157", 157), (" 157 ", 157), ("50.000", 50), (Decimal("7"), 7)]
)
def test_to_int(raw: Any, expected: int) -> None:
    assert to_int(raw) == expected


@pytest.mark.parametrize("raw", [True, "1.5", "abc", None, "Infinity", [1], "1e999999999", 10**40])
def test_to_int_refuses(raw: Any) -> None:
    with pytest.raises(ValueError):
        to_int(raw)


def test_no_value_spellings_and_flags() -> None:
    assert [is_no_value(v) for v in (None, "", " Unknown ", "n/a", "-", "null")] == [True] * 6
    assert [is_no_value(v) for v in ("0", 0, "12", "abc")] == [False] * 4
    assert [to_bool(v) for v in (True, 1, "1", "true", "Yes")] == [True] * 5
    assert [to_bool(v) for v in (False, 0, "0", None, "maybe", 2)] == [False] * 6
