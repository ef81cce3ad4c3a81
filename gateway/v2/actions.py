"""The v2 actions: typed parameters in, a domain call, the customer's dialect out.

No SQL, pricing or money arithmetic here: each action parses, calls the domain, and hands the
result to :mod:`gateway.v2.render` for its shape. An action is given what it may use
(:class:`V2Parts`), never the process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.catalog.pricebook import Catalog
from gateway.db import HotPathPool
from gateway.errors import INCORRECT_ORDER, INCORRECT_REQUEST, REFILL_NOT_FOUND, TOO_MANY_IDS, ProtocolError
from gateway.ledger.customers import CustomerAccount
from gateway.money import format_money
from gateway.orders import cancel as cancels
from gateway.orders import refills
from gateway.orders.idempotency import IDEMPOTENT_ACTIONS, IdempotencyKeys, KeyedCall, keyed_call
from gateway.orders.outcomes import PendingOutcomes
from gateway.orders.placing import parse_id, place_order
from gateway.orders.policy import OrderPolicy
from gateway.orders.store import OrderStatusRow, OrderStore
from gateway.providers import ProviderGateway
from gateway.v2 import render


@dataclass(frozen=True, slots=True)
class V2Parts:
    """What the customer protocol may use: the composition root builds it once per process."""

    orders: OrderStore
    providers: ProviderGateway
    pending: PendingOutcomes
    catalog: Catalog
    policy: OrderPolicy
    hot: HotPathPool
    idempotency: IdempotencyKeys
    default_dialect: str


@dataclass(frozen=True, slots=True)
class Call:
    parts: V2Parts
    caller: CustomerAccount
    params: dict[str, str]
    dialect: str
    request_id: str | None = None
    # The ``Idempotency-Key`` header as sent (the parameter is in ``params``).
    idempotency_header: str | None = None
    # A status call's orders, read with the key lookup (see status_ids); None: not read yet.
    statuses: dict[int, OrderStatusRow] | None = None

    def keyed(self, action_name: str) -> KeyedCall | None:
        return keyed_call(action_name, self.idempotency_header, self.params)


def answered_once(action_name: str, func: Action) -> Action:
    """``func`` made idempotent per key (refill, cancel): a call with a key it already answered
    gets the same answer, and does nothing again."""

    async def run(call: Call) -> object:
        keyed = call.keyed(action_name)
        if keyed is None:
            return await func(call)
        return await call.parts.idempotency.answer_once(call.caller.id, keyed, lambda: func(call))

    return run


Action = Callable[[Call], Awaitable[object]]
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    def register(func: Action) -> Action:
        ACTIONS[name] = answered_once(name, func) if name in IDEMPOTENT_ACTIONS and name != "add" else func
        return func

    return register


@action("services")
async def services(call: Call) -> bytes:
    catalog = call.parts.catalog
    book = await catalog.with_average_times(await catalog.book(call.caller.catalog_revision))
    return book.listing_json(call.caller.id, call.caller.discount_percent)


@action("balance")
async def balance(call: Call) -> dict[str, str]:
    return {"balance": format_money(call.caller.balance), "currency": call.parts.policy.currency}


# --- orders -----------------------------------------------------------------------------------

MAX_IDS = 100


def parse_ids(raw: str | None) -> list[int | str]:
    """A comma-separated id list as sent; each item an int when it is one, else the raw text."""
    if raw is None or not raw.strip():
        raise ProtocolError(INCORRECT_REQUEST)
    items = [item.strip() for item in raw.split(",")]
    items = [item for item in items if item]
    if not items:
        raise ProtocolError(INCORRECT_REQUEST)
    if len(items) > MAX_IDS:
        raise ProtocolError(TOO_MANY_IDS)
    result: list[int | str] = []
    for item in items:
        number = parse_id(item)
        result.append(number if number is not None else item)
    return result


@action("add")
async def add(call: Call) -> dict[str, int]:
    parts = call.parts
    keyed = call.keyed("add")
    book = await parts.catalog.book(call.caller.catalog_revision)

    async def place(key: KeyedCall | None) -> int:
        return await place_order(
            parts.orders,
            parts.providers,
            parts.pending,
            book,
            call.caller,
            call.params,
            call.request_id,
            parts.policy,
            idempotency=None if key is None else (key.key, key.request_hash),
        )

    # With a key, the key is stored with the order by the charge itself (one order per key).
    order_id = await (place(None) if keyed is None else parts.idempotency.add(call.caller.id, keyed, place))
    return {"order": order_id}


def status_ids(params: dict[str, str]) -> list[int] | None:
    """The order ids a ``status`` call will read, when its parameters parse; None when they do
    not (the action itself then answers the error, after the key was checked)."""
    if "orders" in params:
        try:
            return [i for i in parse_ids(params["orders"]) if isinstance(i, int)]
        except ProtocolError:
            return None
    order_id = parse_id(params.get("order"))
    return None if order_id is None else [order_id]


@action("status")
async def status(call: Call) -> object:
    orders, currency = call.parts.orders, call.parts.policy.currency
    if "orders" in call.params:
        ids = parse_ids(call.params["orders"])
        numeric = [i for i in ids if isinstance(i, int)]
        found = call.statuses if call.statuses is not None else await orders.customer_orders(call.caller.id, numeric)
        return render.order_statuses(call.dialect, ids, found, currency)
    order_id = parse_id(call.params.get("order"))
    if order_id is None:
        raise ProtocolError(INCORRECT_ORDER)
    found = call.statuses if call.statuses is not None else await orders.customer_orders(call.caller.id, [order_id])
    row = found.get(order_id)
    if row is None:
        raise ProtocolError(INCORRECT_ORDER)
    return render.order_status(row, currency)


def _ids_param(call: Call, multi: str, single: str) -> tuple[list[int | str], bool]:
    """The ids of a call that takes either ``orders`` (a list) or ``order`` (one id)."""
    if multi in call.params:
        return list(dict.fromkeys(parse_ids(call.params[multi]))), True
    return parse_ids(call.params.get(single)), False


@action("refill")
async def refill(call: Call) -> object:
    ids, is_multi = _ids_param(call, "orders", "order")
    if not is_multi and len(ids) != 1:
        raise ProtocolError(INCORRECT_ORDER)
    numeric = [i for i in ids if isinstance(i, int)]
    parts = call.parts
    answers = await refills.request_refills(parts.orders, parts.providers, call.caller.id, numeric) if numeric else {}
    if not is_multi:
        answer = answers.get(numeric[0]) if numeric else None
        if answer is None or answer.refill_id is None:
            raise ProtocolError(answer.error if answer and answer.error else INCORRECT_ORDER)
        return {"refill": answer.refill_id}
    created: dict[int | str, int] = {i: a.refill_id for i, a in answers.items() if a.refill_id is not None}
    errors: dict[int | str, str] = {i: a.error for i, a in answers.items() if a.error is not None}
    return render.refills(ids, created, errors)


@action("refill_status")
async def refill_status(call: Call) -> object:
    ids, is_multi = _ids_param(call, "refills", "refill")
    numeric = [i for i in ids if isinstance(i, int)]
    found = await call.parts.orders.customer_refills(call.caller.id, numeric) if numeric else {}
    if not is_multi:
        status_name = found.get(numeric[0]) if numeric and len(ids) == 1 else None
        if status_name is None:
            raise ProtocolError(REFILL_NOT_FOUND)
        return {"status": status_name}
    return render.refill_statuses(ids, found)


@action("cancel")
async def cancel(call: Call) -> object:
    ids, _ = _ids_param(call, "orders", "order")
    numeric = [i for i in ids if isinstance(i, int)]
    parts = call.parts
    answers = (
        await cancels.cancel_orders(
            parts.orders, parts.providers, call.caller.id, numeric, call.caller.catalog_revision
        )
        if numeric
        else {}
    )
    result: list[dict[str, object]] = []
    for item in ids:
        answer = answers.get(item) if isinstance(item, int) else None
        error = INCORRECT_ORDER if answer is None else answer.error
        result.append(render.cancel_item(call.dialect, item, answer is not None and answer.canceled, error))
    return result
