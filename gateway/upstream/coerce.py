"""Lenient readers for the scalar values panels send: numbers as JSON numbers or strings,
flags in several spellings, statuses in several spellings.

Lenient only where the meaning is certain: ``"50.000"`` is 50, ``"Cancelled"`` is Canceled. A
value whose meaning is not certain is refused (``ValueError``) or, for a status, kept raw and
flagged as unknown: a wrong guess about money or an order's state costs more than a flagged value.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from gateway.upstream.types import OrderStatus, RefillStatus

__all__ = [
    "is_no_value",
    "order_status",
    "refill_status",
    "to_bool",
    "to_decimal",
    "to_int",
]

# Values some panels put where a number is not known (yet): they mean "no value", not zero.
_NO_VALUE = frozenset({"", "unknown", "n/a", "na", "none", "null", "-"})
_STATUS_NOISE = re.compile(r"[\s_\-]+")

_ORDER_SPELLINGS: dict[str, OrderStatus] = {
    "pending": OrderStatus.PENDING,
    "inprogress": OrderStatus.IN_PROGRESS,
    "active": OrderStatus.IN_PROGRESS,
    "processing": OrderStatus.PROCESSING,
    "completed": OrderStatus.COMPLETED,
    "complete": OrderStatus.COMPLETED,
    "partial": OrderStatus.PARTIAL,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "refunded": OrderStatus.CANCELED,
}

_REFILL_SPELLINGS: dict[str, RefillStatus] = {
    "pending": RefillStatus.PENDING,
    "inprogress": RefillStatus.IN_PROGRESS,
    "active": RefillStatus.IN_PROGRESS,
    "completed": RefillStatus.COMPLETED,
    "complete": RefillStatus.COMPLETED,
    "rejected": RefillStatus.REJECTED,
}

_TRUE = frozenset({"1", "true", "yes", "on"})
# Counts and ids beyond this many digits are nonsense; refusing them early also keeps ``int()``
# from building an integer of millions of digits out of a few bytes like "1e999999999".
MAX_INT_DIGITS = 30
_FALSE = frozenset({"0", "false", "no", "off", ""})


def to_decimal(value: object) -> Decimal:
    """A finite ``Decimal`` from a JSON number (already a ``Decimal``/``int``) or numeric string."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # repr: the shortest spelling, not the binary expansion
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value[:40]!r}") from None
    else:
        raise ValueError(f"not a number: {type(value).__name__}")
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


def to_int(value: object) -> int:
    """An ``int`` from ``157``, ``"157"``, ``" 157 "`` or ``"50.000"``; refuses fractions."""
    number = to_decimal(value)
    if number.adjusted() >= MAX_INT_DIGITS:
        raise ValueError("a number out of range")
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {number}")
    return int(number)


def is_no_value(value: object) -> bool:
    """Whether a panel means "no value (yet)": absent, null, empty, ``"Unknown"``, ``"n/a"``..."""
    return value is None or (isinstance(value, str) and value.strip().lower() in _NO_VALUE)


def to_bool(value: object) -> bool:
    """A service flag: ``true``/``1``/``"1"``/``"true"``/``"yes"``; absent or anything else is
    ``False`` (claiming a refill or cancel capability the upstream may not have is the worse
    mistake)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return False


def to_optional_bool(value: object) -> bool | None:
    """``True``/``False`` for a clear yes/no spelling, ``None`` otherwise (cancel outcomes)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in ("success", "ok"):
            return True
        if word in _FALSE or word in ("fail", "failed"):
            return False
    return None


def _status_key(raw: str) -> str:
    return _STATUS_NOISE.sub("", raw.lower())


def order_status(raw: str) -> OrderStatus | None:
    """The canonical order status for a panel's spelling, ``None`` when unknown (never guessed)."""
    return _ORDER_SPELLINGS.get(_status_key(raw))


def refill_status(raw: str) -> RefillStatus | None:
    """The canonical refill status for a panel's spelling, ``None`` when unknown."""
    return _REFILL_SPELLINGS.get(_status_key(raw))
