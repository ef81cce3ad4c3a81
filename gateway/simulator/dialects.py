"""Answer shapes of the two panel dialects (PROTOCOL.md §2, §4).

``documented`` follows the seed document: JSON integers for ids and limits, money with two or more
decimals, lists for multi answers. ``perfectpanel`` follows the common panel software: money with
five decimals, ``min``/``max`` as strings, multi-status keyed by order id, ``refill`` ids as
strings, ``cancel`` as ``1`` or ``{"error": ...}`` and no ``dripfeed`` flag in ``services``.
Both write an order's ``Panel.sloppy_status`` override over its status answers (``sloppy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gateway.simulator.catalog import Service
from gateway.simulator.config import Dialect
from gateway.simulator.engine import OrderView
from gateway.simulator.errors import PanelError
from gateway.simulator.lifecycle import RefillStatus
from gateway.simulator.money import format_fixed, format_short

Json = dict[str, Any] | list[Any]
# Per-id outcomes of a multi action: the id as asked, and a result or the refusal.
Results = Sequence[tuple[int, Any]]


def error_answer(message: str) -> dict[str, Any]:
    """The protocol's error answer, identical in both dialects."""
    return {"error": message}


def sloppy(view: OrderView, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with the order's ``sloppy_status`` fields written over it, then the omitted ones
    removed (an omitted name wins over a written one)."""
    answer.update(view.status_fields)
    for name in view.status_omit:
        answer.pop(name, None)
    return answer


class DocumentedDialect:
    """Shapes of the seed document; also the base the other dialect departs from."""

    def __init__(self, currency: str) -> None:
        self.currency = currency

    def money(self, amount: Decimal) -> str:
        """A money value as a decimal string."""
        return format_short(amount)

    def order_added(self, view: OrderView) -> Json:
        """The answer to ``add``."""
        return {"order": view.order_id}

    def order_status(self, view: OrderView) -> dict[str, Any]:
        """The answer to single ``status``, with the order's ``sloppy_status`` override applied."""
        return sloppy(view, self.status_fields(view))

    def status_fields(self, view: OrderView) -> dict[str, Any]:
        """An order's status fields as an honest panel shows them."""
        return {
            "status": view.status.value,
            "charge": self.money(view.charge),
            "start_count": str(view.start_count),
            "remains": str(view.remains),
            "currency": self.currency,
        }

    def order_statuses(self, results: Results) -> Json:
        """The answer to multi ``status``: a list with an ``order`` field per item."""
        return [
            {"order": order_id, "error": outcome.message}
            if isinstance(outcome, PanelError)
            else sloppy(outcome, {"order": order_id, **self.status_fields(outcome)})
            for order_id, outcome in results
        ]

    def service(self, service: Service) -> dict[str, Any]:
        """One entry of ``services``."""
        return {
            "service": service.service_id,
            "name": service.name,
            "type": service.type.value,
            "category": service.category,
            "rate": self.money(service.rate),
            "min": service.min_quantity,
            "max": service.max_quantity,
            "refill": service.refill,
            "cancel": service.cancel,
            "dripfeed": service.dripfeed,
        }

    def services(self, services: Sequence[Service]) -> Json:
        """The answer to ``services``."""
        return [self.service(s) for s in services]

    def refill_created(self, refill_id: int) -> Json:
        """The answer to single ``refill``."""
        return {"refill": refill_id}

    def refills_created(self, results: Results) -> Json:
        """The answer to multi ``refill``: per item the refill id or an error object."""
        return [
            {"order": order_id, "refill": error_answer(outcome.message)}
            if isinstance(outcome, PanelError)
            else {"order": order_id, "refill": outcome}
            for order_id, outcome in results
        ]

    def refill_status(self, status: RefillStatus) -> Json:
        """The answer to single ``refill_status``."""
        return {"status": status.value}

    def refill_statuses(self, results: Results) -> Json:
        """The answer to multi ``refill_status``: per item the status or an error object."""
        return [
            {"refill": refill_id, "status": error_answer(outcome.message)}
            if isinstance(outcome, PanelError)
            else {"refill": refill_id, "status": outcome.value}
            for refill_id, outcome in results
        ]

    def cancels(self, results: Results) -> Json:
        """The answer to ``cancel``: ``canceled`` true, or false with the reason."""
        return [
            {"order": order_id, "canceled": False, "error": outcome.message}
            if isinstance(outcome, PanelError)
            else {"order": order_id, "canceled": True}
            for order_id, outcome in results
        ]

    def balance(self, amount: Decimal) -> Json:
        """The answer to ``balance``."""
        return {"balance": self.money(amount), "currency": self.currency}


class PerfectPanelDialect(DocumentedDialect):
    """Shapes of the common panel software, habits included."""

    def money(self, amount: Decimal) -> str:
        """Five decimals, as that software stores money: ``"0.27819"``, ``"100.84292"``."""
        return format_fixed(amount)

    def status_fields(self, view: OrderView) -> dict[str, Any]:
        """Same fields, in that software's order."""
        return {
            "charge": self.money(view.charge),
            "start_count": str(view.start_count),
            "status": view.status.value,
            "remains": str(view.remains),
            "currency": self.currency,
        }

    def order_statuses(self, results: Results) -> Json:
        """An object keyed by the order id as a string."""
        return {
            str(order_id): error_answer(outcome.message)
            if isinstance(outcome, PanelError)
            else self.order_status(outcome)
            for order_id, outcome in results
        }

    def service(self, service: Service) -> dict[str, Any]:
        """Rate as stored, limits as strings, no ``dripfeed`` flag, a ``desc`` field."""
        return {
            "service": service.service_id,
            "name": service.name,
            "type": service.type.value,
            "category": service.category,
            "rate": str(service.rate),
            "min": str(service.min_quantity),
            "max": str(service.max_quantity),
            "refill": service.refill,
            "cancel": service.cancel,
            "desc": service.description,
        }

    def refill_created(self, refill_id: int) -> Json:
        """The refill id as a string, as that software answers it."""
        return {"refill": str(refill_id)}

    def cancels(self, results: Results) -> Json:
        """``cancel: 1`` on success, ``cancel: {"error": ...}`` otherwise."""
        return [
            {"order": order_id, "cancel": error_answer(outcome.message)}
            if isinstance(outcome, PanelError)
            else {"order": order_id, "cancel": 1}
            for order_id, outcome in results
        ]


def dialect_for(dialect: Dialect, currency: str) -> DocumentedDialect:
    """The renderer for a configured dialect."""
    if dialect is Dialect.PERFECTPANEL:
        return PerfectPanelDialect(currency)
    return DocumentedDialect(currency)
