"""What one upstream status answer means for one order: the values to store, the refund, and the
anomalies to show the operator. Pure functions, no I/O: the whole policy for hostile values is here.

The adapter has already parsed the answer (numbers are numbers, statuses canonical or ``None``);
nothing here trusts a value because it parsed. Per field:

- **status**: a spelling the adapter does not know keeps the order's status as it was (anomaly
  ``unknown_status``); the order is still followed.
- **remains**: negative means over-delivered: stored as 0, nothing to refund (``negative_remains``);
  more than the quantity is stored as the quantity (``remains_above_quantity``); beyond BIGINT or
  unreadable it is treated as absent (``remains_out_of_range`` / ``unreadable_value``).
- **start_count**: negative, beyond BIGINT or unreadable: not stored (``bad_start_count``).
- **charge** (what the upstream billed): negative, beyond NUMERIC(20,5) or unreadable: not stored
  (``bad_charge``).

Final statuses move money, so they are applied only when the same answer says how much:

- **Completed**: no refund (remains above 0 is kept and flagged ``completed_with_remains``).
- **Partial**: refunded ``charge × remains / quantity`` (rounded down) from the remains reported in
  this answer, when 0 < remains <= quantity. Without one (absent, ``"Unknown"``, unreadable,
  out of range) or with a contradictory one (0, negative, above the quantity) the status is
  **held**: the customer keeps seeing the previous status, the gateway asks again
  (``HELD_ASKS`` answers in all), then stops and the order waits for the operator to settle it.
  Never the whole charge by default.
- **Canceled**: the whole charge, when nothing was delivered (remains absent or >= quantity);
  from the reported remains when 0 < remains < quantity (partial delivery, shown to the customer
  as ``Partial``); held like Partial when remains is 0 or negative (contradictory).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.money import MAX_AMOUNT, ZERO, partial_refund
from gateway.upstream import OrderState, OrderStatus

MAX_BIGINT = 2**63 - 1
# Answers without a usable remains before a held final status waits for the operator.
HELD_ASKS = 3
_DETAIL_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A value about one order that made no sense; ``detail`` is short and shows what was sent."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the status sync knows of an order when it reads an answer for it."""

    id: int
    charge: Decimal
    quantity: int
    held_checks: int = 0


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """The outcome of reading one answer. ``None`` fields keep what the order has."""

    status: str | None
    raw_status: str
    start_count: int | None
    remains: int | None
    upstream_charge: Decimal | None
    # The answer ends the order (its status is final); ``refund`` goes back to the customer.
    ends: bool
    refund: Decimal
    # A final status held back for lack of a usable remains; ``asks_left`` 0: stop asking.
    held: str | None
    asks_left: int
    anomalies: tuple[Anomaly, ...]


def _detail(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


class _Reading:
    """Collects the anomalies of one answer, once each."""

    def __init__(self) -> None:
        self.anomalies: dict[tuple[str, str], Anomaly] = {}

    def flag(self, kind: str, detail: str) -> None:
        anomaly = Anomaly(kind, _detail(detail))
        self.anomalies.setdefault((anomaly.kind, anomaly.detail), anomaly)


def _count(value: int | None) -> str:
    return "none" if value is None else str(value)[:40]


def read_status(answer: OrderStatus, order: OrderFacts) -> StatusUpdate:
    """Decide what ``answer`` does to ``order`` (see the module docstring for the rules)."""
    reading = _Reading()
    for note in answer.unreadable:
        reading.flag("unreadable_value", note)
    status = answer.status
    if status is None:
        reading.flag("unknown_status", f"status {answer.raw_status!r} is not a known status")

    start_count = answer.start_count
    if start_count is not None and not 0 <= start_count <= MAX_BIGINT:
        reading.flag("bad_start_count", f"start_count {_count(start_count)}")
        start_count = None

    charge = answer.charge
    if charge is not None and not ZERO <= charge <= MAX_AMOUNT:
        reading.flag("bad_charge", f"charge {str(charge)[:40]}")
        charge = None

    # ``reported`` is what this answer says (None: nothing usable); ``stored`` what is shown.
    reported = answer.remains
    if reported is not None and abs(reported) > MAX_BIGINT:
        reading.flag("remains_out_of_range", f"remains {_count(reported)}")
        reported = None
    stored = reported
    if reported is not None and reported < 0:
        reading.flag("negative_remains", f"remains {reported}: over-delivered, nothing to refund")
        stored = 0
    elif reported is not None and reported > order.quantity:
        reading.flag("remains_above_quantity", f"remains {reported} of a quantity of {order.quantity}")
        stored = order.quantity

    shown = status.value if status is not None else None
    ends = False
    refund = ZERO
    held: str | None = None
    if status is OrderState.COMPLETED:
        ends = True
        if reported is not None and reported > 0:
            reading.flag("completed_with_remains", f"Completed with remains {reported}")
    elif status is OrderState.PARTIAL:
        if reported is not None and 0 < reported <= order.quantity:
            ends, refund = True, partial_refund(order.charge, order.quantity, reported)
        else:
            held = "Partial"
            said = "no usable remains" if answer.remains is None else f"remains {_count(answer.remains)}"
            reading.flag("partial_without_remains", f"Partial with {said}")
    elif status is OrderState.CANCELED:
        if reported is None or reported >= order.quantity:
            ends, refund = True, Decimal(order.charge)
        elif reported > 0:
            # Delivered in part, then canceled: the customer pays for what was delivered.
            ends, refund, shown = True, partial_refund(order.charge, order.quantity, reported), "Partial"
        else:
            held = "Canceled"
            reading.flag("canceled_with_no_remains", f"Canceled with remains {reported}: contradictory")

    asks_left = 0
    if held is not None:
        shown = None  # the customer sees the final status only together with its refund
        stored = None
        asks_left = max(0, HELD_ASKS - (order.held_checks + 1))
    return StatusUpdate(
        status=shown,
        raw_status=answer.raw_status,
        start_count=start_count,
        remains=stored,
        upstream_charge=charge,
        ends=ends,
        refund=refund,
        held=held,
        asks_left=asks_left,
        anomalies=tuple(reading.anomalies.values()),
    )


def settlement(order: OrderFacts, remains: int | None, refund: Decimal | None) -> tuple[str, Decimal]:
    """The final status and refund of an order the operator settles, from the units not
    delivered (``remains``) or the amount to give back (``refund``): exactly one of them.

    With remains: 0 is Completed, the whole quantity Canceled (the whole charge back), anything
    between Partial (refund rounded down like any Partial). With a refund: nothing back is
    Completed, the whole charge Canceled, anything between Partial. Raises ``ValueError`` (with a
    message for the operator) for values out of range.
    """
    if (remains is None) == (refund is None):
        raise ValueError("give either remains or refund")
    if remains is not None:
        if not 0 <= remains <= order.quantity:
            raise ValueError(f"remains must be between 0 and the quantity {order.quantity}")
        if remains == 0:
            return "Completed", ZERO
        if remains == order.quantity:
            return "Canceled", Decimal(order.charge)
        return "Partial", partial_refund(order.charge, order.quantity, remains)
    assert refund is not None
    if not ZERO <= refund <= order.charge:
        raise ValueError(f"refund must be between 0 and the charge {order.charge}")
    if refund == 0:
        return "Completed", refund
    if refund == order.charge:
        return "Canceled", refund
    return "Partial", refund
