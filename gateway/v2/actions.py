"""The v2 actions: typed parameters in, a domain call, the customer's dialect out.

No SQL, pricing or money arithmetic here: each action parses, calls the domain, and shapes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import INCORRECT_ORDER, INCORRECT_REQUEST, REFILL_NOT_FOUND, TOO_MANY_IDS, ProtocolError
from gateway.money import format_money
from gateway.orders import cancel as cancels
from gateway.orders import queries, refills
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
        found = await queries.customer_orders(call.runtime.hot, call.caller.id, numeric)
        currency = call.runtime.settings.currency
        answers: list[tuple[int | str, dict[str, object]]] = []
        for item in ids:
            row = found.get(item) if isinstance(item, int) else None
            answers.append((item, render.order_status(row, currency) if row else {"error": INCORRECT_ORDER}))
        return render.multi(call.dialect, "order", answers)
    order_id = parse_id(call.params.get("order"))
    if order_id is None:
        raise ProtocolError(INCORRECT_ORDER)
    row = (await queries.customer_orders(call.runtime.hot, call.caller.id, [order_id])).get(order_id)
    if row is None:
        raise ProtocolError(INCORRECT_ORDER)
    return render.order_status(row, call.runtime.settings.currency)


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
    book = await call.runtime.catalog.book(call.caller.catalog_revision)
    answers = await refills.request_refills(call.runtime, book, call.caller.id, numeric) if numeric else {}
    if not is_multi:
        answer = answers.get(numeric[0]) if numeric else None
        if answer is None or answer.refill_id is None:
            raise ProtocolError(answer.error if answer and answer.error else INCORRECT_ORDER)
        return {"refill": answer.refill_id}
    result: list[dict[str, object]] = []
    for item in ids:
        answer = answers.get(item) if isinstance(item, int) else None
        if answer is not None and answer.refill_id is not None:
            result.append({"order": item, "refill": answer.refill_id})
        else:
            result.append({"order": item, "refill": {"error": answer.error if answer else INCORRECT_ORDER}})
    return result


@action("refill_status")
async def refill_status(call: Call) -> object:
    ids, is_multi = _ids_param(call, "refills", "refill")
    numeric = [i for i in ids if isinstance(i, int)]
    found = await refills.refill_statuses(call.runtime, call.caller.id, numeric) if numeric else {}
    if not is_multi:
        status_name = found.get(numeric[0]) if numeric and len(ids) == 1 else None
        if status_name is None:
            raise ProtocolError(REFILL_NOT_FOUND)
        return {"status": status_name}
    return [
        {
            "refill": item,
            "status": found[item] if isinstance(item, int) and item in found else {"error": REFILL_NOT_FOUND},
        }
        for item in ids
    ]


@action("cancel")
async def cancel(call: Call) -> object:
    ids, _ = _ids_param(call, "orders", "order")
    numeric = [i for i in ids if isinstance(i, int)]
    book = await call.runtime.catalog.book(call.caller.catalog_revision)
    answers = await cancels.cancel_orders(call.runtime, book, call.caller.id, numeric) if numeric else {}
    result: list[dict[str, object]] = []
    for item in ids:
        answer = answers.get(item) if isinstance(item, int) else None
        error = INCORRECT_ORDER if answer is None else answer.error
        result.append(render.cancel_item(call.dialect, item, answer is not None and answer.canceled, error))
    return result
