"""The status call's one statement (key lookup and status read together) answers exactly what
the two statements it replaces answer: the same account, the same rows, nothing for a bad key."""

from __future__ import annotations

from gateway.ledger.customers import account_for_key
from gateway.v2.reads import account_and_statuses
from tests.factories import make_customer
from tests.orders.conftest import Shop


async def test_one_statement_answers_what_the_key_lookup_and_the_status_read_answer(shop: Shop) -> None:
    hot, orders = shop.runtime.hot, shop.runtime.orders
    service = shop.services[101]
    mine = [
        (await shop.v2(action="add", service=service, link=f"https://instagram.com/p{i}", quantity=100))["order"]
        for i in range(2)
    ]
    other_id, other_key = await make_customer(shop.runtime, balance="10")
    foreign = (
        await shop.v2(key=other_key, action="add", service=service, link="https://instagram.com/q", quantity=100)
    )["order"]
    asked = [*mine, foreign, 999_999_999]

    account, found = await account_and_statuses(hot, shop.key, asked)
    assert account == await account_for_key(hot, shop.key)
    assert found == await orders.customer_orders(shop.customer_id, asked)
    assert set(found) == set(mine)

    account, found = await account_and_statuses(hot, other_key, asked)
    assert account is not None
    assert account.id == other_id
    assert set(found) == {foreign}

    assert await account_and_statuses(hot, shop.key, []) == (await account_for_key(hot, shop.key), {})
    for bad_key in ("", "smm_" + "x" * 40, shop.key + "x", "k" * 10_000):
        assert await account_and_statuses(hot, bad_key, asked) == (None, {})
    await shop.execute("UPDATE customers SET enabled = false WHERE id = :id", id=shop.customer_id)
    assert await account_and_statuses(hot, shop.key, asked) == (None, {})


async def test_a_status_call_makes_one_round_trip(shop: Shop) -> None:
    order = (await shop.v2(action="add", service=shop.services[101], link="https://instagram.com/r", quantity=100))[
        "order"
    ]
    hot = shop.runtime.hot
    statements: list[str] = []
    originals = {name: getattr(hot, name) for name in ("fetch", "fetchrow")}

    def counting(name: str) -> object:
        async def run(*args: object, **kwargs: object) -> object:
            statements.append(name)
            return await originals[name](*args, **kwargs)

        return run

    for name in originals:
        setattr(hot, name, counting(name))
    try:
        assert (await shop.v2(action="status", order=order))["status"] == "Pending"
        assert len(statements) == 1
        await shop.v2(action="status", orders=f"{order},x")
        assert len(statements) == 2
    finally:
        for name in originals:
            delattr(hot, name)
