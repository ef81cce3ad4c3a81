"""Contract tests: every v2 action, in both dialects, through every input encoding, asserting the
exact JSON a client receives (PROTOCOL.md sections 1 and 2)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.orders.sync import check_statuses
from tests.factories import make_customer
from tests.orders.conftest import Shop

FOLLOWERS_REFILL = 101  # refill and cancel enabled
FOLLOWERS = 102  # cancel enabled, no refill
VIEWS = 113  # neither refill nor cancel
ENCODINGS = ["form", "multipart", "json", "query"]


async def call(client: httpx.AsyncClient, encoding: str, params: dict[str, Any]) -> Any:
    params = {k: str(v) for k, v in params.items()}
    if encoding == "form":
        response = await client.post("/api/v2", data=params)
    elif encoding == "multipart":
        response = await client.post("/api/v2", files={k: (None, v) for k, v in params.items()})
    elif encoding == "json":
        response = await client.post(
            "/api/v2/", content=json.dumps(params), headers={"Content-Type": "application/json"}
        )
    else:
        response = await client.get("/api/v2", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def _sync(shop: Shop) -> None:
    await shop.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")
    await check_statuses(shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds)


@pytest.mark.parametrize("dialect", ["documented", "perfectpanel"])
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_every_action(shop: Shop, dialect: str, encoding: str) -> None:
    _, key = await make_customer(shop.runtime, balance="50", dialect=dialect)
    _, stranger = await make_customer(shop.runtime, balance="50", name="stranger")

    async def v2(**params: Any) -> Any:
        return await call(shop.client, encoding, {"key": key, **params})

    assert await v2(action="balance") == {"balance": "50.00", "currency": "USD"}
    services = await v2(action="services")
    assert services[0] == {
        "service": shop.services[101],
        "name": "Instagram Followers [Real] [Refill 30D]",
        "type": "Default",
        "category": services[0]["category"],
        "rate": "1.85",
        "min": 50,
        "max": 100000,
        "refill": True,
        "cancel": True,
        "dripfeed": False,
    }

    # add: three orders; one will complete, one stays active, one is the stranger's.
    first = (await v2(action="add", service=shop.services[FOLLOWERS_REFILL], link="https://i.com/a", quantity=100))[
        "order"
    ]
    second = (await v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/b", quantity=1000))["order"]
    foreign = (
        await call(
            shop.client,
            encoding,
            {
                "key": stranger,
                "action": "add",
                "service": shop.services[FOLLOWERS],
                "link": "https://i.com/c",
                "quantity": 100,
            },
        )
    )["order"]
    assert all(isinstance(i, int) for i in (first, second, foreign))

    shop.sim.state.force_order((await shop.order(first)).upstream_order_id, "Completed", start_count=10)
    shop.sim.state.force_order((await shop.order(second)).upstream_order_id, "In progress", remains=600, start_count=5)
    await _sync(shop)

    completed = {"status": "Completed", "charge": "0.185", "start_count": "10", "remains": "0", "currency": "USD"}
    active = {"status": "In progress", "charge": "0.45", "start_count": "5", "remains": "600", "currency": "USD"}
    assert await v2(action="status", order=first) == completed
    assert await v2(action="status", order=foreign) == {"error": "Incorrect order ID"}
    multi = await v2(action="status", orders=f"{first}, {second},{foreign},xyz")
    if dialect == "documented":
        assert multi == [
            {"order": first, **completed},
            {"order": second, **active},
            {"order": foreign, "error": "Incorrect order ID"},
            {"order": "xyz", "error": "Incorrect order ID"},
        ]
    else:
        assert multi == {
            str(first): completed,
            str(second): active,
            str(foreign): {"error": "Incorrect order ID"},
            "xyz": {"error": "Incorrect order ID"},
        }

    # refill: only the completed order of a refill-enabled service.
    refill = await v2(action="refill", order=first)
    assert set(refill) == {"refill"}
    assert isinstance(refill["refill"], int)
    assert await v2(action="refill", order=second) == {"error": "Refill is not available for this order"}
    assert await v2(action="refill", order=foreign) == {"error": "Incorrect order ID"}
    multi_refill = await v2(action="refill", orders=f"{first},{second},{foreign}")
    assert multi_refill == [
        # The upstream refuses a second refill while the first is active; told like any refusal.
        {"order": first, "refill": {"error": "Refill is not available for this order"}},
        {"order": second, "refill": {"error": "Refill is not available for this order"}},
        {"order": foreign, "refill": {"error": "Incorrect order ID"}},
    ]

    # refill_status, answered locally.
    assert await v2(action="refill_status", refill=refill["refill"]) == {"status": "Pending"}
    assert await v2(action="refill_status", refill=999999) == {"error": "Refill not found"}
    assert await v2(action="refill_status", refills=f"{refill['refill']},999999") == [
        {"refill": refill["refill"], "status": "Pending"},
        {"refill": 999999, "status": {"error": "Refill not found"}},
    ]

    # cancel: forwarded for the active order; refused for completed and foreign ones.
    cancel = await v2(action="cancel", orders=f"{second},{first},{foreign}")
    not_available = "Cancel is not available for this order"
    if dialect == "documented":
        assert cancel == [
            {"order": second, "canceled": True},
            {"order": first, "canceled": False, "error": not_available},
            {"order": foreign, "canceled": False, "error": "Incorrect order ID"},
        ]
    else:
        assert cancel == [
            {"order": second, "cancel": 1},
            {"order": first, "cancel": {"error": not_available}},
            {"order": foreign, "cancel": {"error": "Incorrect order ID"}},
        ]
    # The refund follows the upstream's Canceled/Partial.
    await _sync(shop)
    after = await v2(action="status", order=second)
    assert after["status"] in ("Canceled", "Partial")
    await shop.check_money()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_protocol_errors_are_http_200_json(shop: Shop, encoding: str) -> None:
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"action": "balance"}, {"error": "Invalid API key"}),
        ({"key": "nope", "action": "balance"}, {"error": "Invalid API key"}),
        ({"key": shop.key}, {"error": "Incorrect request"}),
        ({"key": shop.key, "action": "teleport"}, {"error": "Incorrect request"}),
        ({"key": shop.key, "action": "status"}, {"error": "Incorrect order ID"}),
        (
            {"key": shop.key, "action": "status", "orders": ",".join(str(i) for i in range(1, 102))},
            {"error": "Too many ids (max 100)"},
        ),
        (
            {"key": shop.key, "action": "add", "service": "0", "link": "https://x.com/a", "quantity": "100"},
            {"error": "Incorrect service ID"},
        ),
        ({"key": shop.key, "action": "refill", "order": "1"}, {"error": "Incorrect order ID"}),
        ({"key": shop.key, "action": "refill_status", "refill": "1"}, {"error": "Refill not found"}),
    ]
    for params, expected in cases:
        assert await call(shop.client, encoding, params) == expected, params


async def test_body_wins_over_query_and_extras_are_ignored(shop: Shop) -> None:
    response = await shop.client.post(
        "/api/v2?key=wrong&action=services", data={"key": shop.key, "action": "balance", "colour": "red"}
    )
    assert response.json() == {"balance": "100.00", "currency": "USD"}


async def test_cancel_of_a_queued_order_refunds_at_once(shop: Shop) -> None:
    from gateway.simulator.faults import FaultRule

    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/q", quantity=1000))[
        "order"
    ]
    assert (await shop.order(order_id)).state == "queued"
    assert await shop.v2(action="cancel", order=order_id) == [{"order": order_id, "canceled": True}]
    row = await shop.order(order_id)
    assert (row.state, row.status, row.refunded) == ("canceled", "Canceled", row.charge)
    assert shop.sim.request_count("cancel") == 0
    assert await shop.v2(action="cancel", order=order_id) == [
        {"order": order_id, "canceled": False, "error": "Cancel is not available for this order"}
    ]
    await shop.check_money()


async def test_cancel_refused_for_services_without_cancel(shop: Shop) -> None:
    order_id = (await shop.v2(action="add", service=shop.services[VIEWS], link="https://i.com/r", quantity=1000))[
        "order"
    ]
    assert await shop.v2(action="cancel", orders=str(order_id)) == [
        {"order": order_id, "canceled": False, "error": "Cancel is not available for this order"}
    ]
    assert shop.sim.request_count("cancel") == 0
