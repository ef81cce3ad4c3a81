"""How much goes back to a customer, and when: every refund the gateway makes is decided here.

- An order that never reached the upstream (refused for the customer's input, canceled while
  queued or past its maximum age, resolved as failed by the operator) gets its whole charge back:
  :func:`unsent`.
- An order the upstream ended gets back what its final status, and the remains reported **in the
  same answer**, say: :func:`on_final_status`. A refund the answer does not determine is never
  guessed: the final status is held (the gateway asks again, then the operator decides).
- An order the operator settles gets back what the operator says: :func:`settlement`.

Rounding is gateway/money.py's: the undelivered part is ``charge × remains / quantity`` rounded
down, never more than the charge. The refund itself is written in the same statement (or
transaction) as the state or status that causes it, and at most once (the ledger's guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.lifecycle import OrderStatus
from gateway.money import ZERO, partial_refund


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What a refund decision needs to know of an order."""

    id: int
    charge: Decimal
    quantity: int
    held_checks: int = 0


@dataclass(frozen=True, slots=True)
class Ending:
    """What a final status does. ``shown``: the status customers see (None: keep the current
    one, the status is held); ``held``: the final status waiting for a usable remains;
    ``problem``: why it is held (an anomaly's detail), or None."""

    shown: OrderStatus | None
    refund: Decimal
    held: OrderStatus | None = None
    problem: tuple[str, str] | None = None

    @property
    def ends(self) -> bool:
        return self.held is None


def unsent(order_charge: Decimal) -> Decimal:
    """An order that never reached the upstream: the whole charge."""
    return Decimal(order_charge)


def on_final_status(status: OrderStatus, remains: int | None, order: OrderFacts) -> Ending:
    """What the upstream's final ``status`` gives back, from the ``remains`` of the same answer
    (None when it gave none that is usable; negative means over-delivered).

    Completed: nothing. Partial: the undelivered part when 0 < remains <= quantity, else held.
    Canceled: everything when nothing was delivered (remains absent or at least the quantity);
    the undelivered part, shown as Partial, when some was; held when it says all was delivered.
    """
    if status is OrderStatus.COMPLETED:
        return Ending(OrderStatus.COMPLETED, ZERO)
    if status is OrderStatus.PARTIAL:
        if remains is not None and 0 < remains <= order.quantity:
            return Ending(OrderStatus.PARTIAL, partial_refund(order.charge, order.quantity, remains))
        said = "no usable remains" if remains is None else f"remains {remains}"
        return Ending(None, ZERO, OrderStatus.PARTIAL, ("partial_without_remains", f"Partial with {said}"))
    if status is OrderStatus.CANCELED:
        if remains is None or remains >= order.quantity:
            return Ending(OrderStatus.CANCELED, unsent(order.charge))
        if remains > 0:
            # Delivered in part, then canceled: the customer pays for what was delivered.
            return Ending(OrderStatus.PARTIAL, partial_refund(order.charge, order.quantity, remains))
        return Ending(
            None,
            ZERO,
            OrderStatus.CANCELED,
            ("canceled_with_no_remains", f"Canceled with remains {remains}: contradictory"),
        )
    raise ValueError(f"{status} is not a final status")


def settlement(order: OrderFacts, remains: int | None, refund: Decimal | None) -> tuple[OrderStatus, Decimal]:
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
            return OrderStatus.COMPLETED, ZERO
        if remains == order.quantity:
            return OrderStatus.CANCELED, unsent(order.charge)
        return OrderStatus.PARTIAL, partial_refund(order.charge, order.quantity, remains)
    assert refund is not None
    if not ZERO <= refund <= order.charge:
        raise ValueError(f"refund must be between 0 and the charge {order.charge}")
    if refund == 0:
        return OrderStatus.COMPLETED, refund
    if refund == order.charge:
        return OrderStatus.CANCELED, refund
    return OrderStatus.PARTIAL, refund
