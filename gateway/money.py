"""Decimal rules for money: the one place where amounts and rates are rounded.

- Amounts (balances, charges, costs, refunds, ledger entries) are ``NUMERIC(20, 5)`` in Postgres:
  five decimal places, enough for a charge of a few thousandths of a cent (``rate × quantity / 1000``).
- Rates (price per 1000 units) are ``NUMERIC(20, 6)``.
- Never ``float``: every value is a :class:`~decimal.Decimal` from the wire to the database.

Rounding, in one sentence each:

- a charge is ``rate × units / 1000`` rounded half-up to 5 places;
- a resale rate computed by markup is rounded **up** to 4 places, so rounding never sells below the
  computed price;
- a refund of an undelivered part is ``charge × remains / quantity`` rounded **down** to 5 places,
  and never more than the charge;
- a cost (what the upstream charges us) is rounded half-up to 5 places;
- a part of an amount (``amount × part / whole``, e.g. the cost of the part of an order that was
  kept) is rounded half-up to 5 places from the exact quotient, in Python (:func:`prorate`) and in
  SQL (:func:`prorate_sql`) alike, so both give the same cent.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

AMOUNT_SCALE = 5
RATE_SCALE = 6
RESALE_RATE_SCALE = 4
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)
RATE_QUANTUM = Decimal(1).scaleb(-RATE_SCALE)
RESALE_RATE_QUANTUM = Decimal(1).scaleb(-RESALE_RATE_SCALE)
ZERO = Decimal(0)
THOUSAND = Decimal(1000)
HUNDRED = Decimal(100)
# NUMERIC(20, 5): 15 digits before the point.
MAX_AMOUNT = Decimal("999999999999999.99999")
MAX_RATE = Decimal("99999999999999.999999")
LARGEST_INPUT = Decimal(10) ** 16


class MoneyError(ValueError):
    """A value is not acceptable as money (not a number, not finite, too many digits)."""


def parse_decimal(value: object, *, field: str = "amount") -> Decimal:
    """Parse a decimal from the wire (string, int or Decimal; never float), refusing NaN/Infinity."""
    if isinstance(value, (bool, float)):
        raise MoneyError(f'{field} must be a decimal string, e.g. "10.00"')
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            raise MoneyError(f'{field} must be a decimal string, e.g. "10.00"')
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f'{field} must be a decimal string, e.g. "10.00"') from None
    else:
        raise MoneyError(f'{field} must be a decimal string, e.g. "10.00"')
    if not result.is_finite():
        raise MoneyError(f"{field} must be a finite number")
    # Anything this large is a typo or an attack, and would overflow quantize() below.
    if abs(result) >= LARGEST_INPUT:
        raise MoneyError(f"{field} is too large")
    return result


def quantize_amount(value: Decimal) -> Decimal:
    """Round an amount half-up to the stored scale."""
    return value.quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """An amount from the wire: at most 5 decimal places (more is refused, not rounded) and in range."""
    result = parse_decimal(value, field=field)
    if result != result.quantize(AMOUNT_QUANTUM, rounding=ROUND_DOWN):
        raise MoneyError(f"{field} has more than {AMOUNT_SCALE} decimal places")
    if abs(result) > MAX_AMOUNT:
        raise MoneyError(f"{field} is too large")
    return result.quantize(AMOUNT_QUANTUM)


def parse_rate(value: object, *, field: str = "rate") -> Decimal:
    """A rate per 1000 from the wire: non-negative, at most 6 decimal places, in range."""
    result = parse_decimal(value, field=field)
    if result < 0:
        raise MoneyError(f"{field} must not be negative")
    if result != result.quantize(RATE_QUANTUM, rounding=ROUND_DOWN):
        raise MoneyError(f"{field} has more than {RATE_SCALE} decimal places")
    if result > MAX_RATE:
        raise MoneyError(f"{field} is too large")
    return result.quantize(RATE_QUANTUM)


def charge_for(rate: Decimal, units: int, *, per_package: bool = False) -> Decimal:
    """What an order costs the customer: ``rate × units / 1000`` (or ``rate`` for a package)."""
    if per_package:
        return quantize_amount(rate)
    return quantize_amount(rate * units / THOUSAND)


def cost_for(cost_rate: Decimal, units: int, *, per_package: bool = False) -> Decimal:
    """What an order costs the operator upstream, in gateway currency."""
    return charge_for(cost_rate, units, per_package=per_package)


def cost_rate(upstream_rate: Decimal, fx_rate: Decimal) -> Decimal:
    """The upstream rate converted to the gateway currency, half-up to the rate scale."""
    return (upstream_rate * fx_rate).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)


def round_resale_rate(value: Decimal) -> Decimal:
    """A computed resale rate rounded up to 4 places (never below what the markup computed)."""
    if value <= 0:
        return ZERO.quantize(RATE_QUANTUM)
    return value.quantize(RESALE_RATE_QUANTUM, rounding=ROUND_CEILING).quantize(RATE_QUANTUM)


def partial_refund(charge: Decimal, quantity: int, remains: int) -> Decimal:
    """The refund for the undelivered part of an order: rounded down, never above the charge."""
    if quantity <= 0 or remains <= 0 or charge <= 0:
        return ZERO.quantize(AMOUNT_QUANTUM)
    remains = min(remains, quantity)
    refund = (charge * remains / quantity).quantize(AMOUNT_QUANTUM, rounding=ROUND_DOWN)
    return min(refund, charge)


def prorate(amount: Decimal, part: Decimal | int, whole: Decimal | int) -> Decimal:
    """``amount × part / whole`` rounded half-up to 5 places, from the exact quotient.

    For non-negative values and a positive ``whole`` (amounts, quantities). Exact, not through a
    rounded division: the SQL twin, :func:`prorate_sql`, gives the same result to the last digit.
    """
    if amount < 0 or part < 0 or whole <= 0:
        raise ValueError("prorate takes a non-negative amount and part and a positive whole")
    exact = Fraction(amount) * Fraction(part) / Fraction(whole) * 10**AMOUNT_SCALE
    # Half-up on a non-negative fraction n/d: floor(n/d + 1/2) = (2n + d) // 2d.
    units = (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)
    return Decimal(f"{units}E-{AMOUNT_SCALE}")  # exact, whatever the context's precision


def prorate_sql(amount: str, part: str, whole: str) -> str:
    """The SQL of :func:`prorate` over three SQL expressions of type NUMERIC (or integer).

    Postgres' ``/`` rounds its quotient to about 16 significant digits before ``round()`` rounds
    it again, which can differ from the exact half-up in the last place; ``div()`` truncates the
    exact quotient, so the half-up is done on integers here, as in Python.
    """
    scale = 10**AMOUNT_SCALE
    return f"(div(2 * ({amount}) * ({part}) * {scale} + ({whole}), 2 * ({whole})) * {AMOUNT_QUANTUM}::numeric)"


def format_money(value: Decimal) -> str:
    """A decimal string for the wire: at least 2 places, trailing zeros beyond that dropped."""
    text = format(value.normalize(), "f") if value != 0 else "0"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{whole}.{frac}"
