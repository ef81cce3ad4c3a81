"""Idempotency keys on add, refill and cancel, against the simulator on real Postgres: the same key
answers what the first call answered, with no second charge and no second upstream call."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from gateway.errors import IDEMPOTENCY_KEY_REUSED, INCORRECT_IDEMPOTENCY_KEY, NOT_ENOUGH_FUNDS
from gateway.simulator.faults import FaultRule
from tests.factories import balance_of, make_customer
from tests.orders.conftest import Shop
from tests.orders.test_refills import completed_order

FOLLOWERS = 102  # 0.45 per 1000, min 100, cancel allowed


async def add(
    shop: Shop, key: str | None = None, *, header: str | None = None, quantity: int = 1000, **extra: Any
) -> Any:
    data = {
        "key": shop.key,
        "action": "add",
        "service": shop.services[FOLLOWERS],
        "link": "https://i.com/x",
        "quantity": quantity,
        **extra,
    }
    if key is not None:
        data["idempotency_key"] = key
    headers = {"Idempotency-Key": header} if header is not None else {}
    response = await shop.client.post("/api/v2", data=data, headers=headers)
    assert response.status_code == 200
    return response.json()


async def charges(shop: Shop) -> int:
    return int(await shop.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'"))


async def test_the_same_key_answers_the_same_order_once(shop: Shop) -> None:
    first = await add(shop, header="order-7f3a")
    again = await add(shop, header="order-7f3a")
    as_param = await add(shop, "order-7f3a")
    assert first == again == as_param
    assert isinstance(first["order"], int)
    assert shop.sim.request_count("add") == 1
    assert await charges(shop) == 1
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("99.55")
    # Another key is another order.
    other = await add(shop, header="order-7f3b")
    assert other["order"] != first["order"]
    await shop.check_money()


async def test_the_same_key_with_other_parameters_is_refused_and_changes_nothing(shop: Shop) -> None:
    first = await add(shop, "k1", quantity=1000)
    assert await add(shop, "k1", quantity=2000) == {"error": IDEMPOTENCY_KEY_REUSED}
    assert await add(shop, "k1", quantity=1000, link="https://i.com/y") == {"error": IDEMPOTENCY_KEY_REUSED}
    # The key of an add is not a refill's or a cancel's.
    refill = await shop.v2(action="refill", order=str(first["order"]), idempotency_key="k1")
    assert refill == {"error": IDEMPOTENCY_KEY_REUSED}
    assert shop.sim.request_count("add") == 1
    assert await charges(shop) == 1
    # The first answer is still the answer.
    assert await add(shop, "k1", quantity=1000) == first


@pytest.mark.parametrize(
    "key",
    ["", " ", "x" * 65, "ключ", "tab\there", "new\nline", "nul\x00", "é"],
)
async def test_malformed_keys_are_refused_before_anything_happens(shop: Shop, key: str) -> None:
    assert await add(shop, key) == {"error": INCORRECT_IDEMPOTENCY_KEY}
    assert await charges(shop) == 0
    assert shop.sim.request_count("add") == 0


async def test_malformed_header_and_disagreeing_header_and_parameter_are_refused(shop: Shop) -> None:
    assert await add(shop, header="") == {"error": INCORRECT_IDEMPOTENCY_KEY}
    assert await add(shop, "a", header="b") == {"error": INCORRECT_IDEMPOTENCY_KEY}
    raw = await shop.client.post(
        "/api/v2",
        content=f"key={shop.key}&action=add&service={shop.services[FOLLOWERS]}&link=https://i.com/x&quantity=1000",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "\xe9t\xe9".encode("latin-1")},  # type: ignore[dict-item]
    )
    assert raw.json() == {"error": INCORRECT_IDEMPOTENCY_KEY}
    assert await charges(shop) == 0
    # The longest and the oddest printable keys are fine.
    assert "order" in await add(shop, "~" * 64)
    assert "order" in await add(shop, header="a b!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}")


async def test_fifty_concurrent_adds_with_one_key_make_one_order(shop: Shop) -> None:
    answers = await asyncio.gather(*(add(shop, header="burst-1") for _ in range(50)))
    ids = {a.get("order") for a in answers}
    assert len(ids) == 1, answers
    assert None not in ids, answers
    assert shop.sim.request_count("add") == 1
    assert await charges(shop) == 1
    assert await shop.scalar("SELECT count(*) FROM orders") == 1
    await shop.check_money()


async def test_concurrent_adds_with_one_key_and_funds_for_one(shop: Shop) -> None:
    # The losers fail to charge for lack of funds, yet the winner's order is their answer.
    customer_id, key = await make_customer(shop.runtime, balance="0.50")
    data = {
        "key": key,
        "action": "add",
        "service": shop.services[FOLLOWERS],
        "link": "https://i.com/x",
        "quantity": 1000,
    }
    responses = await asyncio.gather(
        *(shop.client.post("/api/v2", data=data, headers={"Idempotency-Key": "one"}) for _ in range(20))
    )
    ids = {r.json().get("order") for r in responses}
    assert len(ids) == 1
    assert None not in ids
    assert await balance_of(shop.runtime, customer_id) == Decimal("0.05")
    # Without the key, the next one is refused for funds.
    response = await shop.client.post("/api/v2", data=data)
    assert response.json() == {"error": NOT_ENOUGH_FUNDS}


async def test_a_retry_after_a_dropped_answer_gets_the_same_order(shop: Shop) -> None:
    # The upstream is slow; the customer's script gives up before the answer comes and retries
    # with the same key while the first call is still sending: it gets the same order id.
    shop.sim.set_faults(FaultRule(kind="latency", action="add", latency=1.0))
    data = {
        "key": shop.key,
        "action": "add",
        "service": shop.services[FOLLOWERS],
        "link": "https://i.com/x",
        "quantity": 1000,
    }
    # (The in-process client ignores timeouts: cancelling the call is the hang-up.)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(shop.client.post("/api/v2", data=data, headers={"Idempotency-Key": "retry-1"}), 0.3)
    retried = await shop.client.post("/api/v2", data=data, headers={"Idempotency-Key": "retry-1"})
    order_id = retried.json()["order"]

    async def placed() -> bool:
        return (await shop.order(order_id)).state == "placed"

    async with asyncio.timeout(30):
        while not await placed():
            await asyncio.sleep(0.05)
    later = await shop.client.post("/api/v2", data=data, headers={"Idempotency-Key": "retry-1"})
    assert later.json() == {"order": order_id}
    assert shop.sim.request_count("add") == 1
    assert await charges(shop) == 1
    await shop.check_money()


async def test_a_refused_add_replays_its_error_and_a_fundless_one_may_try_again(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Incorrect link", times=1))
    assert await add(shop, "bad-link") == {"error": "Incorrect link"}
    assert await add(shop, "bad-link") == {"error": "Incorrect link"}
    assert shop.sim.request_count("add") == 1
    # Not enough funds changed nothing, so nothing was stored: after a deposit the key works.
    customer_id, key = await make_customer(shop.runtime, balance="0.10")
    data = {
        "key": key,
        "action": "add",
        "service": shop.services[FOLLOWERS],
        "link": "https://i.com/x",
        "quantity": 1000,
        "idempotency_key": "later",
    }
    assert (await shop.client.post("/api/v2", data=data)).json() == {"error": NOT_ENOUGH_FUNDS}
    await shop.execute("UPDATE customers SET balance = balance + 1 WHERE id = :id", id=customer_id)
    await shop.execute(
        "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after) VALUES (:id, 'deposit', 1, 1.10)",
        id=customer_id,
    )
    assert "order" in (await shop.client.post("/api/v2", data=data)).json()
    await shop.check_money()


async def test_keys_are_per_customer(shop: Shop) -> None:
    first = await add(shop, "shared")
    _, other_key = await make_customer(shop.runtime, balance="10")
    data = {
        "key": other_key,
        "action": "add",
        "service": shop.services[FOLLOWERS],
        "link": "https://i.com/x",
        "quantity": 1000,
        "idempotency_key": "shared",
    }
    second = (await shop.client.post("/api/v2", data=data)).json()
    assert second["order"] != first["order"]


async def test_an_expired_key_is_forgotten_and_purged(shop: Shop) -> None:
    first = await add(shop, "old")
    await shop.execute("UPDATE idempotent_requests SET created_at = now() - interval '2 days'")
    second = await add(shop, "old")
    assert second["order"] != first["order"]
    assert shop.sim.request_count("add") == 2
    await shop.execute("UPDATE idempotent_requests SET created_at = now() - interval '2 days'")
    await add(shop, "fresh")
    assert await shop.runtime.idempotency.purge_expired() == 1
    assert await shop.scalar("SELECT array_agg(key) FROM idempotent_requests") == ["fresh"]


async def test_refill_with_a_key_asks_upstream_once(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/refill")
    first = await shop.v2(action="refill", order=str(order_id), idempotency_key="r-1")
    again = await shop.v2(action="refill", order=str(order_id), idempotency_key="r-1")
    assert first == again
    assert "refill" in first
    assert shop.sim.request_count("refill") == 1
    assert await shop.v2(action="refill", order=str(order_id + 1000), idempotency_key="r-1") == {
        "error": IDEMPOTENCY_KEY_REUSED
    }
    # An error is an answer too: replayed, not asked again.
    missing = await shop.v2(action="refill", order="999999", idempotency_key="r-2")
    assert missing == await shop.v2(action="refill", order="999999", idempotency_key="r-2")
    assert "error" in missing


async def test_cancel_with_a_key_asks_upstream_once(shop: Shop) -> None:
    order_id = (await add(shop))["order"]
    first = await shop.v2(action="cancel", orders=str(order_id), idempotency_key="c-1")
    second = await shop.v2(action="cancel", orders=str(order_id), idempotency_key="c-1")
    assert first == second
    assert shop.sim.request_count("cancel") == 1


async def test_concurrent_cancels_with_one_key_ask_upstream_once(shop: Shop) -> None:
    order_id = (await add(shop))["order"]
    shop.sim.set_faults(FaultRule(kind="latency", action="cancel", latency=0.3))
    answers = await asyncio.gather(
        *(shop.v2(action="cancel", orders=str(order_id), idempotency_key="c-2") for _ in range(5))
    )
    assert all(a == answers[0] for a in answers)
    assert shop.sim.request_count("cancel") == 1


async def test_a_crashed_claim_is_taken_over(shop: Shop) -> None:
    order_id = (await add(shop))["order"]
    # A process died after claiming the key, before answering: after a minute the key is free.
    first = await shop.v2(action="cancel", orders=str(order_id), idempotency_key="c-3")
    await shop.execute(
        "UPDATE idempotent_requests SET answer = NULL, created_at = now() - interval '2 minutes' WHERE key = 'c-3'"
    )
    again = await shop.v2(action="cancel", orders=str(order_id), idempotency_key="c-3")
    assert again == first or "error" in str(again)
    assert await shop.scalar("SELECT answer IS NOT NULL FROM idempotent_requests WHERE key = 'c-3'")
