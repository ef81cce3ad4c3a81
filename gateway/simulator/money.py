"""Money arithmetic of the simulated panel: Decimal only, one rounding rule.

Panels of the common software keep five decimal places ("0.27819", "100.84292"); the simulator
does the same so that its charges look like the real thing, and renders fewer places only in the
documented dialect.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MONEY_PLACES = Decimal("0.00001")
ZERO = Decimal(0)


def to_money(amount: Decimal) -> Decimal:
    """Round an amount to the panel's precision (five places, half up)."""
    return amount.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def charge_for(rate: Decimal, units: int) -> Decimal:
    """The charge for ``units`` at ``rate`` per 1000."""
    return to_money(rate * units / 1000)


def format_short(amount: Decimal) -> str:
    """Render with at least two decimals and no trailing zeros beyond them: ``1.00``, ``0.0045``."""
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def format_fixed(amount: Decimal) -> str:
    """Render with the panel's five decimals: ``0.27819``, ``50.00000``."""
    return format(to_money(amount), "f")
