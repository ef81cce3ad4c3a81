"""Reading scalar values: status spellings, numbers as numbers or strings, flags."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.upstream import OrderStatus, RefillStatus
from gateway.upstream.coerce import is_no_value, order_status, refill_status, to_bool, to_int

# --- statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", OrderStatus.PENDING),
        ("In progress", OrderStatus.IN_PROGRESS),
        ("Inprogress", OrderStatus.IN_PROGRESS),
        ("in progress", OrderStatus.IN_PROGRESS),
        ("IN_PROGRESS", OrderStatus.IN_PROGRESS),
        ("Active", OrderStatus.IN_PROGRESS),
        ("Processing", OrderStatus.PROCESSING),
        ("processing", OrderStatus.PROCESSING),
        ("Completed", OrderStatus.COMPLETED),
        ("Partial", OrderStatus.PARTIAL),
        ("Canceled", OrderStatus.CANCELED),
        ("Cancelled", OrderStatus.CANCELED),
        ("canceled", OrderStatus.CANCELED),
        ("Refunded", OrderStatus.CANCELED),
        (" completed ", OrderStatus.COMPLETED),
        ("Weird", None),
        ("Fail", None),
        ("Error", None),
    ],
)
def test_order_status_spellings(raw: str, expected: OrderStatus | None) -> None:
    assert order_status(raw) is expected


def test_canonical_names_are_exactly_the_protocols() -> None:
    assert [s.value for s in OrderStatus] == [
        "Pending",
        "In progress",
        "Processing",
        "Completed",
        "Partial",
        "Canceled",
    ]
    assert [s.value for s in RefillStatus] == ["Pending", "In progress", "Completed", "Rejected"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", RefillStatus.PENDING),
        ("Inprogress", RefillStatus.IN_PROGRESS),
        ("completed", RefillStatus.COMPLETED),
        ("Rejected", RefillStatus.REJECTED),
        ("Canceled", None),
    ],
)
def test_refill_status_spellings(raw: str, expected: RefillStatus | None) -> None:
    assert refill_status(raw) is expected


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
