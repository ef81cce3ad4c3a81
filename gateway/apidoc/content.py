"""What the customers' API page says, taken from the code that does it.

Nothing here is a second copy of a rule: the actions are checked against the handler's registry
(:data:`gateway.v2.actions.ACTIONS`), the example answers are built by :mod:`gateway.v2.render`
(the same functions that shape real answers) in the gateway's default dialect, the service types
and their fields come from :data:`gateway.orders.validation.SERVICE_TYPES` (what ``add`` checks),
the error strings from :mod:`gateway.errors`, the statuses from :mod:`gateway.lifecycle`. What is
left is prose: what a parameter means and when an error happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import msgspec

from gateway import errors
from gateway.catalog.pricebook import ServiceListing
from gateway.lifecycle import OrderState, OrderStatus, RefillStatus
from gateway.money import format_money
from gateway.orders.validation import MAX_DELAY, MAX_INTERVAL, MAX_RUNS, SERVICE_TYPES, ServiceType
from gateway.settings import Settings
from gateway.v2 import render
from gateway.v2.actions import ACTIONS, MAX_IDS

__all__ = [
    "ActionDoc",
    "ErrorDoc",
    "Idempotency",
    "Param",
    "ServiceTypeDoc",
    "actions",
    "error_docs",
    "idempotency",
    "service_type_docs",
]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    required: str  # "yes", "no", or when ("most types")
    meaning: str


@dataclass(frozen=True, slots=True)
class ActionDoc:
    """One action (or one form of it: ``status`` for one order and for many) as the page shows it."""

    slug: str  # the anchor, and the id of its example answer (``answer-<slug>``)
    action: str
    title: str
    summary: str
    params: tuple[Param, ...]
    answer: object  # the example answer, as the gateway would encode it
    notes: tuple[str, ...] = ()
    example: tuple[tuple[str, str], ...] = ()  # the example call's parameters (besides key and action)


@dataclass(frozen=True, slots=True)
class ServiceTypeDoc:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    notes: str


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    message: str
    when: str


# --- the idempotency extension ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The idempotency key extension, as the page describes it."""

    window_seconds: int
    reused_error: str = errors.IDEMPOTENCY_KEY_REUSED
    malformed_error: str = errors.INCORRECT_IDEMPOTENCY_KEY
    header: str = "Idempotency-Key"
    param: str = "idempotency_key"
    max_length: int = 64
    actions: tuple[str, ...] = ("add", "refill", "cancel")


def idempotency(settings: Settings) -> Idempotency:
    """The extension with this gateway's window (``GATEWAY_IDEMPOTENCY_TTL_SECONDS``)."""
    return Idempotency(window_seconds=settings.idempotency_ttl_seconds)


def duration(seconds: int) -> str:
    """``86400`` as "24 hours", ``90`` as "90 seconds": the largest unit that divides it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size and (unit != "day" or seconds > 86400):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


# --- the service types ----------------------------------------------------------------------------

# What each type-specific parameter means: every name SERVICE_TYPES uses must be here (a new field in
# the validation without a meaning on the page fails the page's tests, never silently).
FIELD_MEANINGS: Mapping[str, str] = {
    "link": "the page, post or profile: an http(s) link, or a username",
    "quantity": "how many, within the service's min and max",
    "comments": "the comments, one per line",
    "usernames": "usernames, one per line (or comma-separated)",
    "hashtags": "hashtags, one per line (or comma-separated)",
    "hashtag": "one hashtag (the # is optional)",
    "username": "a username or a profile link",
    "media": "a post (media) link",
    "answer_number": "the number of the poll's answer (1, 2, …)",
    "groups": "groups, one per line (or comma-separated)",
    "runs": f"drip-feed: how many runs (1 to {MAX_RUNS}); quantity is per run",
    "interval": f"drip-feed: minutes between runs (1 to {MAX_INTERVAL})",
    "min": "the least per post, within the service's min and max",
    "max": "the most per post, within the service's min and max",
    "delay": f"minutes to wait before starting (0 to {MAX_DELAY})",
    "posts": "how many new posts to serve",
    "old_posts": "how many existing posts to serve",
    "expiry": "the end date, DD/MM/YYYY",
}


def _type_notes(spec: ServiceType) -> str:
    """How a type counts and charges, said from its entry in SERVICE_TYPES."""
    if spec.subscription:
        return "no link; charged for max × posts (posts + old_posts; 1 when neither is given)"
    notes: list[str] = []
    if spec.counted == "comments":
        notes.append("quantity = the number of lines of comments")
    elif spec.counted is not None:
        notes.append(f"quantity = the number of {spec.counted} (one per line or comma-separated)")
    if spec.per_package:
        notes.append("charged rate for the whole package")
    else:
        notes.append("charged rate × quantity / 1000")
    if spec.dripfeed:
        notes.append('drip-feed (services with "dripfeed": true): quantity per run, charged for quantity × runs')
    return "; ".join(notes)


def service_type_docs() -> list[ServiceTypeDoc]:
    """Every service type ``add`` knows, with the fields it needs: PROTOCOL.md section 3's table."""
    docs = []
    for name, spec in SERVICE_TYPES.items():
        for field in (*spec.required, *spec.optional):
            if field not in FIELD_MEANINGS:
                raise LookupError(f"the API page has no meaning for the {name!r} field {field!r}")
        docs.append(ServiceTypeDoc(name, spec.required, spec.optional, _type_notes(spec)))
    return docs


def type_fields() -> list[str]:
    """Every parameter some service type needs or takes, beyond link and quantity, in table order."""
    seen: dict[str, None] = {}
    for spec in SERVICE_TYPES.values():
        for field in (*spec.required, *spec.optional):
            if field not in ("link", "quantity"):
                seen.setdefault(field)
    return list(seen)


# --- the actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ExampleOrder:
    """An order as :func:`gateway.v2.render.order_status` reads one."""

    state: OrderState
    status: OrderStatus
    charge: Decimal
    refunded: Decimal
    quantity: int
    remains: int | None
    start_count: int | None


_COMPLETED = _ExampleOrder(OrderState.PLACED, OrderStatus.COMPLETED, Decimal("1.25"), Decimal(0), 1000, 0, 3572)
_RUNNING = _ExampleOrder(OrderState.PLACED, OrderStatus.IN_PROGRESS, Decimal("0.90"), Decimal(0), 1000, 430, 129)
_SERVICES = [
    ServiceListing(
        service=1,
        name="Instagram Likes",
        type="Default",
        category="Instagram",
        rate="0.90",
        min=10,
        max=10000,
        refill=True,
        cancel=True,
        dripfeed=True,
    ),
    ServiceListing(
        service=2,
        name="Instagram Custom Comments",
        type="Custom Comments",
        category="Instagram",
        rate="12.50",
        min=5,
        max=500,
        refill=False,
        cancel=False,
        dripfeed=False,
    ),
]
_ORDER, _OTHER_ORDER, _NO_SUCH_ID = 23501, 23502, 99999
_REFILL, _OTHER_REFILL = 5555, 5556

_KEY = Param("key", "yes", "your API key")
_EXAMPLE_CALLS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "services": (),
    "add": (("service", "1"), ("link", "https://instagram.com/p/Cxyz"), ("quantity", "1000")),
    "status": (("order", str(_ORDER)),),
    "status-multi": (("orders", f"{_ORDER},{_OTHER_ORDER},{_NO_SUCH_ID}"),),
    "refill": (("order", str(_ORDER)),),
    "refill-multi": (("orders", f"{_ORDER},{_OTHER_ORDER},{_NO_SUCH_ID}"),),
    "refill-status": (("refill", str(_REFILL)),),
    "refill-status-multi": (("refills", f"{_REFILL},{_OTHER_REFILL},{_NO_SUCH_ID}"),),
    "cancel": (("orders", f"{_OTHER_ORDER},{_ORDER},{_NO_SUCH_ID}"),),
    "balance": (),
}


def _ids(name: str, what: str) -> Param:
    return Param(name, "yes", f"up to {MAX_IDS} {what} ids, comma-separated")


def _json(value: object) -> Any:
    """A value as the gateway's answers encode it (enums as their values)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def actions(dialect: str, currency: str, extension: Idempotency) -> list[ActionDoc]:
    """Every action and form of it, each with an example answer built by :mod:`gateway.v2.render`
    in ``dialect``; raises LookupError when an action the handler knows is missing here."""
    idempotent = (
        Param(
            extension.param,
            "no",
            f"1 to {extension.max_length} printable ASCII characters of your choosing: makes the call safe to "
            f"repeat (or send the {extension.header} header; see Idempotency)",
        ),
    )
    type_params = tuple(Param(name, "by type", FIELD_MEANINGS[name]) for name in type_fields())
    found = {_ORDER: _COMPLETED, _OTHER_ORDER: _RUNNING}
    docs = [
        ActionDoc(
            "services",
            "services",
            "Services",
            "The services you can order, at your prices (rate per 1000).",
            (),
            _json(_SERVICES),
            ('"type" says which fields add needs (see Service types).',),
        ),
        ActionDoc(
            "add",
            "add",
            "Add an order",
            "Places an order and charges your balance; answers the order's id.",
            (
                Param("service", "yes", "the service's id, from services"),
                Param("link", "most types", FIELD_MEANINGS["link"]),
                Param("quantity", "most types", FIELD_MEANINGS["quantity"]),
                *type_params,
                *idempotent,
            ),
            _json({"order": _ORDER}),
            ("Which fields a service needs depends on its type: see Service types.",),
        ),
        ActionDoc(
            "status",
            "status",
            "Order status",
            "The status of one order: what it was charged, the count when it started, what remains.",
            (Param("order", "yes", "the order's id"),),
            _json(render.order_status(_COMPLETED, currency)),
            (f"Statuses: {', '.join(OrderStatus)}. charge is what the order costs you after refunds.",),
        ),
        ActionDoc(
            "status-multi",
            "status",
            "Order status, many orders",
            "The statuses of several orders in one call.",
            (_ids("orders", "order"),),
            _json(render.order_statuses(dialect, [_ORDER, _OTHER_ORDER, _NO_SUCH_ID], found, currency)),
            ("An id that is not yours or does not exist gets an error of its own; the others are answered.",),
        ),
        ActionDoc(
            "refill",
            "refill",
            "Refill an order",
            "Asks for a refill of a completed order (on services with refill); answers the refill's id.",
            (Param("order", "yes", "the order's id"), *idempotent),
            _json({"refill": _REFILL}),
        ),
        ActionDoc(
            "refill-multi",
            "refill",
            "Refill many orders",
            "Asks for refills of several orders in one call.",
            (_ids("orders", "order"), *idempotent),
            _json(
                render.refills(
                    [_ORDER, _OTHER_ORDER, _NO_SUCH_ID], {_ORDER: _REFILL}, {_OTHER_ORDER: errors.REFILL_NOT_AVAILABLE}
                )
            ),
        ),
        ActionDoc(
            "refill-status",
            "refill_status",
            "Refill status",
            "The status of one refill.",
            (Param("refill", "yes", "the refill's id"),),
            _json({"status": RefillStatus.COMPLETED}),
            (f"Statuses: {', '.join(RefillStatus)}.",),
        ),
        ActionDoc(
            "refill-status-multi",
            "refill_status",
            "Refill status, many refills",
            "The statuses of several refills in one call.",
            (_ids("refills", "refill"),),
            _json(
                render.refill_statuses(
                    [_REFILL, _OTHER_REFILL, _NO_SUCH_ID],
                    {_REFILL: RefillStatus.COMPLETED, _OTHER_REFILL: RefillStatus.PENDING},
                )
            ),
        ),
        ActionDoc(
            "cancel",
            "cancel",
            "Cancel orders",
            "Cancels orders (on services with cancel). An order not yet started is canceled and refunded "
            "at once; a running one is refunded for what was not delivered once the cancel is done.",
            (_ids("orders", "order"), *idempotent),
            _json(
                [
                    render.cancel_item(dialect, _OTHER_ORDER, True, None),
                    render.cancel_item(dialect, _ORDER, False, errors.CANCEL_NOT_AVAILABLE),
                    render.cancel_item(dialect, _NO_SUCH_ID, False, errors.INCORRECT_ORDER),
                ]
            ),
            ("order (one id) is accepted too.",),
        ),
        ActionDoc(
            "balance",
            "balance",
            "Balance",
            "Your balance.",
            (),
            _json({"balance": format_money(Decimal("25.5")), "currency": currency}),
        ),
    ]
    missing = set(ACTIONS) - {d.action for d in docs}
    if missing:
        raise LookupError(f"the API page does not document the actions {sorted(missing)}")
    return [
        replace(d, params=(_KEY, Param("action", "yes", d.action), *d.params), example=_EXAMPLE_CALLS[d.slug])
        for d in docs
    ]


# --- the errors -----------------------------------------------------------------------------------

# When each error string of gateway/errors.py is answered, by the constant's name. A constant added
# there without a line here is still on the page (every string of the module is), with no "when".
_WHEN: Mapping[str, str] = {
    "INVALID_API_KEY": "the key is missing, unknown or revoked, or the account is disabled",
    "INCORRECT_REQUEST": "action missing or unknown, or a malformed request or parameter "
    "(a quantity that is not a whole number, drip-feed on a service without it)",
    "INCORRECT_SERVICE": "the service does not exist or is not for sale",
    "INCORRECT_ORDER": "the order does not exist or is not yours",
    "REFILL_NOT_FOUND": "the refill does not exist or is not yours",
    "NOT_ENOUGH_FUNDS": "your balance does not cover the charge",
    "DAILY_SPEND_LIMIT_REACHED": "the charge would take what you spent today (UTC) past the daily limit the panel set",
    "INCORRECT_LINK": "the link is missing or is not a link or username",
    "TOO_MANY_IDS": f"more than {MAX_IDS} ids in one call",
    "REFILL_NOT_AVAILABLE": "the service has no refill, or the order is not completed",
    "ACTIVE_ORDER_EXISTS": "you already have an active order on this link and service (when the panel refuses those)",
    "TOO_MANY_REQUESTS": "too many calls with one key in a minute: wait the seconds the Retry-After header says",
    "SERVICE_UNAVAILABLE": "the panel cannot take the call right now: nothing was done, try again later",
    "INCORRECT_IDEMPOTENCY_KEY": "an idempotency key that is not 1 to 64 printable ASCII characters, or a header"
    " and a parameter that disagree",
    "IDEMPOTENCY_KEY_REUSED": "an idempotency key you already used, with different parameters (or another action)",
    "IDEMPOTENCY_IN_PROGRESS": "a refill or cancel with this idempotency key is still being done: ask again in a moment",
    "CANCEL_NOT_AVAILABLE": "the service has no cancel, the order is finished, or it is still being sent",
}


def error_docs(rate_limit_per_minute: int) -> list[ErrorDoc]:
    """Every error string a call can be answered with, each once: the constants of
    :mod:`gateway.errors` (the idempotency extension's included) and the messages built from a value
    (the limits, the field's name)."""
    found: dict[str, str] = {}
    for name, value in vars(errors).items():
        if name.isupper() and isinstance(value, str):
            when = _WHEN.get(name, "")
            if name == "TOO_MANY_REQUESTS" and rate_limit_per_minute:
                when = (
                    f"more than {rate_limit_per_minute} calls with one key in a minute: "
                    "wait the seconds the Retry-After header says"
                )
            found.setdefault(value, when)
    found.setdefault(errors.quantity_less_than(10), "the quantity is under the service's min (here 10)")
    found.setdefault(errors.quantity_more_than(10000), "the quantity is over the service's max (here 10000)")
    found.setdefault(
        errors.incorrect("comments"),
        "a field the service's type needs is missing or malformed: Incorrect <field>, the field named",
    )
    return [ErrorDoc(message, when) for message, when in found.items()]
