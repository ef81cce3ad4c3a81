"""Least privilege at the customer edge: key guessing is slow and cheap to refuse, a customer's own
limit never moves for anyone else's calls, allowlisted addresses, a daily spend limit the charge
itself enforces, and a duplicate-link guard that holds under concurrency."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.errors import DAILY_SPEND_LIMIT_REACHED, INVALID_API_KEY, TOO_MANY_REQUESTS
from gateway.ledger.keys import hash_key
from gateway.orders.store import NotCharged
from gateway.v2 import handler
from gateway.v2.clients import client_address
from tests.conftest import ADMIN_TOKEN
from tests.factories import balance_of
from tests.orders.conftest import Shop, shop_settings, shop_with

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FOLLOWERS = 102  # 0.45 per 1000, min 100: 100 of them cost 0.045


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[Shop]:
    settings = shop_settings(
        rate_limit_per_minute=5,
        invalid_key_limit_per_minute=20,
        invalid_key_global_per_minute=100_000,
        trusted_proxies="10.0.0.0/8",
    )
    async with shop_with(settings, database_url) as shop:
        yield shop


async def post(client: httpx.AsyncClient, **data: Any) -> Any:
    response = await client.post("/api/v2", data=data)
    assert response.status_code == 200
    return response.json()


async def test_a_thousand_made_up_keys_are_mostly_refused_without_a_lookup(
    limited: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = [0]
    real_lookup = handler.account_for_key

    async def counting(hot: Any, key: str | None, *rest: Any) -> Any:
        lookups[0] += 1
        return await real_lookup(hot, key, *rest)

    monkeypatch.setattr(handler, "account_for_key", counting)
    async with limited.client_from("198.51.100.66") as guesser:
        answers = [await post(guesser, key=f"guess-{i:04d}", action="balance") for i in range(1000)]
    assert answers[:20] == [{"error": INVALID_API_KEY}] * 20
    assert answers[20:] == [{"error": TOO_MANY_REQUESTS}] * 980
    assert lookups[0] <= 20
    # A real customer, elsewhere, has all of their own limit: five calls, then limited.
    async with limited.client_from("203.0.113.10") as customer:
        own = [await post(customer, key=limited.key, action="balance") for _ in range(6)]
    assert all("balance" in a for a in own[:5])
    assert own[5] == {"error": TOO_MANY_REQUESTS}


async def test_calls_without_a_key_count_as_guesses(limited: Shop) -> None:
    async with limited.client_from("198.51.100.67") as guesser:
        answers = [await post(guesser, action="balance") for _ in range(25)]
    assert answers[19] == {"error": INVALID_API_KEY}
    assert answers[24] == {"error": TOO_MANY_REQUESTS}


def test_the_client_address_believes_only_trusted_proxies() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)

    def scope(peer: str, *forwarded: str) -> dict[str, Any]:
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}

    assert client_address(scope("203.0.113.5"), proxies) == "203.0.113.5"
    # An untrusted peer cannot choose its address by sending the header itself.
    assert client_address(scope("198.51.100.1", "203.0.113.9"), proxies) == "198.51.100.1"
    assert client_address(scope("10.1.2.3", "203.0.113.9"), proxies) == "203.0.113.9"
    # The client's own X-Forwarded-For entries come first; only the last hop appended is believed.
    assert client_address(scope("10.1.2.3", "6.6.6.6, 203.0.113.9"), proxies) == "203.0.113.9"
    assert client_address(scope("10.1.2.3", "6.6.6.6", "203.0.113.9, 10.9.9.9"), proxies) == "203.0.113.9"
    assert client_address(scope("10.1.2.3", "garbage"), proxies) == "10.1.2.3"
    assert client_address(scope("10.1.2.3", "[2001:db8::1]:443"), proxies) == "2001:db8::1"
    assert client_address(scope("::ffff:203.0.113.5"), proxies) == "203.0.113.5"
    assert client_address(scope("203.0.113.5", "10.0.0.1"), ()) == "203.0.113.5"


def test_the_client_address_without_proxies_is_the_peer_as_parsed_however_many_peers() -> None:
    """Without trusted proxies the peer's parsed form is remembered by its text: still the same
    answers, the second time and past the bound."""

    def scope(peer: str) -> dict[str, Any]:
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", b"6.6.6.6")]}

    for _ in range(2):
        assert client_address(scope("::ffff:203.0.113.5"), ()) == "203.0.113.5"
        assert client_address(scope("2001:DB8::1"), ()) == "2001:db8::1"
        assert client_address(scope("not an address"), ()) == "not an address"
        assert client_address({"client": None, "headers": []}, ()) == "unknown"
    for n in range(5000):
        assert client_address(scope(f"10.{n // 256 % 256}.{n % 256}.7"), ()) == f"10.{n // 256 % 256}.{n % 256}.7"
    assert client_address(scope("::ffff:203.0.113.5"), ()) == "203.0.113.5"


async def patch_customer(shop: Shop, **values: Any) -> httpx.Response:
    return await shop.client.patch(f"/admin/customers/{shop.customer_id}", json=values, headers=ADMIN)


async def test_a_key_used_from_outside_its_allowlist_is_an_invalid_key(limited: Shop) -> None:
    response = await patch_customer(limited, allowed_ips=["203.0.113.0/24", "2001:db8::/32", "192.0.2.7"])
    assert response.status_code == 200, response.text
    assert response.json()["allowed_ips"] == ["203.0.113.0/24", "2001:db8::/32", "192.0.2.7/32"]
    async with limited.client_from("203.0.113.77") as inside:
        assert "balance" in await post(inside, key=limited.key, action="balance")
    async with limited.client_from("198.51.100.8") as outside:
        assert await post(outside, key=limited.key, action="balance") == {"error": INVALID_API_KEY}
    # Through a trusted proxy the forwarded address counts; through an untrusted one it does not.
    async with limited.client_from("10.0.0.5", **{"X-Forwarded-For": "203.0.113.9"}) as proxied:
        assert "balance" in await post(proxied, key=limited.key, action="balance")
    async with limited.client_from("198.51.100.9", **{"X-Forwarded-For": "203.0.113.9"}) as spoofing:
        assert await post(spoofing, key=limited.key, action="balance") == {"error": INVALID_API_KEY}
    shown = (await limited.client.get(f"/admin/customers/{limited.customer_id}", headers=ADMIN)).json()
    assert shown["ip_refused_from"] in ("198.51.100.8", "198.51.100.9")
    assert shown["ip_refused_at"] is not None
    # An empty list lifts it.
    assert (await patch_customer(limited, allowed_ips=[])).json()["allowed_ips"] is None


async def test_the_allowlist_holds_under_fifty_concurrent_adds(shop: Shop) -> None:
    assert (await patch_customer(shop, allowed_ips=["203.0.113.0/24"])).status_code == 200
    inside = shop.client_from("203.0.113.1")
    outside = shop.client_from("198.51.100.1")
    params = {"key": shop.key, "action": "add", "service": shop.services[FOLLOWERS], "quantity": 100}
    async with inside, outside:
        answers = await asyncio.gather(
            *(post(inside if i % 2 else outside, link=f"https://i.com/{i}", **params) for i in range(50))
        )
    assert sum("order" in a for a in answers) == 25
    assert sum(a == {"error": INVALID_API_KEY} for a in answers) == 25
    assert await shop.scalar("SELECT count(*) FROM orders") == 25
    await shop.check_money()


@pytest.mark.parametrize(
    "value",
    [
        "203.0.113.0/24",
        ["not an address"],
        ["203.0.113.1/33"],
        ["203.0.113.1/24"],  # host bits set: a typo, not a range
        [" 203.0.113.1"],
        ["１.２.３.４"],
        [5],
        [None],
        ["203.0.113.1"] * 0 + [f"203.0.113.{i}" for i in range(101)],
        {"ip": "203.0.113.1"},
    ],
)
async def test_bad_allowlists_are_refused_and_change_nothing(shop: Shop, value: Any) -> None:
    before = (await shop.client.get(f"/admin/customers/{shop.customer_id}", headers=ADMIN)).json()
    response = await patch_customer(shop, allowed_ips=value)
    assert response.status_code == 400, response.text
    assert (await shop.client.get(f"/admin/customers/{shop.customer_id}", headers=ADMIN)).json() == before


async def test_the_daily_spend_limit_holds_under_fifty_concurrent_adds(shop: Shop) -> None:
    response = await patch_customer(shop, daily_spend_limit="1.00")
    assert response.status_code == 200, response.text
    assert response.json()["daily_spend_limit"] == "1.00"
    params = {"action": "add", "service": shop.services[FOLLOWERS], "quantity": 100}
    answers = await asyncio.gather(*(shop.v2(link=f"https://i.com/s{i}", **params) for i in range(50)))
    placed = [a for a in answers if "order" in a]
    # 0.045 each: 22 fit in 1.00 (0.99), the 23rd would pass it.
    assert len(placed) == 22
    assert [a for a in answers if "order" not in a] == [{"error": DAILY_SPEND_LIMIT_REACHED}] * 28
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100") - 22 * Decimal("0.045")
    shown = (await shop.client.get(f"/admin/customers/{shop.customer_id}", headers=ADMIN)).json()
    assert shown["spent_today"] == "0.99"
    await shop.check_money()
    # Yesterday's spending does not count today.
    await shop.execute("UPDATE customers SET spent_day = spent_day - 1")
    assert "order" in await shop.v2(link="https://i.com/next-day", **params)
    # Raising the limit lets the customer go on; removing it too.
    await shop.execute("UPDATE customers SET spent_day = spent_day + 1")
    assert (await patch_customer(shop, daily_spend_limit=None)).json()["daily_spend_limit"] is None
    assert "order" in await shop.v2(link="https://i.com/unlimited", **params)


async def test_not_enough_funds_is_still_not_enough_funds_under_a_limit(shop: Shop) -> None:
    await patch_customer(shop, daily_spend_limit="1000")
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/x", quantity=50000 * 5)
    assert "error" in answer  # over the service's max
    await shop.execute("UPDATE customers SET balance = 0.01")
    await shop.execute("DELETE FROM ledger_entries")
    await shop.execute(
        "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after) VALUES (:id, 'deposit', 0.01, 0.01)",
        id=shop.customer_id,
    )
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/x", quantity=100)
    assert answer == {"error": "Not enough funds on balance"}


@pytest.mark.parametrize("value", [0, "0", -1, "-0.01", "abc", "1e3", "NaN", "Infinity", "１０", True, [1], "0.001"])
async def test_bad_spend_limits_are_refused_and_change_nothing(shop: Shop, value: Any) -> None:
    response = await patch_customer(shop, daily_spend_limit=value)
    assert response.status_code == 400, response.text
    shown = (await shop.client.get(f"/admin/customers/{shop.customer_id}", headers=ADMIN)).json()
    assert shown["daily_spend_limit"] is None


@pytest.fixture
async def guarded(database_url: str) -> AsyncIterator[Shop]:
    async with shop_with(shop_settings(duplicate_link_guard=True), database_url) as shop:
        yield shop


async def test_twenty_concurrent_adds_on_one_link_with_the_guard_make_one_order(guarded: Shop) -> None:
    params = {"action": "add", "service": guarded.services[FOLLOWERS], "link": "https://i.com/one", "quantity": 100}
    answers = await asyncio.gather(*(guarded.v2(**params) for _ in range(20)))
    assert sum("order" in a for a in answers) == 1
    assert await guarded.scalar("SELECT count(*) FROM orders") == 1
    assert guarded.sim.request_count("add") == 1
    await guarded.check_money()


async def test_a_refused_charge_blames_the_limit_only_when_the_limit_is_why(shop: Shop) -> None:
    # The answer to a charge that changed nothing is read after it: a deposit may have landed in
    # between, so "the funds cover it now" must never be taken for "the limit was reached".
    store = shop.runtime.orders

    async def values(charge: str, **changed: Any) -> dict[str, Any]:
        return {
            "customer_id": shop.customer_id,
            "charge": Decimal(charge),
            "key_hash": hash_key(shop.key),
            "discount": Decimal(0),
            "allowed_ips": None,
            "revision": await shop.scalar("SELECT revision FROM catalog_revision WHERE id = 1"),
            **changed,
        }

    async def why(charge: str, **changed: Any) -> NotCharged:
        return await store.why_not_charged(await values(charge, **changed))

    assert await why("0.50") is NotCharged.FUNDS  # no limit, funds cover
    await patch_customer(shop, daily_spend_limit="1.00")
    assert await why("0.50") is NotCharged.FUNDS
    await shop.execute("UPDATE customers SET spent_today = 0.80, spent_day = (now() AT TIME ZONE 'UTC')::date")
    assert await why("0.50") is NotCharged.DAILY_LIMIT
    assert await why("0.20") is NotCharged.FUNDS
    # and a charge for an account that is not the customer's any more, or priced from an earlier
    # price book, is neither: the account is read again
    stale = await shop.scalar("SELECT revision FROM catalog_revision WHERE id = 1") - 1
    assert await why("0.50", revision=stale) is NotCharged.ACCOUNT_CHANGED
    assert await why("0.50", key_hash=hash_key("an-old-key")) is NotCharged.ACCOUNT_CHANGED
    assert await why("0.50", discount=Decimal(5)) is NotCharged.ACCOUNT_CHANGED
    assert await why("0.50", allowed_ips=["203.0.113.0/24"]) is NotCharged.ACCOUNT_CHANGED
    await shop.execute("UPDATE customers SET enabled = false WHERE id = :id", id=shop.customer_id)
    assert await why("0.50") is NotCharged.ACCOUNT_CHANGED
