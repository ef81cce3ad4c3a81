"""The v2 actions: typed parameters in, a domain call, the customer's dialect out.

No SQL, pricing or money arithmetic here: each action parses, calls the domain, and shapes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import INCORRECT_ORDER, INCORRECT_REQUEST, TOO_MANY_IDS, ProtocolError
from gateway.money import format_money
from gateway.orders import queries
from gateway.orders.placing import Customer, parse_id, place_order
from gateway.runtime import Runtime
from gateway.v2 import render
from gateway.v2.customers import Caller


@dataclass(frozen=True, slots=True)
class Call:
    runtime: Runtime
    caller: Caller
    params: dict[str, str]
    dialect: str
    request_id: str | None = None


Action = Callable[[Call], Awaitable[object]]
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    def register(func: Action) -> Action:
        ACTIONS[name] = func
        return func

    return register


@action("services")
async def services(call: Call) -> bytes:
    book = await call.runtime.catalog.book(call.caller.catalog_revision)
    return book.listing_json(call.caller.id, call.caller.discount_percent)


@action("balance")
async def balance(call: Call) -> dict[str, str]:
    return {"balance": format_money(call.caller.balance), "currency": call.runtime.settings.currency}


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


def _key(item: int | str) -> str:
    return str(item)


@action("add")
async def add(call: Call) -> dict[str, int]:
    book = await call.runtime.catalog.book(call.caller.catalog_revision)
    order_id = await place_order(
        call.runtime,
        book,
        Customer(call.caller.id, call.caller.discount_percent),
        call.params,
        call.request_id,
    )
    return {"order": order_id}


@action("status")
async def status(call: Call) -> object:
    if "orders" in call.params:
        ids = parse_ids(call.params["orders"])
        numeric = [i for i in ids if isinstance(i, int)]
        async with call.runtime.engine.connect() as conn:
            found = await queries.customer_orders(conn, call.caller.id, numeric)
        currency = call.runtime.settings.currency
        answers: list[tuple[int | str, dict[str, object]]] = []
        for item in ids:
            row = found.get(item) if isinstance(item, int) else None
            answers.append((item, render.order_status(row, currency) if row else {"error": INCORRECT_ORDER}))
        return render.multi(call.dialect, "order", answers)
    order_id = parse_id(call.params.get("order"))
    if order_id is None:
        raise ProtocolError(INCORRECT_ORDER)
    async with call.runtime.engine.connect() as conn:
        row = (await queries.customer_orders(conn, call.caller.id, [order_id])).get(order_id)
    if row is None:
        raise ProtocolError(INCORRECT_ORDER)
    return render.order_status(row, call.runtime.settings.currency)
