"""Shaping domain results into the customer's dialect (PROTOCOL.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.money import format_money

# What the customer sees while the gateway still holds the order (not yet placed upstream).
_HELD_STATES = {"queued": "Pending", "submitting": "Pending", "unknown": "Pending"}


def order_status(row: Any, currency: str) -> dict[str, object]:
    """One order's status answer; money and counts as strings, like the panels."""
    status = _HELD_STATES.get(row.state, row.status)
    remains = row.remains if row.remains is not None else (row.quantity if status != "Completed" else 0)
    return {
        "status": status,
        "charge": format_money(row.charge - row.refunded),
        "start_count": str(row.start_count if row.start_count is not None else 0),
        "remains": str(remains),
        "currency": currency,
    }


def multi(dialect: str, id_field: str, answers: Sequence[tuple[int | str, dict[str, object]]]) -> object:
    """A per-id answer: a list of objects with the id (documented) or an object keyed by id."""
    if dialect == "perfectpanel":
        return {str(item): answer for item, answer in answers}
    return [{id_field: item, **answer} for item, answer in answers]


def cancel_item(dialect: str, order: int | str, canceled: bool, error: str | None) -> dict[str, object]:
    """One entry of a ``cancel`` answer."""
    if dialect == "perfectpanel":
        return {"order": order, "cancel": 1 if canceled else {"error": error or "Incorrect order ID"}}
    item: dict[str, object] = {"order": order, "canceled": canceled}
    if not canceled:
        item["error"] = error or "Incorrect order ID"
    return item
