"""Placing orders through /api/v2 against the simulator: charge, send, record, and every way the
upstream can fail during ``add`` (PROTOCOL.md section 5)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gateway.settings import Settings
from gateway.simulator.faults import FaultRule
from tests.factories import balance_of, make_customer
from tests.orders.conftest import Shop, shop_settings

LIKES = 111  # Instagram Likes, rate 0.27819, min 10, drip-feed
FOLLOWERS = 102  # 0.45 per 1000, min 100


async def test_add_charges_places_and_answers_the_order_id(shop: Shop) -> None:
    answer = await shop.v2(
        action="add", service=shop.services[FOLLOWERS], link="https://instagram.com/x", quantity=1000
    )
    order_id = answer["order"]
    assert isinstance(order_id, int)
    order = await shop.order(order_id)
    assert (order.state, order.status) == ("placed", "Pending")
    assert order.charge == Decimal("0.45000")
    assert order.cost == Decimal("0.45000")
    assert order.upstream_order_id is not None
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("99.55")
    assert shop.sim.request_count("add") == 1
    forwarded = shop.sim.requests("add")[0].params
    assert forwarded["service"] == str(FOLLOWERS)
    assert forwarded["link"] == "https://instagram.com/x"
    assert forwarded["quantity"] == "1000"
    status = await shop.v2(action="status", order=str(order_id))
    assert status == {"status": "Pending", "charge": "0.45", "start_count": "0", "remains": "1000", "currency": "USD"}
    await shop.check_money()


async def test_markup_and_discount_are_charged_and_profit_recorded(shop: Shop) -> None:
    await shop.client.post(
        "/admin/markup-rules",
        json={"scope": "global", "percent": "100"},
        headers={"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"},
    )
    _, key = await make_customer(shop.runtime, balance="10", discount_percent="10")
    answer = await shop.v2(
        key=key, action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000
    )
    order = await shop.order(answer["order"])
    assert order.rate == Decimal("0.81")  # 0.45 × 2 × 0.9
    assert order.charge == Decimal("0.81000")
    assert order.cost == Decimal("0.45000")


async def test_not_enough_funds_changes_nothing(shop: Shop) -> None:
    _, key = await make_customer(shop.runtime, balance="0.10")
    answer = await shop.v2(
        key=key, action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000
    )
    assert answer == {"error": "Not enough funds on balance"}
    assert await shop.scalar("SELECT count(*) FROM orders") == 0
    assert shop.sim.request_count("add") == 0


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"service": "999999", "link": "https://i.com/a", "quantity": "100"}, "Incorrect service ID"),
        ({"service": "abc", "link": "https://i.com/a", "quantity": "100"}, "Incorrect service ID"),
        ({"link": "https://i.com/a", "quantity": "100"}, "Incorrect service ID"),
        ({"service": "FOLLOWERS", "link": "https://i.com/a", "quantity": "99"}, "Quantity less than minimal 100"),
        ({"service": "FOLLOWERS", "link": "https://i.com/a", "quantity": "50001"}, "Quantity more than maximal 50000"),
        ({"service": "FOLLOWERS", "quantity": "100"}, "Incorrect link"),
        ({"service": "FOLLOWERS", "link": "https://i.com/a", "quantity": "-5"}, "Incorrect request"),
    ],
)
async def test_invalid_add_is_refused_before_any_charge(shop: Shop, params: dict[str, str], error: str) -> None:
    if params.get("service") == "FOLLOWERS":
        params = {**params, "service": str(shop.services[FOLLOWERS])}
    assert await shop.v2(action="add", **params) == {"error": error}
    assert await shop.scalar("SELECT count(*) FROM orders") == 0
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100")


async def test_input_refused_upstream_is_refunded_at_once_and_told(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Incorrect link"))
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    assert answer == {"error": "Incorrect link"}
    order = await shop.scalar("SELECT id FROM orders")
    row = await shop.order(order)
    assert (row.state, row.status, row.refunded) == ("failed", "Canceled", row.charge)
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100")
    await shop.check_money()


@pytest.mark.parametrize(
    ("fault", "state"),
    [
        (FaultRule(kind="error", action="add", error="Not enough funds on balance"), "queued"),
        (FaultRule(kind="error", action="add", error="Invalid API key"), "queued"),
        (FaultRule(kind="http_5xx", action="add", status_code=502), "unknown"),
        (FaultRule(kind="html", action="add"), "unknown"),
        (FaultRule(kind="malformed_json", action="add"), "unknown"),
        (FaultRule(kind="drop", action="add"), "unknown"),
        (FaultRule(kind="hang", action="add"), "unknown"),
        (FaultRule(kind="drop", action="add", when="after"), "unknown"),
    ],
)
async def test_upstream_faults_during_add_end_in_the_prescribed_state(shop: Shop, fault: FaultRule, state: str) -> None:
    shop.sim.set_faults(fault)
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    assert "order" in answer, answer
    row = await shop.order(answer["order"])
    assert row.state == state
    assert row.refunded == 0
    # Charged, and never sent twice.
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("99.55")
    assert shop.sim.request_count("add") == 1
    status = await shop.v2(action="status", order=answer["order"])
    assert status["status"] == "Pending"
    await shop.check_money()


@pytest.fixture
def refused_settings() -> Settings:
    return shop_settings()


async def test_refused_connection_queues_the_order(shop: Shop) -> None:
    await shop.execute("UPDATE providers SET api_url = 'http://127.0.0.1:9/api/v2'")
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    row = await shop.order(answer["order"])
    assert row.state == "queued"
    assert row.next_attempt_at is not None
    assert shop.sim.request_count("add") == 0


async def test_five_hundred_concurrent_adds_on_one_balance(shop: Shop) -> None:
    """500 simultaneous adds of 1.00 against 100.00: exactly 100 orders, balance 0.00, 100 upstream adds."""
    package = 114  # Story Views package, rate 0.35 -> fix the price at 1.00
    headers = {"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}
    await shop.client.patch(f"/admin/services/{shop.services[package]}", json={"rate": "1.00"}, headers=headers)

    async def one() -> object:
        return await shop.v2(action="add", service=shop.services[package], link="https://i.com/story")

    answers = await asyncio.gather(*(one() for _ in range(500)))
    placed = [a for a in answers if "order" in a]
    refused = [a for a in answers if a == {"error": "Not enough funds on balance"}]
    assert len(placed) == 100
    assert len(refused) == 400
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("0")
    assert await shop.scalar("SELECT count(*) FROM orders") == 100
    assert await shop.scalar("SELECT count(*) FROM orders WHERE state = 'placed'") == 100
    assert shop.sim.request_count("add") == 100
    await shop.check_money()


@pytest.mark.parametrize(
    ("upstream", "params", "charge", "quantity", "forwarded"),
    [
        # Drip-feed: 100 per run × 5 runs, charged for 500 at 0.27819.
        (
            LIKES,
            {"link": "https://i.com/p", "quantity": "100", "runs": "5", "interval": "30"},
            "0.13910",
            500,
            {"quantity": "100", "runs": "5", "interval": "30"},
        ),
        # Package: charged the rate once.
        (114, {"link": "https://i.com/s"}, "0.35000", 1, {}),
        # Custom comments: quantity is the number of lines.
        (
            121,
            {"link": "https://i.com/p", "comments": "great\nnice\r\n\nwow\nok\nsuper"},
            "0.06250",
            5,
            {"comments": "great\nnice\nwow\nok\nsuper"},
        ),
        # Subscriptions: no link, charged at most max × posts.
        (
            131,
            {"username": "alice", "min": "100", "max": "200", "posts": "10", "delay": "0"},
            "1.10000",
            2000,
            {"username": "alice", "max": "200", "posts": "10"},
        ),
        (
            304,
            {"link": "https://youtube.com/p", "quantity": "100", "answer_number": "2"},
            "0.44000",
            100,
            {"answer_number": "2"},
        ),
    ],
)
async def test_add_for_each_kind_of_service(
    shop: Shop, upstream: int, params: dict[str, str], charge: str, quantity: int, forwarded: dict[str, str]
) -> None:
    answer = await shop.v2(action="add", service=shop.services[upstream], **params)
    assert "order" in answer, answer
    order = await shop.order(answer["order"])
    assert order.state == "placed", order.last_error
    assert order.charge == Decimal(charge)
    assert order.quantity == quantity
    sent = shop.sim.requests("add")[-1].params
    assert sent["service"] == str(upstream)
    for name, value in forwarded.items():
        assert sent[name] == value


async def test_vanished_or_disabled_service_is_refused(shop: Shop) -> None:
    await shop.execute("UPDATE services SET upstream_present = false WHERE id = :id", id=shop.services[FOLLOWERS])
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    assert answer == {"error": "Incorrect service ID"}
    await shop.execute("UPDATE services SET enabled = false WHERE id = :id", id=shop.services[LIKES])
    answer = await shop.v2(action="add", service=shop.services[LIKES], link="https://i.com/y", quantity=1000)
    assert answer == {"error": "Incorrect service ID"}
    assert shop.sim.request_count("add") == 0


async def test_status_is_scoped_to_the_caller(shop: Shop) -> None:
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000))[
        "order"
    ]
    _, other = await make_customer(shop.runtime, balance="1")
    assert await shop.v2(key=other, action="status", order=order_id) == {"error": "Incorrect order ID"}
    assert await shop.v2(key=other, action="status", order=999999) == {"error": "Incorrect order ID"}
    assert await shop.v2(action="status", order="abc") == {"error": "Incorrect order ID"}
    assert (await shop.v2(action="status", order=f" {order_id} "))["status"] == "Pending"


async def test_upstream_calls_are_logged_against_the_order(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="hang", action="add"))
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000))[
        "order"
    ]
    shop.sim.clear_faults()
    placed_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/z", quantity=1000))[
        "order"
    ]
    await shop.runtime.call_log.flush(shop.runtime.engine)
    detail = (
        await shop.client.get(
            f"/admin/orders/{order_id}", headers={"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}
        )
    ).json()
    assert [(c["action"], c["outcome"]) for c in detail["upstream_calls"]] == [("add", "unknown")]
    assert detail["upstream_calls"][0]["error"]
    placed = await shop.scalar(
        "SELECT count(*) FROM upstream_calls WHERE order_id = :id AND outcome = 'ok'", id=placed_id
    )
    assert placed == 1
