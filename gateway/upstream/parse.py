"""Reading every upstream answer variant of PROTOCOL.md section 4 into the normalized types.

Each ``parse_*`` takes the decoded JSON (floats already as ``Decimal``) and a ``clean`` function
(the key scrubber) applied to every message text that ends up in an error. A shape it cannot
read raises :class:`UnreadableAnswer`; a top-level ``{"error": ...}`` raises
:class:`~gateway.upstream.errors.UpstreamRejected`.

The shapes shared by all actions (keyed or listed multi answers, wrapping, top-level errors) are
read in :mod:`gateway.upstream.shapes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.upstream.coerce import (
    is_no_value,
    order_status,
    refill_status,
    to_bool,
    to_decimal,
    to_int,
    to_optional_bool,
)
from gateway.upstream.errors import UpstreamRejected
from gateway.upstream.shapes import (
    Clean,
    UnreadableAnswer,
    decode_json,
    error_of,
    identity,
    is_id_key,
    message_of,
    per_item,
    single_object,
    top_level_error,
)
from gateway.upstream.types import (
    Balance,
    CancelAccepted,
    ItemError,
    RefillStatusAnswer,
    Service,
    StatusAnswer,
)

__all__ = [
    "UnreadableAnswer",
    "decode_json",
    "parse_add",
    "parse_balance",
    "parse_cancel",
    "parse_refill",
    "parse_refill_status",
    "parse_refill_statuses",
    "parse_refills",
    "parse_services",
    "parse_status",
    "parse_statuses",
    "top_level_error",
]

logger = logging.getLogger("gateway.upstream")
T = TypeVar("T")

# --- add, balance ---------------------------------------------------------------------------


# Upstream ids are stored as BIGINT: an id beyond it cannot be an id the gateway can follow.
MAX_UPSTREAM_ID = 2**63 - 1


def _upstream_id(value: object, what: str) -> int:
    number = to_int(value)
    if not 0 < number <= MAX_UPSTREAM_ID:
        raise UnreadableAnswer(f"{what} {str(number)[:40]} is out of range")
    return number


def parse_add(answer: object, *, clean: Clean = identity) -> int:
    """``{"order": 23501}``, ``{"order": "23501"}``, ``[{"order": "1242"}]``,
    ``{"status": "success", "order": 151}`` -> the upstream order id (positive, within BIGINT)."""
    obj = single_object(answer)
    if "order" not in obj:
        raise UnreadableAnswer("no order id in the answer")
    return _upstream_id(obj["order"], "order id")


def parse_balance(answer: object, *, clean: Clean = identity) -> Balance:
    """``{"balance": "25.50", "currency": "USD"}`` (balance as a string or a number)."""
    obj = single_object(answer)
    if "balance" not in obj:
        raise UnreadableAnswer("no balance in the answer")
    return Balance(balance=to_decimal(obj["balance"]), currency=_optional_text(obj.get("currency")))


def _optional_text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


# --- order status ---------------------------------------------------------------------------


def _status_text(value: object, what: str) -> str | ItemError:
    """The ``status`` of one item of a status answer, or its per-item error
    (``{"error": ...}`` beside or in place of the status)."""
    if not isinstance(value, dict):
        raise UnreadableAnswer(f"a {what} item that is a {type(value).__name__}")
    error = error_of(value)
    if error is not None:
        return ItemError(message_of(error))
    raw = value.get("status")
    if isinstance(raw, dict) and error_of(raw) is not None:
        return ItemError(message_of(raw["error"]))
    if not isinstance(raw, str) or not raw.strip():
        raise UnreadableAnswer("no status in the item")
    return raw


def _order_status(value: object) -> StatusAnswer | ItemError:
    if isinstance(value, str):
        return ItemError(message_of(value))  # a bare string in a multi answer is a per-id error
    raw = _status_text(value, "status")
    if isinstance(raw, ItemError):
        return raw
    assert isinstance(value, dict)
    unreadable: list[str] = []
    return StatusAnswer(
        status=order_status(raw),
        raw_status=raw.strip(),
        charge=_optional_field(value, "charge", to_decimal, unreadable),
        start_count=_optional_field(value, "start_count", to_int, unreadable),
        remains=_optional_field(value, "remains", to_int, unreadable),
        currency=_optional_text(value.get("currency")),
        unreadable=tuple(unreadable),
    )


def _optional_field(obj: dict[str, object], name: str, read: Callable[[object], T], unreadable: list[str]) -> T | None:
    """An informational field of a status item: None when absent or "no value"; None and a note
    in ``unreadable`` when present but unreadable (one bad field must not make the whole status
    answer unreadable)."""
    value = obj.get(name)
    if is_no_value(value):
        return None
    try:
        return read(value)
    except ValueError as exc:
        unreadable.append(f"{name} {str(value)[:40]!r}: {exc}")
        return None


def parse_status(answer: object, *, clean: Clean = identity) -> StatusAnswer:
    """One order's status: ``{"status": "Completed", "charge": "1.00", ...}``."""
    obj = single_object(answer)
    if "status" not in obj and len(obj) == 1 and all(is_id_key(k) for k in obj):
        obj = single_object(next(iter(obj.values())))  # {"123": {...}} for a single id
    result = _order_status(obj)
    if isinstance(result, ItemError):
        raise UpstreamRejected(clean(result.message))
    return result


def parse_statuses(
    answer: object, ids: Sequence[int], *, clean: Clean = identity
) -> dict[int, StatusAnswer | ItemError]:
    """Multi status, keyed object or list of ``{"order": id, ...}``; per-id failures as
    ``{"error": ...}`` or a bare string."""
    return per_item(answer, "order", ids, _order_status, clean)


# --- services -------------------------------------------------------------------------------


def _service(value: object) -> Service:
    if not isinstance(value, dict):
        raise ValueError(f"a service that is a {type(value).__name__}")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a service without a name")
    service_type = value.get("type")
    desc = value.get("desc", value.get("description"))
    category = value.get("category")
    return Service(
        service=to_int(value.get("service")),
        name=name.strip(),
        type=service_type.strip() if isinstance(service_type, str) and service_type.strip() else "Default",
        category=category.strip() if isinstance(category, str) else "",
        rate=to_decimal(value.get("rate")),
        min=to_int(value.get("min")),
        max=to_int(value.get("max")),
        refill=to_bool(value.get("refill")),
        cancel=to_bool(value.get("cancel")),
        dripfeed=to_bool(value.get("dripfeed")),
        desc=desc if isinstance(desc, str) and desc.strip() else None,
    )


def parse_services(answer: object, *, clean: Clean = identity) -> list[Service]:
    """The service list. A malformed entry is skipped (and logged) so one bad row does not hide
    the whole catalog; an answer where no entry is readable is unreadable."""
    if isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], list):
        answer = answer[0]
    if isinstance(answer, dict) and answer and all(isinstance(v, dict) for v in answer.values()):
        answer = list(answer.values())  # keyed by service id
    if not isinstance(answer, list):
        raise UnreadableAnswer(f"expected a list of services, got {type(answer).__name__}")
    services: list[Service] = []
    for entry in answer:
        try:
            services.append(_service(entry))
        except ValueError as exc:
            logger.warning("skipping an unreadable upstream service: %s", clean(str(exc)))
    if answer and not services:
        raise UnreadableAnswer("no readable service in the list")
    return services


# --- refill ---------------------------------------------------------------------------------


def _refill_id(value: object) -> int | ItemError:
    if isinstance(value, dict):
        error = error_of(value)
        if error is not None:
            return ItemError(message_of(error))
        value = value.get("refill")
        if isinstance(value, dict) and error_of(value) is not None:
            return ItemError(message_of(value["error"]))
    if value is None:
        raise UnreadableAnswer("no refill id")
    if isinstance(value, str) and not value.strip().isdigit():
        return ItemError(message_of(value))
    return _upstream_id(value, "refill id")


def parse_refill(answer: object, *, clean: Clean = identity) -> int:
    """``{"refill": 5555}`` / ``{"refill": "1"}`` -> the refill id; ``{"refill": {"error": ...}}``
    is a rejection."""
    result = _refill_id(single_object(answer))
    if isinstance(result, ItemError):
        raise UpstreamRejected(clean(result.message))
    return result


def parse_refills(answer: object, ids: Sequence[int], *, clean: Clean = identity) -> dict[int, int | ItemError]:
    """Multi refill: ``[{"order": 1, "refill": 101}, {"order": 3, "refill": {"error": ...}}]``
    -> order id -> refill id or error."""
    return per_item(answer, "order", ids, _refill_id, clean)


def _refill_status(value: object) -> RefillStatusAnswer | ItemError:
    if isinstance(value, str):
        # Keyed answers may hold the bare status, or a bare error text: only a known status
        # spelling is read as a status.
        state = refill_status(value)
        return RefillStatusAnswer(status=state, raw_status=value.strip()) if state else ItemError(message_of(value))
    raw = _status_text(value, "refill status")
    if isinstance(raw, ItemError):
        return raw
    return RefillStatusAnswer(status=refill_status(raw), raw_status=raw.strip())


def parse_refill_status(answer: object, *, clean: Clean = identity) -> RefillStatusAnswer:
    """One refill's status: ``{"status": "Completed"}``."""
    result = _refill_status(single_object(answer))
    if isinstance(result, ItemError):
        raise UpstreamRejected(clean(result.message))
    return result


def parse_refill_statuses(
    answer: object, ids: Sequence[int], *, clean: Clean = identity
) -> dict[int, RefillStatusAnswer | ItemError]:
    """Multi refill status: list of ``{"refill": id, "status": ...}`` (status possibly
    ``{"error": ...}``) or an object keyed by refill id."""
    return per_item(answer, "refill", ids, _refill_status, clean)


# --- cancel ---------------------------------------------------------------------------------


def _cancel_outcome(value: object) -> CancelAccepted | ItemError:
    message: object = None
    if isinstance(value, dict):
        message = error_of(value)
        for field in ("cancel", "canceled", "cancelled"):
            if field in value:
                value = value[field]
                break
        else:
            if message is not None:
                return ItemError(message_of(message))
            raise UnreadableAnswer("no cancel outcome in the item")
    if isinstance(value, dict):
        error = error_of(value)
        return ItemError(message_of(error if error is not None else value))
    accepted = to_optional_bool(value)
    if accepted:
        return CancelAccepted()
    if accepted is False:
        return ItemError(message_of(message) if message is not None else "Not canceled")
    if isinstance(value, str):
        return ItemError(message_of(value))
    raise UnreadableAnswer("an unreadable cancel outcome")


def parse_cancel(
    answer: object, ids: Sequence[int], *, clean: Clean = identity
) -> dict[int, CancelAccepted | ItemError]:
    """Cancel: ``[{"order": 1, "canceled": true}]``, ``[{"order": 2, "cancel": 1}]``,
    ``[{"order": 9, "cancel": {"error": ...}}]``, ``{"order": 2, "canceled": false, "error": ...}``,
    or keyed by order id."""
    return per_item(answer, "order", ids, _cancel_outcome, clean)
