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

Final statuses move money, so they are applied only when the same answer says how much
(:func:`gateway.orders.refunds.on_final_status` decides; ``completed_with_remains`` is flagged
here). A final status whose refund the answer does not determine is **held**: the customer keeps
seeing the previous status, the gateway asks again (``HELD_ASKS`` answers in all), then stops and
the order waits for the operator to settle it. Never the whole charge by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.lifecycle import FINAL_STATUSES, OrderStatus
from gateway.money import MAX_AMOUNT, ZERO
from gateway.orders.refunds import OrderFacts, on_final_status
from gateway.upstream import StatusAnswer

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


def read_status(answer: StatusAnswer, order: OrderFacts) -> StatusUpdate:
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

    shown: str | None = status.value if status is not None else None
    ends = False
    refund = ZERO
    held: str | None = None
    asks_left = 0
    if status is OrderStatus.COMPLETED and reported is not None and reported > 0:
        reading.flag("completed_with_remains", f"Completed with remains {reported}")
    if status in FINAL_STATUSES:
        assert status is not None
        ending = on_final_status(status, reported, order)
        if ending.ends:
            ends, refund, shown = True, ending.refund, ending.shown
        else:
            assert ending.held is not None
            assert ending.problem is not None
            held = ending.held.value
            reading.flag(*ending.problem)
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
