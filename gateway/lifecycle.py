"""The life of an order and of a refill: their statuses, their dispatch states, and the only
transitions between states that any code may write.

Statuses are what customers see (the protocol's names, PROTOCOL.md section 2); states are the
gateway's own dispatch bookkeeping (README: the life of an order). Every write that changes a
state names its target and goes through :func:`order_sources` / :func:`refill_sources`, which
say from which states that target may be reached; the SQL then changes a row only if it is in
one of them (``WHERE state = ANY(...)``), so concurrent writers can never skip a step.

A core module: the upstream adapter, the models and the domain all read their names from here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = [
    "FINAL_REFILL_STATUSES",
    "FINAL_STATUSES",
    "HELD_STATUSES",
    "ORDER_TRANSITIONS",
    "REFILL_TRANSITIONS",
    "OrderState",
    "OrderStatus",
    "RefillState",
    "RefillStatus",
    "order_sources",
    "refill_sources",
    "sql_list",
]


class OrderStatus(enum.StrEnum):
    """What customers see of an order (the exact protocol strings)."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    CANCELED = "Canceled"


# An order with one of these is finished: never checked again, refunded at most once.
FINAL_STATUSES = (OrderStatus.COMPLETED, OrderStatus.PARTIAL, OrderStatus.CANCELED)
# The final statuses whose refund needs a remains the upstream may not give (held until it does).
HELD_STATUSES = (OrderStatus.PARTIAL, OrderStatus.CANCELED)


class RefillStatus(enum.StrEnum):
    """What customers see of a refill (the exact protocol strings)."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    REJECTED = "Rejected"


FINAL_REFILL_STATUSES = (RefillStatus.COMPLETED, RefillStatus.REJECTED)


class OrderState(enum.StrEnum):
    """Where the gateway is with sending an order upstream."""

    QUEUED = "queued"  # charged; definitely not placed upstream yet
    SUBMITTING = "submitting"  # being sent
    PLACED = "placed"  # the upstream's order id is known
    UNKNOWN = "unknown"  # may have arrived upstream: never re-sent, the operator resolves it
    FAILED = "failed"  # refused upstream for the customer's input; refunded
    CANCELED = "canceled"  # never placed; refunded


class RefillState(enum.StrEnum):
    """Where the gateway is with sending a refill request upstream."""

    SUBMITTING = "submitting"
    PLACED = "placed"
    UNKNOWN = "unknown"
    FAILED = "failed"


_O = OrderState
# Every allowed move, and the reason for it. An outcome recorded late (the database was down)
# may land on an order the recovery sweep made unknown meanwhile: the upstream's answer is the
# truth the operator was waiting for, hence the moves out of UNKNOWN.
ORDER_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    # claimed for a send; canceled by the customer or past its maximum age
    _O.QUEUED: frozenset({_O.SUBMITTING, _O.CANCELED}),
    # the send's outcome; or the sweep (its sender died)
    _O.SUBMITTING: frozenset({_O.PLACED, _O.FAILED, _O.UNKNOWN, _O.QUEUED, _O.CANCELED}),
    # the operator's resolve, or an outcome recorded late
    _O.UNKNOWN: frozenset({_O.PLACED, _O.FAILED, _O.UNKNOWN, _O.QUEUED, _O.CANCELED}),
    _O.PLACED: frozenset(),
    _O.FAILED: frozenset(),
    _O.CANCELED: frozenset(),
}

_R = RefillState
REFILL_TRANSITIONS: dict[RefillState, frozenset[RefillState]] = {
    # the request's outcome; or the sweep (its sender died)
    _R.SUBMITTING: frozenset({_R.PLACED, _R.FAILED, _R.UNKNOWN}),
    # the operator's resolve
    _R.UNKNOWN: frozenset({_R.PLACED, _R.FAILED}),
    _R.PLACED: frozenset(),
    _R.FAILED: frozenset(),
}


def order_sources(target: OrderState, *, only: Iterable[OrderState] | None = None) -> list[str]:
    """The states an order may move to ``target`` from (narrowed to ``only``), for a
    ``WHERE state = ANY(...)``. Asking for a move the table does not allow is a bug: ValueError."""
    return _sources(ORDER_TRANSITIONS, target, only)


def refill_sources(target: RefillState, *, only: Iterable[RefillState] | None = None) -> list[str]:
    """:func:`order_sources` for refills."""
    return _sources(REFILL_TRANSITIONS, target, only)


def _sources(
    table: dict[OrderState, frozenset[OrderState]] | dict[RefillState, frozenset[RefillState]],
    target: OrderState | RefillState,
    only: Iterable[OrderState] | Iterable[RefillState] | None,
) -> list[str]:
    allowed = [str(state) for state, targets in table.items() if target in targets]
    if only is not None:
        wanted = [str(state) for state in only]
        refused = [state for state in wanted if state not in allowed]
        if refused:
            raise ValueError(f"no transition from {refused} to {target}")
        allowed = wanted
    if not allowed:
        raise ValueError(f"nothing may move to {target}")
    return allowed


def sql_list(values: Iterable[str]) -> str:
    """``('a', 'b')`` for SQL text built from these constants (never from input)."""
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + ")"
