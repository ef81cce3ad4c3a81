"""What came of sending an order upstream, and the outcomes still waiting to be recorded.

An outcome is known the moment the upstream answered; recording it is a database write that can
fail (the database restarts, a connection drops). The customer is told the truth either way (an
accepted order is answered with its id), and the outcome waits here, in this process, until a
background retry records it. A process that dies before that leaves the order ``submitting``, which
the recovery sweep turns ``unknown`` for the operator; a late record still lands on it then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Placed:
    upstream_order_id: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Refused for the customer's input, or the upstream no longer sells the service
    (``service_gone``: another route may still take the order); ``message`` is the protocol error
    to show."""

    message: str
    service_gone: bool = False


@dataclass(frozen=True, slots=True)
class Unknown:
    error: str


@dataclass(frozen=True, slots=True)
class Retry:
    error: str


Outcome = Placed | Failed | Unknown | Retry


@dataclass(frozen=True, slots=True)
class OrderToSend:
    """An order about to be sent: where to (its current route) and what."""

    id: int
    provider_id: int
    upstream_service_id: int
    params: dict[str, Any]
    created_at: datetime
    attempts: int
    request_id: str | None
    service_id: int
    route_priority: int
    quantity: int


@dataclass(slots=True)
class PendingOutcome:
    """An outcome whose record failed: what to record, and the upstream attempts that led to it."""

    order: OrderToSend
    outcome: Outcome
    calls: list[dict[str, Any]]
    failures: int = 1


class PendingOutcomes:
    """This process' outcomes waiting for the database (by order id; at most one per order).

    A plain class, not a dataclass: Litestar inspects the Runtime's dataclass fields when it
    injects it, and cannot type a union of dataclasses."""

    def __init__(self) -> None:
        self.items: dict[int, PendingOutcome] = {}

    def hold(self, pending: PendingOutcome) -> None:
        self.items[pending.order.id] = pending

    def __len__(self) -> int:
        return len(self.items)
