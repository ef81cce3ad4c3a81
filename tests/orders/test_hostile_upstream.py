"""A sloppy or failing upstream never freezes or bends the money.

Hostile values go over real HTTP from the simulator (``sloppy_status``, the ``answer`` fault)
through the adapter into the status sync, on real Postgres: each order's answer is applied on its
own, a value that makes no sense is kept as an anomaly, and no refund is ever made from a guess.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway import failpoints
from gateway.app import create_app
from gateway.catalog.sync import sync_provider
from gateway.orders.answers import HELD_ASKS
from gateway.orders.dispatch import record_pending
from gateway.orders.sync import check_statuses
from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import running_simulator
from gateway.worker import Worker
from tests.conftest import serving
from tests.factories import balance_of, make_customer, make_provider, make_service
from tests.orders.conftest import Shop, shop_settings

FOLLOWERS = 102  # 0.45 per 1000, min 100
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}
D = Decimal


@pytest.fixture(autouse=True)
def _no_failpoints() -> Any:
    yield
    failpoints.disarm_all()


async def _place(shop: Shop, quantity: int = 1000, link: str = "https://i.com/h") -> tuple[int, int]:
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link=link, quantity=quantity)
    assert "order" in answer, answer
    row = await shop.order(answer["order"])
    return answer["order"], row.upstream_order_id


async def _anomalies(shop: Shop, order_id: int) -> dict[str, str]:
    detail = (await shop.client.get(f"/admin/orders/{order_id}", headers=ADMIN)).json()
    return {a["kind"]: a["detail"] for a in detail["anomalies"]}


async def test_one_poisoned_order_among_many_never_holds_back_the_others(shop: Shop) -> None:
    """The reported case: one order's remains "-7" froze every refund of its provider."""
    orders = [await _place(shop, 1000 + i) for i in range(8)]
    (neg, _), (canceled, _), (partial, _), (huge_start, _), (huge_charge, _), (huge_remains, _), (weird, _), (ok, _) = (
        orders
    )
    state = shop.sim.state
    ups = dict(orders)
    state.force_order(ups[neg], "In progress", remains=7)
    state.sloppy_status(ups[neg], {"remains": "-7"})
    state.force_order(ups[canceled], "Canceled")
    state.force_order(ups[partial], "Partial", remains=400)
    state.force_order(ups[huge_start], "In progress", remains=10)
    state.sloppy_status(ups[huge_start], {"start_count": 10**25})
    state.force_order(ups[huge_charge], "In progress", remains=10)
    state.sloppy_status(ups[huge_charge], {"charge": "1e30"})
    state.force_order(ups[huge_remains], "In progress", remains=10)
    state.sloppy_status(ups[huge_remains], {"remains": str(2**64)})
    state.sloppy_status(ups[weird], {"status": "Paused by moderator"})
    state.force_order(ups[ok], "Completed")

    assert await shop.sync_statuses() == 8

    rows = {order_id: await shop.order(order_id) for order_id, _ in orders}
    # The good news is applied, refunds exact and at once.
    assert (rows[canceled].status, rows[canceled].refunded) == ("Canceled", rows[canceled].charge)
    assert rows[partial].status == "Partial"
    assert rows[partial].refunded == (rows[partial].charge * 400 / rows[partial].quantity).quantize(
        D("0.00001"), rounding="ROUND_DOWN"
    )
    assert (rows[ok].status, rows[ok].refunded) == ("Completed", 0)
    # Each hostile value is applied the documented way and kept as an anomaly; the order is still followed.
    assert (rows[neg].status, rows[neg].remains) == ("In progress", 0)
    assert "negative_remains" in await _anomalies(shop, neg)
    assert rows[huge_start].start_count is None  # not stored: nothing sane was ever reported
    assert "bad_start_count" in await _anomalies(shop, huge_start)
    assert rows[huge_charge].upstream_charge is None
    assert "bad_charge" in await _anomalies(shop, huge_charge)
    assert rows[huge_remains].remains is None  # treated as absent: nothing stored
    assert "remains_out_of_range" in await _anomalies(shop, huge_remains)
    assert (rows[weird].status, rows[weird].status_raw) == ("Pending", "Paused by moderator")
    assert "unknown_status" in await _anomalies(shop, weird)
    for order_id in (neg, huge_start, huge_charge, huge_remains, weird):
        assert rows[order_id].next_check_at is not None
        assert rows[order_id].last_checked_at is not None
    # The same hostile value again is the same anomaly, counted.
    assert await shop.sync_statuses() == 5
    detail = (await shop.client.get(f"/admin/orders/{neg}", headers=ADMIN)).json()
    assert [(a["kind"], a["times"]) for a in detail["anomalies"]] == [("negative_remains", 2)]
    assert detail["order"]["anomalies"] == 1
    listed = (await shop.client.get("/admin/orders", params={"anomalies": "true"}, headers=ADMIN)).json()
    assert {o["id"] for o in listed} == {neg, huge_start, huge_charge, huge_remains, weird}
    await shop.check_money()


@pytest.mark.parametrize(
    "sloppy", [{"omit": ["remains"]}, {"fields": {"remains": "Unknown"}}, {"fields": {"remains": "12abc"}}]
)
async def test_partial_without_a_remains_is_never_refunded_from_a_guess(shop: Shop, sloppy: dict[str, Any]) -> None:
    order_id, upstream_id = await _place(shop, 1000)
    shop.sim.state.force_order(upstream_id, "In progress", remains=600)
    await shop.sync_statuses()  # the gateway has seen remains 600: the old code refunded from that later
    shop.sim.state.force_order(upstream_id, "Partial", remains=600)
    shop.sim.state.sloppy_status(upstream_id, sloppy.get("fields"), omit=sloppy.get("omit", ()))

    for ask in range(1, HELD_ASKS + 1):
        assert await shop.sync_statuses() == 1
        row = await shop.order(order_id)
        # Held: the customer still sees the order running, nothing refunded, asked again later.
        assert (row.status, row.refunded, row.held_status, row.held_checks) == ("In progress", 0, "Partial", ask)
        status = await shop.v2(action="status", order=order_id)
        assert (status["status"], status["charge"]) == ("In progress", "0.45")
    assert row.next_check_at is None  # asked enough: it waits for the operator
    assert await shop.sync_statuses() == 0
    assert "partial_without_remains" in await _anomalies(shop, order_id)
    held = (await shop.client.get("/admin/orders", params={"held": "true"}, headers=ADMIN)).json()
    assert [o["id"] for o in held] == [order_id]
    assert held[0]["held_status"] == "Partial"

    settled = await shop.client.post(f"/admin/orders/{order_id}/settle", json={"remains": 250}, headers=ADMIN)
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert (body["status"], body["refunded"], body["remains"], body["held_status"]) == ("Partial", "0.1125", 250, None)
    assert await balance_of(shop.runtime, shop.customer_id) == D("100") - D("0.45") + D("0.1125")
    audit = (await shop.client.get("/admin/audit", headers=ADMIN)).json()
    assert any(e["action"] == "order.settle" and e["entity_id"] == str(order_id) for e in audit)
    # Settled is final: the sync leaves it alone, a second settlement is refused.
    assert await shop.sync_statuses() == 0
    again = await shop.client.post(f"/admin/orders/{order_id}/settle", json={"remains": 1}, headers=ADMIN)
    assert again.status_code == 409
    await shop.check_money()


async def test_a_held_status_is_applied_once_the_upstream_gives_a_remains(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop, 2000)
    shop.sim.state.force_order(upstream_id, "Partial", remains=500)
    shop.sim.state.sloppy_status(upstream_id, omit=["remains"])
    await shop.sync_statuses()
    assert (await shop.order(order_id)).held_status == "Partial"
    shop.sim.state.clear_sloppy_status(upstream_id)
    await shop.sync_statuses()
    row = await shop.order(order_id)
    assert (row.status, row.held_status, row.held_checks, row.remains) == ("Partial", None, 0, 500)
    assert row.refunded == D("0.225")  # 0.90 × 500 / 2000
    await shop.check_money()


async def test_canceled_after_partial_delivery_refunds_only_the_undelivered_part(shop: Shop) -> None:
    delivered_some, up_some = await _place(shop, 1000)
    delivered_all, up_all = await _place(shop, 1000, link="https://i.com/all")
    shop.sim.state.force_order(up_some, "Canceled")
    shop.sim.state.sloppy_status(up_some, {"remains": "300"})
    shop.sim.state.force_order(up_all, "Canceled")
    shop.sim.state.sloppy_status(up_all, {"remains": "0"})
    await shop.sync_statuses()
    some = await shop.order(delivered_some)
    assert (some.status, some.status_raw, some.refunded, some.remains) == ("Partial", "Canceled", D("0.135"), 300)
    contradictory = await shop.order(delivered_all)
    assert (contradictory.status, contradictory.held_status, contradictory.refunded) == ("Pending", "Canceled", 0)
    assert "canceled_with_no_remains" in await _anomalies(shop, delivered_all)
    # The operator decides: the whole charge back.
    settled = await shop.client.post(
        f"/admin/orders/{delivered_all}/settle",
        json={"refund": "0.45", "note": "panel confirmed nothing delivered"},
        headers=ADMIN,
    )
    assert (settled.json()["status"], settled.json()["refunded"]) == ("Canceled", "0.45")
    await shop.check_money()


async def test_partial_with_a_contradictory_remains_is_held(shop: Shop) -> None:
    zero, up_zero = await _place(shop, 1000)
    above, up_above = await _place(shop, 1000, link="https://i.com/above")
    shop.sim.state.force_order(up_zero, "Partial", remains=10)
    shop.sim.state.sloppy_status(up_zero, {"remains": 0})
    shop.sim.state.force_order(up_above, "Partial", remains=10)
    shop.sim.state.sloppy_status(up_above, {"remains": 5000})
    await shop.sync_statuses()
    for order_id in (zero, above):
        row = await shop.order(order_id)
        assert (row.held_status, row.refunded) == ("Partial", 0)
    assert {"partial_without_remains", "remains_above_quantity"} <= set(await _anomalies(shop, above))
    await shop.check_money()


async def test_a_value_the_database_refuses_stays_on_its_own_order(shop: Shop) -> None:
    """Whatever a check refuses (here one added for the test), only that order's answer is lost."""
    poisoned, up_poisoned = await _place(shop, 1000)
    canceled, up_canceled = await _place(shop, 1000, link="https://i.com/c")
    await shop.execute("ALTER TABLE orders ADD CONSTRAINT test_no_666 CHECK (start_count IS DISTINCT FROM 666)")
    shop.sim.state.force_order(up_poisoned, "In progress", remains=10, start_count=666)
    shop.sim.state.force_order(up_canceled, "Canceled")
    await shop.sync_statuses()
    row = await shop.order(poisoned)
    assert row.last_error.startswith("the upstream's answer could not be stored: ")
    assert "test_no_666" in row.last_error
    assert row.next_check_at is not None  # still followed
    assert "unstorable_answer" in await _anomalies(shop, poisoned)
    assert (await shop.order(canceled)).refunded == D("0.45")
    await shop.check_money()


async def test_one_provider_failing_never_stops_the_others(shop: Shop) -> None:
    """A second provider whose client raises something nobody expected (a bug, a broken proxy):
    an edge the simulator cannot produce, so a MockTransport stands in for that provider only."""
    order_id, upstream_id = await _place(shop)
    broken = await make_provider(
        shop.runtime, api_url="http://127.0.0.1:9/api/v2", api_key="broken-key-0001", name="broken"
    )
    service = await make_service(shop.runtime, broken, 5, upstream_rate=D("0.5"))
    stranded = (await shop.v2(action="add", service=service, link="https://i.com/b", quantity=100))["order"]
    await shop.execute("UPDATE orders SET state = 'placed', upstream_order_id = 77 WHERE id = :id", id=stranded)
    shop.sim.state.force_order(upstream_id, "Canceled")
    await shop.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")

    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in a transport")

    def transports(provider_id: int | str) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(explode) if provider_id == broken else httpx.AsyncHTTPTransport()

    other = Runtime.build(shop.runtime.settings, shop.runtime.database_url, transport_factory=transports)
    try:
        # The broken provider's order is leased first (newest first), and fails its whole batch.
        assert await check_statuses(other.orders, other.providers, other.policy.status_sync_interval_seconds) == 2
    finally:
        await other.aclose()
    assert (await shop.order(order_id)).status == "Canceled"
    assert (await shop.order(stranded)).status == "Pending"  # its lease runs out; asked again later
    await shop.check_money()


async def test_a_failing_worker_step_does_not_stop_the_next_ones(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop)
    shop.sim.state.force_order(upstream_id, "Completed")
    await shop.execute("UPDATE orders SET next_check_at = now()")
    failpoints.arm("worker_step_status_sync", "error")
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
    queued = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/q", quantity=1000))[
        "order"
    ]
    shop.sim.clear_faults()
    await shop.execute("UPDATE orders SET next_attempt_at = now() WHERE id = :id", id=queued)
    worker = Worker(shop.runtime)
    await worker.step()
    assert (await shop.order(queued)).state == "placed"  # dispatch ran before it
    assert "refill_sync" in worker.last_step_seconds
    assert "catalog_sync" in worker.last_step_seconds
    assert (await shop.order(order_id)).status == "Pending"  # the failed step did nothing
    metrics = (await shop.client.get("/metrics")).text
    assert 'gateway_worker_step_failures_total{step="status_sync"} 1.0' in metrics
    failpoints.disarm_all()
    await worker.step()
    assert (await shop.order(order_id)).status == "Completed"


async def test_anomalies_and_held_orders_are_in_the_metrics(shop: Shop) -> None:
    _held, up_held = await _place(shop)
    shop.sim.state.force_order(up_held, "Partial", remains=10)
    shop.sim.state.sloppy_status(up_held, omit=["remains"])
    await shop.sync_statuses()
    metrics = (await shop.client.get("/metrics")).text
    assert "gateway_orders_held 1.0" in metrics
    assert 'gateway_order_anomalies_total{kind="partial_without_remains"} 1.0' in metrics


# --- add: what the upstream answers, and the database failing after it accepted ---------------


async def test_an_upstream_order_id_reused_by_the_upstream_leaves_the_second_order_unknown(shop: Shop) -> None:
    first, first_upstream = await _place(shop)
    shop.sim.set_faults(FaultRule(kind="answer", action="add", when="after", body=f'{{"order": {first_upstream}}}'))
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/dup", quantity=1000)
    second = answer["order"]  # charged and accepted upstream: the customer gets its id
    row = await shop.order(second)
    assert (row.state, row.upstream_order_id) == ("unknown", None)
    assert f"which order {first} already has" in row.last_error
    assert "duplicate_upstream_order_id" in await _anomalies(shop, second)
    # The upstream's Canceled for that id refunds the order that really has it, once.
    shop.sim.state.force_order(first_upstream, "Canceled")
    await shop.sync_statuses()
    assert (await shop.order(first)).refunded == D("0.45")
    assert (await shop.order(second)).refunded == 0
    await shop.check_money()


async def test_an_order_id_beyond_bigint_is_an_unknown_outcome(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="answer", action="add", when="after", body='{"order": 99999999999999999999999}'))
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/big", quantity=1000)
    row = await shop.order(answer["order"])
    assert row.state == "unknown"
    assert "out of range" in row.last_error


async def test_resolving_with_an_upstream_id_another_order_has_is_refused(shop: Shop) -> None:
    first, first_upstream = await _place(shop)
    shop.sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
    unknown = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/u", quantity=1000))[
        "order"
    ]
    shop.sim.clear_faults()
    refused = await shop.client.post(
        f"/admin/orders/{unknown}/resolve",
        json={"outcome": "placed", "upstream_order_id": first_upstream},
        headers=ADMIN,
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == f"upstream order {first_upstream} already belongs to order {first}"
    assert (await shop.order(unknown)).state == "unknown"
    # The database enforces it whatever the code does.
    with pytest.raises(Exception, match="uq_orders_provider_id_upstream_order_id"):
        await shop.execute("UPDATE orders SET upstream_order_id = :u WHERE id = :id", u=first_upstream, id=unknown)


async def test_database_failing_after_an_accepted_add_answers_the_id_and_records_it_later(shop: Shop) -> None:
    failpoints.arm("record_outcome", "error", times=3)
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/db", quantity=1000)
    order_id = answer["order"]  # not "Service temporarily unavailable": it was charged and is running upstream
    assert shop.sim.request_count("add") == 1
    row = await shop.order(order_id)
    assert (row.state, row.upstream_order_id) == ("submitting", None)
    assert order_id in shop.runtime.pending_outcomes.items
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 1
    )  # the database still fails
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 1
    )
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 0
    )  # it is back
    row = await shop.order(order_id)
    assert row.state == "placed"
    assert row.upstream_order_id == shop.sim.state.orders()[0].order_id
    calls = await shop.scalar(
        "SELECT count(*) FROM upstream_calls WHERE order_id = :id AND action = 'add'", id=order_id
    )
    assert calls == 1
    assert shop.sim.request_count("add") == 1  # never sent twice
    await shop.check_money()


async def test_a_late_record_lands_on_an_order_the_sweep_made_unknown(shop: Shop) -> None:
    failpoints.arm("record_outcome", "error", times=1)
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/l", quantity=1000))[
        "order"
    ]
    await shop.execute("UPDATE orders SET state = 'unknown' WHERE id = :id", id=order_id)  # the sweep, meanwhile
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 0
    )
    assert (await shop.order(order_id)).state == "placed"


async def test_a_late_record_on_an_order_the_operator_resolved_is_an_anomaly(shop: Shop) -> None:
    failpoints.arm("record_outcome", "error", times=1)
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/r", quantity=1000))[
        "order"
    ]
    await shop.execute("UPDATE orders SET state = 'unknown' WHERE id = :id", id=order_id)
    resolved = await shop.client.post(f"/admin/orders/{order_id}/resolve", json={"outcome": "failed"}, headers=ADMIN)
    assert resolved.json()["state"] == "failed"
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 0
    )
    row = await shop.order(order_id)
    assert (row.state, row.refunded) == ("failed", row.charge)  # nothing moved again
    anomalies = await _anomalies(shop, order_id)
    assert "the upstream accepted it as order" in anomalies["late_outcome"]
    assert "already failed" in anomalies["late_outcome"]


async def test_unknown_outcomes_carry_their_upstream_calls_at_once(shop: Shop) -> None:
    """The evidence is written with the outcome, not buffered for a second."""
    shop.sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/e", quantity=1000))[
        "order"
    ]
    row = await shop.order(order_id)
    assert row.state == "unknown"
    calls = await shop.scalar(
        "SELECT count(*) FROM upstream_calls WHERE order_id = :id AND action = 'add' AND outcome = 'unknown'",
        id=order_id,
    )
    assert calls == 1
    assert row.submitted_at is not None


@pytest.mark.parametrize(
    "services",
    [
        [{"service": 9001, "name": "Huge rate", "rate": "1e30", "min": 10, "max": 100}],
        [{"service": 9002, "name": "Huge max", "rate": "1", "min": 10, "max": str(2**64)}],
        [{"service": str(2**64), "name": "Huge id", "rate": "1", "min": 10, "max": 100}],
    ],
)
async def test_one_absurd_service_never_fails_the_catalog_sync(shop: Shop, services: list[dict[str, Any]]) -> None:
    good = {"service": 9100, "name": "Fine", "rate": "1.5", "min": 10, "max": 100, "category": "X", "type": "Default"}
    shop.sim.set_faults(FaultRule(kind="answer", action="services", body=__import__("json").dumps([*services, good])))
    synced = await shop.client.post(f"/admin/providers/{shop.provider_id}/sync", headers=ADMIN)
    assert synced.status_code == 200, synced.text
    assert synced.json()["skipped"] == 1
    assert await shop.scalar("SELECT count(*) FROM services WHERE upstream_service_id = 9100") == 1


async def test_settle_refuses_bad_input_and_changes_nothing(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop, 1000)
    shop.sim.state.force_order(upstream_id, "Partial", remains=10)
    shop.sim.state.sloppy_status(upstream_id, omit=["remains"])
    await shop.sync_statuses()
    for body in (
        {},
        {"remains": 10, "refund": "0.1"},
        {"remains": -1},
        {"remains": 1001},
        {"remains": 2**70},
        {"remains": "ten"},
        {"remains": 1.5},
        {"refund": "-0.01"},
        {"refund": "0.45001"},
        {"refund": "0.000001"},
        {"refund": "NaN"},
        {"refund": "1e400"},
        {"refund": 0.1},
        {"refund": ""},
        {"refund": "٣"},
        {"remains": 10, "note": "x" * 501},
        {"remains": 10, "surprise": True},
    ):
        response = await shop.client.post(f"/admin/orders/{order_id}/settle", json=body, headers=ADMIN)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"], body
    row = await shop.order(order_id)
    assert (row.status, row.refunded, row.held_status) == ("Pending", 0, "Partial")
    assert (
        await shop.client.post("/admin/orders/999999/settle", json={"remains": 1}, headers=ADMIN)
    ).status_code == 404
    unauthorized = await shop.client.post(f"/admin/orders/{order_id}/settle", json={"remains": 1})
    assert unauthorized.status_code == 401
    # A finished order cannot be settled.
    done, up_done = await _place(shop, 1000, link="https://i.com/done")
    shop.sim.state.force_order(up_done, "Completed")
    await shop.sync_statuses()
    finished = await shop.client.post(f"/admin/orders/{done}/settle", json={"remains": 0}, headers=ADMIN)
    assert finished.status_code == 409
    # A unicode note is kept as written.
    ok = await shop.client.post(
        f"/admin/orders/{order_id}/settle", json={"remains": 1000, "note": "panel: «nothing sent» ✓"}, headers=ADMIN
    )
    assert ok.status_code == 200
    ledger = (await shop.client.get(f"/admin/orders/{order_id}", headers=ADMIN)).json()["ledger"]
    assert ledger[-1]["note"] == "settled by the operator: panel: «nothing sent» ✓"
    await shop.check_money()


class _CutsTheDatabaseAfterAdd(httpx.AsyncBaseTransport):
    """The real network to the simulator; once an ``add`` was answered, the database goes away
    (no new connections, every open one killed) before the gateway can record it."""

    def __init__(self, maintenance_dsn: str, database: str) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._dsn = maintenance_dsn
        self._database = database
        self.cut = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if b"action=add" in request.content and not self.cut:
            await response.aread()
            await _database(self._dsn, self._database, allow=False)
            self.cut = True
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _database(dsn: str, name: str, *, allow: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await conn.close()


async def test_the_database_going_away_after_an_accepted_add(server_url: str, database_url: str) -> None:
    """Not a failpoint: Postgres itself refuses the gateway while the upstream has the order."""
    maintenance = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    name = make_url(database_url).database
    assert name is not None
    transport = _CutsTheDatabaseAfterAdd(maintenance, name)
    async with running_simulator(SimulatorConfig(speed=0)) as sim:
        app = create_app(shop_settings(), database_url=database_url, transport_factory=lambda _: transport)
        runtime: Runtime = app.state.runtime
        async with serving(app) as client:
            provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="sim")
            await sync_provider(runtime.sessions, runtime.providers, provider_id)
            _, key = await make_customer(runtime, balance="10")
            async with runtime.engine.connect() as conn:
                service_id = await conn.scalar(text("SELECT id FROM services WHERE upstream_service_id = 102"))
            try:
                response = await client.post(
                    "/api/v2",
                    data={
                        "key": key,
                        "action": "add",
                        "service": service_id,
                        "link": "https://i.com/x",
                        "quantity": 1000,
                    },
                )
                answer = response.json()
                assert transport.cut
                assert "order" in answer, answer  # the truth: it was charged and runs upstream
                assert answer["order"] in runtime.pending_outcomes.items
            finally:
                await _database(maintenance, name, allow=True)
            # The background retry records it once the database is back.
            for _ in range(200):
                if not runtime.pending_outcomes.items:
                    break
                await asyncio.sleep(0.1)
            assert not runtime.pending_outcomes.items
            async with runtime.engine.connect() as conn:
                row = (await conn.execute(text("SELECT state, upstream_order_id FROM orders"))).one()
            assert row.state == "placed"
            assert row.upstream_order_id == sim.state.orders()[0].order_id
            assert sim.request_count("add") == 1


@pytest.mark.parametrize("fault", [None, FaultRule(kind="drop", action="add", when="after")])
async def test_a_record_whose_commit_landed_is_not_recorded_twice(shop: Shop, fault: FaultRule | None) -> None:
    """The database committed the outcome, then the connection died before it said so."""
    if fault is not None:
        shop.sim.set_faults(fault)
    failpoints.arm("record_outcome_answer_lost", "error", times=1)
    order_id = (
        await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/lost", quantity=1000)
    )["order"]
    assert order_id in shop.runtime.pending_outcomes.items
    assert (
        await record_pending(
            shop.runtime.orders, shop.runtime.pending_outcomes, shop.runtime.policy.queued_order_max_age_seconds
        )
        == 0
    )
    row = await shop.order(order_id)
    assert row.state == ("unknown" if fault else "placed")
    assert await shop.scalar("SELECT count(*) FROM upstream_calls WHERE order_id = :id", id=order_id) == 1
    assert await _anomalies(shop, order_id) == {}
