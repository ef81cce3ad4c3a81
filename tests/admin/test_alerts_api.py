"""GET /admin/alerts and POST /admin/alerts/{id}/ack: filters, bad input refused with a clear 4xx and
nothing changed, the acknowledgement audited once, and one open alert per condition under a race."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text

from gateway import alerts
from gateway.runtime import Runtime


def _runtime(app: Litestar) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _reconcile(app: Litestar, kind: str, current: dict[str, dict[str, Any]]) -> alerts.Reconciled:
    async with _runtime(app).engine.begin() as conn:
        return await alerts.reconcile(conn, kind, current)


async def _state(app: Litestar) -> list[tuple[Any, ...]]:
    async with _runtime(app).engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, kind, subject, acknowledged_by, acknowledged_at, closed_at FROM alerts ORDER BY id")
        )
        audit = await conn.scalar(text("SELECT count(*) FROM audit_log"))
    return [*map(tuple, rows), ("audit", audit)]


async def test_alerts_open_list_filter_and_close(
    app: Litestar, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert (await client.get("/admin/alerts")).status_code == 401
    assert (await client.get("/admin/alerts", headers=admin_headers)).json() == []
    opened = await _reconcile(app, "orders_unknown", {"orders": {"orders": 2, "order_ids": [4, 5]}})
    assert opened.opened == ["orders"]
    await _reconcile(app, "low_balance", {"provider:1": {"balance": "1.00"}, "provider:2": {"balance": "0.00"}})
    await _reconcile(app, "low_balance", {"provider:2": {"balance": "0.50"}})  # provider 1 recovered

    every = (await client.get("/admin/alerts", headers=admin_headers)).json()
    assert [(a["kind"], a["subject"], a["open"]) for a in every] == [
        ("low_balance", "provider:2", True),
        ("low_balance", "provider:1", False),
        ("orders_unknown", "orders", True),
    ]
    assert every[0]["details"] == {"balance": "0.50"}  # refreshed in place, not a second alert
    open_low = (
        await client.get("/admin/alerts", params={"open": "true", "kind": "low_balance"}, headers=admin_headers)
    ).json()
    assert [a["subject"] for a in open_low] == ["provider:2"]
    closed = (await client.get("/admin/alerts", params={"open": "false"}, headers=admin_headers)).json()
    assert [a["subject"] for a in closed] == ["provider:1"]
    assert closed[0]["closed_at"] is not None
    page = (
        await client.get("/admin/alerts", params={"limit": 1, "before": every[0]["id"]}, headers=admin_headers)
    ).json()
    assert [a["id"] for a in page] == [every[1]["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": "marg\u00efn"}, "kind"),
        ({"kind": "x" * 5000}, "kind"),
        ({"open": "maybe"}, "open"),
        ({"open": "\u2713"}, "open"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "9" * 100}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-5"}, "before"),
        ({"before": "0"}, "before"),
        ({"before": "abc"}, "before"),
    ],
)
async def test_bad_list_parameters_are_refused_naming_them(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get("/admin/alerts", params=params, headers=admin_headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert field in (body.get("field") or "") + body.get("error", "") + str(body.get("extra", ""))


async def test_ack_is_audited_once_and_changes_nothing_else(
    app: Litestar, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _reconcile(app, "orders_queued", {"orders": {"orders": 1}})
    (alert,) = (await client.get("/admin/alerts", headers=admin_headers)).json()
    assert (await client.post(f"/admin/alerts/{alert['id']}/ack")).status_code == 401

    response = await client.post(f"/admin/alerts/{alert['id']}/ack", headers=admin_headers)
    assert response.status_code == 200, response.text
    acked = response.json()
    assert acked["acknowledged_by"]
    assert acked["acknowledged_at"] is not None
    assert acked["open"] is True  # acknowledged, not closed: the condition still holds
    again = await client.post(f"/admin/alerts/{alert['id']}/ack", headers=admin_headers)
    assert again.status_code == 200
    assert again.json()["acknowledged_at"] == acked["acknowledged_at"]
    audit = (await client.get("/admin/audit", params={"entity": "alert"}, headers=admin_headers)).json()
    assert [(a["action"], a["entity_id"], a["actor"]) for a in audit] == [
        ("alert.ack", str(alert["id"]), acked["acknowledged_by"])
    ]

    # The condition ends: the acknowledged alert closes like any other.
    await _reconcile(app, "orders_queued", {})
    (closed,) = (await client.get("/admin/alerts", headers=admin_headers)).json()
    assert closed["open"] is False
    assert closed["acknowledged_by"] == acked["acknowledged_by"]


@pytest.mark.parametrize(
    "alert_id",
    ["0", "-1", str(2**63), "9" * 100, "abc", "1.5", "%C3%BC", "%00", "1;DROP TABLE alerts"],
)
async def test_ack_of_a_bad_or_unknown_id_is_refused_and_changes_nothing(
    app: Litestar, client: httpx.AsyncClient, admin_headers: dict[str, str], alert_id: str
) -> None:
    await _reconcile(app, "orders_unknown", {"orders": {"orders": 1}})
    before = await _state(app)
    response = await client.post(f"/admin/alerts/{alert_id}/ack", headers=admin_headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert await _state(app) == before


async def test_ack_of_a_missing_alert_is_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/admin/alerts/424242/ack", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["error"] == "alert not found"


async def test_concurrent_evaluators_open_one_alert_per_condition(app: Litestar) -> None:
    condition = {"provider:7": {"drift": "1.00"}}
    results = await asyncio.gather(*(_reconcile(app, "charge_drift", condition) for _ in range(8)))
    assert sum(len(r.opened) for r in results) == 1
    async with _runtime(app).engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM alerts WHERE kind = 'charge_drift'")) == 1


async def test_an_unknown_kind_is_a_programming_error(app: Litestar) -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        await _reconcile(app, "weather", {"x": {}})
