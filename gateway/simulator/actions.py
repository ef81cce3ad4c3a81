"""The v2 actions: request parameters in, a dialect's answer out. Synchronous on purpose.

Nothing here awaits, so an action runs start to finish without another request interleaving;
the HTTP layer does all the waiting (bodies, injected latency) before and after.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.simulator import errors
from gateway.simulator.dialects import DocumentedDialect, Json, error_answer
from gateway.simulator.engine import Panel
from gateway.simulator.errors import PanelError

_ID = re.compile(r"\s*\d{1,18}\s*")

Params = Mapping[str, str]
Action = Callable[[Panel, DocumentedDialect, Params], Json]


def parse_id(raw: str | None, not_found: str) -> int:
    """A leniently parsed id (``"12"``, `` 12 ``); anything else is answered like an unknown id."""
    if raw is None or not _ID.fullmatch(raw):
        raise PanelError(not_found)
    return int(raw)


def parse_ids(raw: str, max_ids: int) -> list[int]:
    """A comma-separated id list, duplicates dropped (order kept); empty items are ignored."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items or not all(_ID.fullmatch(item) for item in items):
        raise PanelError(errors.INCORRECT_REQUEST)
    if len(items) > max_ids:
        raise PanelError(errors.TOO_MANY_IDS.format(limit=max_ids))
    return list(dict.fromkeys(int(item) for item in items))


def _each(ids: list[int], operation: Callable[[int], Any]) -> list[tuple[int, Any]]:
    results: list[tuple[int, Any]] = []
    for item_id in ids:
        try:
            results.append((item_id, operation(item_id)))
        except PanelError as refusal:
            results.append((item_id, refusal))
    return results


def add(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """Place an order."""
    service_id = parse_id(params.get("service"), errors.INCORRECT_SERVICE)
    return dialect.order_added(panel.add(service_id, params))


def status(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """One order's status (``order``) or up to ``max_ids`` of them (``orders``)."""
    if "orders" in params:
        ids = parse_ids(params["orders"], panel.config.max_ids)
        return dialect.order_statuses(_each(ids, panel.order))
    return dialect.order_status(panel.order(parse_id(params.get("order"), errors.INCORRECT_ORDER)))


def services(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """The catalog."""
    return dialect.services(panel.services())


def refill(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """Request a refill of one order (``order``) or several (``orders``)."""
    if "orders" in params:
        ids = parse_ids(params["orders"], panel.config.max_ids)
        return dialect.refills_created(_each(ids, panel.refill))
    return dialect.refill_created(panel.refill(parse_id(params.get("order"), errors.INCORRECT_ORDER)))


def refill_status(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """One refill's status (``refill``) or several (``refills``)."""
    if "refills" in params:
        ids = parse_ids(params["refills"], panel.config.max_ids)
        return dialect.refill_statuses(_each(ids, panel.refill_status))
    refill_id = parse_id(params.get("refill"), errors.REFILL_NOT_FOUND)
    return dialect.refill_status(panel.refill_status(refill_id))


def cancel(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """Cancel orders (``orders``, or a single ``order``); always answered as a list."""
    raw = params.get("orders", params.get("order"))
    if raw is None:
        raise PanelError(errors.INCORRECT_REQUEST)
    return dialect.cancels(_each(parse_ids(raw, panel.config.max_ids), panel.cancel))


def balance(panel: Panel, dialect: DocumentedDialect, params: Params) -> Json:
    """The reseller balance."""
    return dialect.balance(panel.balance())


ACTIONS: dict[str, Action] = {
    "add": add,
    "status": status,
    "services": services,
    "refill": refill,
    "refill_status": refill_status,
    "cancel": cancel,
    "balance": balance,
}


def key_is_valid(panel: Panel, key: str | None) -> bool:
    """Whether ``key`` is the panel's API key (compared in constant time, like a real panel should)."""
    return key is not None and hmac.compare_digest(key.strip().encode(), panel.config.api_key.encode())


def answer(panel: Panel, dialect: DocumentedDialect, key: str | None, params: Params) -> Json:
    """Authenticate, dispatch on ``action`` and answer; every refusal becomes ``{"error": ...}``."""
    if not key_is_valid(panel, key):
        return error_answer(errors.INVALID_API_KEY)
    action = ACTIONS.get(params.get("action", "").strip())
    if action is None:
        return error_answer(errors.INCORRECT_REQUEST)
    try:
        return action(panel, dialect, params)
    except PanelError as refusal:
        return error_answer(refusal.message)
