"""Charge drift and the operational alerts, against the simulator over loopback on real Postgres.

The simulator bills more than its catalog says (``PUT /control/billing``): each order shows its
drift, the providers report sums it, and the worker's alert step opens one ``charge_drift`` alert.
Each operational alert opens when its condition starts and closes when it ends.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from gateway.orders.watch import evaluate_alerts
from gateway.simulator.faults import FaultRule
from gateway.upstream.breaker import BreakerSnapshot, CircuitBreaker
from gateway.worker import Worker
from tests.orders.conftest import Shop

FOLLOWERS = 102  # 0.45 per 1000, min 100
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}
D = Decimal


async def _place(shop: Shop, quantity: int = 1000) -> int:
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/h", quantity=quantity)
    assert "order" in answer, answer
    return int(answer["order"])


async def _alerts(shop: Shop, kind: str) -> list[dict[str, Any]]:
    response = await shop.client.get("/admin/alerts", params={"kind": kind, "open": "true"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return list(response.json())


async def _evaluate(shop: Shop) -> None:
    await Worker(shop.runtime).evaluate_alerts()


async def _billing(shop: Shop, percent: str) -> None:
    async with httpx.AsyncClient() as control:
        response = await control.put(f"{shop.sim.control_url}/billing", json={"overcharge_percent": percent})
        assert response.status_code == 200, response.text


async def test_an_upstream_that_bills_more_than_its_catalog_shows_drift_per_order_and_provider_and_alerts(
    shop: Shop,
) -> None:
    honest = await _place(shop)
    await shop.sync_statuses()
    await _evaluate(shop)
    assert await _alerts(shop, "charge_drift") == []

    await _billing(shop, "10")
    over = [await _place(shop) for _ in range(3)]
    partial = await _place(shop)
    upstream_partial = (await shop.order(partial)).upstream_order_id
    shop.sim.state.force_order(upstream_partial, "Partial", remains=400)
    # A hostile charge on one more order: not stored, an anomaly, and the others still count.
    hostile = await _place(shop)
    shop.sim.state.sloppy_status((await shop.order(hostile)).upstream_order_id, {"charge": "12abc"})
    await shop.sync_statuses()

    # Per order: cost 0.45 for 1000; billed 10 % more.
    detail = (await shop.client.get(f"/admin/orders/{over[0]}", headers=ADMIN)).json()
    assert detail["charge_drift"] == {
        "upstream_charge": "0.495",
        "expected_cost": "0.45",
        "reported_cost": "0.495",
        "drift": "0.045",
    }
    # Partial: 600 of 1000 delivered, expected pro rata; the upstream kept 10 % more of that.
    detail = (await shop.client.get(f"/admin/orders/{partial}", headers=ADMIN)).json()
    assert detail["order"]["status"] == "Partial"
    assert detail["charge_drift"]["expected_cost"] == "0.27"
    assert detail["charge_drift"]["reported_cost"] == "0.297"
    detail = (await shop.client.get(f"/admin/orders/{hostile}", headers=ADMIN)).json()
    assert detail["charge_drift"]["upstream_charge"] is None
    assert "unreadable_value" in {a["kind"] for a in detail["anomalies"]}
    detail = (await shop.client.get(f"/admin/orders/{honest}", headers=ADMIN)).json()
    assert detail["charge_drift"]["drift"] == "0.00"

    # Per provider: the honest order, three overbilled ones and the partial (the hostile one reported nothing).
    report = (await shop.client.get("/admin/reports/providers", headers=ADMIN)).json()
    (row,) = [r for r in report if r["key"] == str(shop.provider_id)]
    expected = D("0.45") * 4 + D("0.27")
    reported = D("0.45") + D("0.495") * 3 + D("0.297")
    assert row["charged_orders"] == 5
    assert D(row["expected_cost"]) == expected
    assert D(row["reported_cost"]) == reported
    assert D(row["drift"]) == reported - expected
    assert row["drift_percent"] == str(((reported - expected) * 100 / expected).quantize(D("0.01")))

    # The alert: one, however often the worker looks.
    await _evaluate(shop)
    await _evaluate(shop)
    (alert,) = await _alerts(shop, "charge_drift")
    assert alert["subject"] == f"provider:{shop.provider_id}"
    assert D(alert["details"]["drift"]) == reported - expected
    assert alert["details"]["threshold_percent"] == "2"
    metrics = (await shop.client.get("/metrics")).text
    assert 'gateway_alerts_open{kind="charge_drift"} 1.0' in metrics

    # The overbilled orders age out of the last day: the alert closes.
    await shop.execute(
        "UPDATE orders SET created_at = now() - interval '2 days' WHERE id = ANY(CAST(:ids AS bigint[]))",
        ids=[*over, partial],
    )
    await _evaluate(shop)
    assert await _alerts(shop, "charge_drift") == []
    await shop.check_money()


async def test_low_balance_opens_and_closes(shop: Shop) -> None:
    response = await shop.client.patch(
        f"/admin/providers/{shop.provider_id}", json={"low_balance_threshold": "50"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    shop.sim.set_balance("10")
    assert (await shop.client.post("/admin/reports/balances/refresh", headers=ADMIN)).status_code == 200
    await _evaluate(shop)
    (alert,) = await _alerts(shop, "low_balance")
    assert alert["subject"] == f"provider:{shop.provider_id}"
    assert alert["details"]["balance"] == "10.00"
    assert alert["details"]["warning_level"] == "50.00"

    shop.sim.set_balance("1000")
    assert (await shop.client.post("/admin/reports/balances/refresh", headers=ADMIN)).status_code == 200
    await _evaluate(shop)
    assert await _alerts(shop, "low_balance") == []


async def test_unknown_orders_open_an_alert_until_the_operator_resolves_them(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
    order_id = await _place(shop)
    shop.sim.clear_faults()
    assert (await shop.order(order_id)).state == "unknown"
    await _evaluate(shop)
    (alert,) = await _alerts(shop, "orders_unknown")
    assert alert["details"] == {"orders": 1, "order_ids": [order_id]}

    response = await shop.client.post(f"/admin/orders/{order_id}/resolve", json={"outcome": "failed"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    await _evaluate(shop)
    assert await _alerts(shop, "orders_unknown") == []


async def test_orders_queued_too_long_open_an_alert_until_they_leave(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
    order_id = await _place(shop)
    assert (await shop.order(order_id)).state == "queued"
    await _evaluate(shop)
    assert await _alerts(shop, "orders_queued") == []  # queued, but not for long

    await shop.execute("UPDATE orders SET created_at = now() - interval '1 hour' WHERE id = :id", id=order_id)
    await _evaluate(shop)
    (alert,) = await _alerts(shop, "orders_queued")
    assert alert["details"]["order_ids"] == [order_id]
    assert alert["details"]["threshold_seconds"] == shop.runtime.settings.queued_alert_seconds

    shop.sim.clear_faults()
    assert (await shop.client.post(f"/admin/orders/{order_id}/retry", headers=ADMIN)).status_code == 200
    assert await Worker(shop.runtime).dispatch_queued() == 1
    assert (await shop.order(order_id)).state == "placed"
    await _evaluate(shop)
    assert await _alerts(shop, "orders_queued") == []


async def test_anomalies_open_an_alert_per_kind_for_a_day(shop: Shop) -> None:
    order_id = await _place(shop)
    shop.sim.state.sloppy_status((await shop.order(order_id)).upstream_order_id, {"remains": "-7"})
    await shop.sync_statuses()
    await shop.sync_statuses()  # the same anomaly again: still one alert
    await _evaluate(shop)
    (alert,) = await _alerts(shop, "order_anomalies")
    assert alert["subject"] == "negative_remains"
    assert alert["details"]["order_ids"] == [order_id]

    await shop.execute("UPDATE order_anomalies SET last_seen_at = now() - interval '25 hours'")
    await _evaluate(shop)
    assert await _alerts(shop, "order_anomalies") == []


def _snapshot(state: str, unhealthy_since: float | None, last_success_at: float | None = None) -> BreakerSnapshot:
    return BreakerSnapshot(
        state=state,  # type: ignore[arg-type]
        consecutive_failures=0,
        failures=0,
        successes=0,
        short_circuited=0,
        times_opened=1,
        opened_at=unhealthy_since,
        retry_in=None,
        unhealthy_since=unhealthy_since,
        last_success_at=last_success_at,
    )


async def test_a_circuit_open_too_long_opens_an_alert_and_a_closed_one_closes_it(shop: Shop) -> None:
    rt = shop.runtime
    policy = rt.watch_policy
    threshold = policy.circuit_open_alert_seconds
    pid = shop.provider_id

    async def evaluate(state: str, since: float | None, now: float, success: float | None = None) -> None:
        await evaluate_alerts(rt.orders, rt.sessions, {pid: _snapshot(state, since, success)}, policy, now)

    await evaluate("open", 100.0, 100.0 + threshold - 1)
    assert await _alerts(shop, "circuit_open") == []
    # Half-open after a failed probe still counts from the first opening.
    await evaluate("half_open", 100.0, 100.0 + threshold + 5)
    (alert,) = await _alerts(shop, "circuit_open")
    assert alert["subject"] == f"provider:{pid}"
    assert alert["details"]["down_seconds"] == threshold + 5
    # Another process that has not seen this provider closes nothing.
    await evaluate_alerts(rt.orders, rt.sessions, {}, policy, 0.0)
    assert len(await _alerts(shop, "circuit_open")) == 1
    # A process whose circuit is closed but that has not called the provider lately closes nothing either.
    await evaluate("closed", None, 10_000.0, success=None)
    await evaluate("closed", None, 10_000.0, success=10_000.0 - threshold - 1)
    assert len(await _alerts(shop, "circuit_open")) == 1
    # One that got an answer recently does.
    await evaluate("closed", None, 10_000.0, success=9_999.0)
    assert await _alerts(shop, "circuit_open") == []


def test_the_breaker_remembers_since_when_it_has_not_been_closed() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, clock=lambda: now[0])
    assert breaker.snapshot().unhealthy_since is None
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.snapshot().unhealthy_since == 0.0
    now[0] = 11.0
    assert breaker.allow()  # the half-open probe
    breaker.record_failure()  # re-opens: opened_at moves, unhealthy_since does not
    snapshot = breaker.snapshot()
    assert snapshot.opened_at == 11.0
    assert snapshot.unhealthy_since == 0.0
    now[0] = 22.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.snapshot().unhealthy_since is None
    assert breaker.snapshot().last_success_at == 22.0
