"""An add acts on the account read a moment ago (gateway.ledger.customers.AccountCache), and the
charge statement verifies it: whatever the operator changes about a customer or the catalog takes
effect on the very next add, exactly as if the account had been read for it.

Each test reads the account first (a balance call, which remembers it), changes something through
the admin API, then adds."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.errors import INCORRECT_SERVICE, INVALID_API_KEY, NOT_ENOUGH_FUNDS, SERVICE_UNAVAILABLE
from gateway.ledger import customers
from gateway.v2 import handler
from tests.conftest import ADMIN_TOKEN
from tests.factories import balance_of
from tests.orders.conftest import Shop, shop_settings, shop_with

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FOLLOWERS = 102  # 0.45 per 1000, min 100: 100 of them cost 0.045 before markup


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key lookup the v2 endpoint makes, by the key's first characters."""
    seen: list[str] = []
    real = handler.account_for_key

    async def counting(hot: Any, key: str | None, *rest: Any) -> Any:
        seen.append((key or "")[:6])
        return await real(hot, key, *rest)

    monkeypatch.setattr(handler, "account_for_key", counting)
    return seen


async def _add(shop: Shop, key: str | None = None, **params: Any) -> Any:
    values = {"service": shop.services[FOLLOWERS], "link": "https://i.com/r", "quantity": 1000, **params}
    return await shop.v2(key, action="add", **values)


async def _admin(shop: Shop, method: str, path: str, **json: Any) -> httpx.Response:
    response = await shop.client.request(method, path, json=json or None, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response


async def test_adds_after_the_first_lookup_skip_it(shop: Shop, lookups: list[str]) -> None:
    assert "balance" in await shop.v2(action="balance")
    for n in range(3):
        assert "order" in await _add(shop, link=f"https://i.com/{n}")
    assert len(lookups) == 1  # the balance call's; the adds acted on what it read
    assert "balance" in await shop.v2(action="balance")
    assert len(lookups) == 2  # anything else is read fresh
    await shop.check_money()


async def test_a_rotated_key_is_refused_at_the_next_add(shop: Shop) -> None:
    assert "order" in await _add(shop)
    balance = await balance_of(shop.runtime, shop.customer_id)
    await _admin(shop, "POST", f"/admin/customers/{shop.customer_id}/rotate-key")
    assert await _add(shop) == {"error": INVALID_API_KEY}
    assert await balance_of(shop.runtime, shop.customer_id) == balance
    await shop.check_money()


async def test_a_disabled_customer_is_refused_at_the_next_add(shop: Shop) -> None:
    assert "order" in await _add(shop)
    await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", enabled=False)
    assert await _add(shop) == {"error": INVALID_API_KEY}
    assert await shop.scalar("SELECT count(*) FROM orders") == 1


async def test_a_narrowed_allowlist_refuses_the_next_add(shop: Shop) -> None:
    async with shop.client_from("203.0.113.9") as client:
        first = await client.post("/api/v2", data={"key": shop.key, "action": "balance"})
        assert "balance" in first.json()
        await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", allowed_ips=["198.51.100.0/24"])
        data = {"key": shop.key, "action": "add", "service": shop.services[FOLLOWERS], "link": "https://i.com/a"}
        refused = await client.post("/api/v2", data={**data, "quantity": 1000})
        assert refused.json() == {"error": INVALID_API_KEY}
    assert await shop.scalar("SELECT count(*) FROM orders") == 0


async def _markup(shop: Shop) -> None:
    """Room for a discount above the minimum margin: the price four times the cost."""
    response = await shop.client.post("/admin/markup-rules", json={"scope": "global", "percent": "300"}, headers=ADMIN)
    assert response.status_code == 201, response.text


async def test_a_new_discount_prices_the_next_add(shop: Shop) -> None:
    await _markup(shop)
    first = await _add(shop)
    charge = await shop.scalar("SELECT charge FROM orders WHERE id = :id", id=first["order"])
    await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", discount_percent="50")
    second = await _add(shop, link="https://i.com/d")
    discounted = await shop.scalar("SELECT charge FROM orders WHERE id = :id", id=second["order"])
    assert discounted == (charge / 2).quantize(discounted)
    await shop.check_money()


async def test_a_service_put_on_sale_since_is_for_sale_at_once(shop: Shop) -> None:
    service = shop.services[FOLLOWERS]
    await shop.execute("UPDATE services SET enabled = false WHERE id = :id", id=service)
    assert "balance" in await shop.v2(action="balance")  # remembered while the service is off sale
    await shop.execute("UPDATE services SET enabled = true WHERE id = :id", id=service)
    assert "order" in await _add(shop)
    # and a refusal is decided on the current catalog, not the remembered one
    await shop.execute("UPDATE services SET enabled = false WHERE id = :id", id=service)
    assert await _add(shop, link="https://i.com/off") == {"error": INCORRECT_SERVICE}


async def test_funds_are_refused_as_funds(shop: Shop) -> None:
    assert "order" in await _add(shop)
    await shop.execute("UPDATE customers SET balance = 0.001 WHERE id = :id", id=shop.customer_id)
    await shop.execute(
        "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after)"
        " SELECT id, 'adjustment', 0.001 - (SELECT sum(amount) FROM ledger_entries WHERE customer_id = c.id), 0.001"
        " FROM customers c WHERE id = :id",
        id=shop.customer_id,
    )
    assert await _add(shop, link="https://i.com/f") == {"error": NOT_ENOUGH_FUNDS}
    await shop.check_money()


async def test_adds_racing_discount_changes_all_go_through_and_the_ledger_holds(shop: Shop) -> None:
    """Adds keep coming while the operator flips the discount: none is refused for it (a charge
    that meets a changed account is priced again), each is one of the two prices, and the ledger
    holds.

    An add is refused ("Service temporarily unavailable") only after meeting a new change on each
    of its ACCOUNT_ATTEMPTS attempts, so the operator changes the discount one time fewer than
    that: on a loaded machine one add can span every flip (six flips failed it there)."""
    await _markup(shop)
    assert "order" in await _add(shop)
    full = await shop.scalar("SELECT charge FROM orders")

    async def flip() -> None:
        for n in range(handler.ACCOUNT_ATTEMPTS - 1):
            percent = "50" if n % 2 == 0 else "0"
            await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", discount_percent=percent)
            await asyncio.sleep(0.02)

    answers, _ = await asyncio.gather(
        asyncio.gather(*(_add(shop, link=f"https://i.com/race{n}") for n in range(40))), flip()
    )
    assert all("order" in answer for answer in answers), answers
    charges = set(await shop.scalar("SELECT array_agg(DISTINCT charge) FROM orders"))
    assert charges <= {full, (full / 2).quantize(full)}
    await shop.check_money()


async def test_an_add_that_meets_a_new_change_on_every_attempt_is_asked_to_retry_and_charged_nothing(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on re-pricing: the operator changes the discount right after each read of the
    account, so every charge meets an account other than the one it was priced for."""
    assert "balance" in await shop.v2(action="balance")  # remembered
    balance = await balance_of(shop.runtime, shop.customer_id)
    real = handler.account_for_key
    reads: list[int] = []

    async def read_then_change(hot: Any, key: str | None, *rest: Any) -> Any:
        account = await real(hot, key, *rest)
        reads.append(1)
        await shop.execute(
            "UPDATE customers SET discount_percent = :percent WHERE id = :id",
            percent=10 * (len(reads) % 2),
            id=shop.customer_id,
        )
        return account

    await shop.execute("UPDATE customers SET discount_percent = 5 WHERE id = :id", id=shop.customer_id)
    monkeypatch.setattr(handler, "account_for_key", read_then_change)
    assert await _add(shop) == {"error": SERVICE_UNAVAILABLE}
    assert len(reads) == handler.ACCOUNT_ATTEMPTS - 1  # the remembered account, then a fresh read per retry
    assert await shop.scalar("SELECT count(*) FROM orders") == 0
    assert await balance_of(shop.runtime, shop.customer_id) == balance
    await shop.check_money()


async def test_a_charge_waiting_for_the_customer_row_sees_the_change_it_waited_for(shop: Shop) -> None:
    """The operator disables the customer in a transaction that holds the customer's row; an add
    on the remembered account waits for that row meanwhile. When the change commits, the add
    must see it: nothing charged, the key refused."""
    assert "balance" in await shop.v2(action="balance")  # remembered: enabled
    balance = await balance_of(shop.runtime, shop.customer_id)
    async with shop.runtime.engine.connect() as admin:
        transaction = await admin.begin()
        await admin.execute(text("UPDATE customers SET enabled = false WHERE id = :id"), {"id": shop.customer_id})
        adding = asyncio.create_task(_add(shop))
        # until the charge is waiting for the row this transaction holds
        deadline = asyncio.get_running_loop().time() + 30
        while not await shop.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH debit AS%'"
        ):
            assert asyncio.get_running_loop().time() < deadline, "the add never waited for the customer row"
            await asyncio.sleep(0.02)
        await transaction.commit()
    assert await adding == {"error": INVALID_API_KEY}
    assert await balance_of(shop.runtime, shop.customer_id) == balance
    assert await shop.scalar("SELECT count(*) FROM orders") == 0
    await shop.check_money()


async def test_an_add_with_an_idempotency_key_reads_the_account_fresh(shop: Shop, lookups: list[str]) -> None:
    assert "balance" in await shop.v2(action="balance")
    assert "order" in await _add(shop, idempotency_key="order-0001")
    assert len(lookups) == 2
    await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", enabled=False)
    # a disabled customer's key gets nothing back, not even its earlier order's id
    assert await _add(shop, idempotency_key="order-0001") == {"error": INVALID_API_KEY}


async def test_a_remembered_account_is_not_told_about_an_active_order_after_it_is_disabled(
    database_url: str,
) -> None:
    async with shop_with(shop_settings(duplicate_link_guard=True), database_url) as shop:
        assert "order" in await _add(shop, link="https://i.com/once")
        await _admin(shop, "PATCH", f"/admin/customers/{shop.customer_id}", enabled=False)
        assert await _add(shop, link="https://i.com/once") == {"error": INVALID_API_KEY}


def test_the_cache_is_bounded_and_forgets() -> None:
    cache = customers.AccountCache(ttl_seconds=60, max_entries=3)
    account = customers.CustomerAccount(1, Decimal(0), None, Decimal(0), 1)
    for n in range(5):
        cache.put(bytes([n]), account)
    assert len(cache) == 3
    assert cache.get(bytes([0])) is None
    remembered = cache.get(bytes([4]))
    assert remembered is not None
    assert remembered.remembered
    assert not account.remembered  # what was put stays as read (the request that read it goes on with it)
    assert cache.get(bytes([4])) is remembered  # marked once
    cache.drop(bytes([4]))
    assert cache.get(bytes([4])) is None
    gone = customers.AccountCache(ttl_seconds=0)
    gone.put(b"k", account)
    assert gone.get(b"k") is None
