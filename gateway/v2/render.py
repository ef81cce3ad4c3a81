"""Shaping domain results into the customer's dialect (PROTOCOL.md section 2): every answer shape
of the v2 protocol is built here, nowhere else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import INCORRECT_ORDER, REFILL_NOT_FOUND
from gateway.lifecycle import OrderState, OrderStatus
from gateway.money import format_money

# What the customer sees while the gateway still holds the order (not yet placed upstream).
_HELD_STATES = {OrderState.QUEUED: "Pending", OrderState.SUBMITTING: "Pending", OrderState.UNKNOWN: "Pending"}

PERFECTPANEL = "perfectpanel"


def order_status(row: Any, currency: str) -> dict[str, object]:
    """One order's status answer; money and counts as strings, like the panels."""
    status = _HELD_STATES.get(row.state, row.status)
    remains = row.remains if row.remains is not None else (row.quantity if status != OrderStatus.COMPLETED else 0)
    return {
        "status": status,
        "charge": format_money(row.charge - row.refunded),
        "start_count": str(row.start_count if row.start_count is not None else 0),
        "remains": str(remains),
        "currency": currency,
    }


def order_statuses(dialect: str, ids: Sequence[int | str], found: Mapping[int, Any], currency: str) -> object:
    """A multi ``status`` answer: one entry per id as asked (a foreign or unknown id is an error)."""
    answers: list[tuple[int | str, dict[str, object]]] = []
    for item in ids:
        row = found.get(item) if isinstance(item, int) else None
        answers.append((item, order_status(row, currency) if row else {"error": INCORRECT_ORDER}))
    return multi(dialect, "order", answers)


def multi(dialect: str, id_field: str, answers: Sequence[tuple[int | str, dict[str, object]]]) -> object:
    """A per-id answer: a list of objects with the id (documented) or an object keyed by id."""
    if dialect == PERFECTPANEL:
        return {str(item): answer for item, answer in answers}
    return [{id_field: item, **answer} for item, answer in answers]


def refills(ids: Sequence[int | str], created: Mapping[int | str, int], errors: Mapping[int | str, str]) -> object:
    """A multi ``refill`` answer: per order the refill id, or ``{"error": ...}`` in its place."""
    return [
        {"order": item, "refill": created[item]}
        if item in created
        else {"order": item, "refill": {"error": errors.get(item, INCORRECT_ORDER)}}
        for item in ids
    ]


def refill_statuses(ids: Sequence[int | str], found: Mapping[int, str]) -> object:
    """A multi ``refill_status`` answer: per refill its status, or ``{"error": ...}`` in its place."""
    return [
        {
            "refill": item,
            "status": found[item] if isinstance(item, int) and item in found else {"error": REFILL_NOT_FOUND},
        }
        for item in ids
    ]


def cancel_item(dialect: str, order: int | str, canceled: bool, error: str | None) -> dict[str, object]:
    """One entry of a ``cancel`` answer."""
    if dialect == PERFECTPANEL:
        return {"order": order, "cancel": 1 if canceled else {"error": error or INCORRECT_ORDER}}
    item: dict[str, object] = {"order": order, "canceled": canceled}
    if not canceled:
        item["error"] = error or INCORRECT_ORDER
    return item
