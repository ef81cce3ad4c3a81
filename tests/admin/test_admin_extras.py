"""Named admin tokens, the audit log, reports and stuck orders."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

import httpx

from gateway.runtime import Runtime
from tests.factories import make_customer, make_provider, make_service

# One upstream order, one gateway order (a unique index): each test order gets its own upstream id.
_UPSTREAM_IDS = itertools.count(1)


async def _order(runtime: Runtime, customer_id: int, service_id: int, provider_id: int, **fields: object) -> int:
    from sqlalchemy import text

    values = {
        "charge": "1.00",
        "cost": "0.40",
        "refunded": "0",
        "state": "placed",
        "status": "Completed",
        "upstream_order_id": next(_UPSTREAM_IDS),
        "created_at": None,
        "remains": None,
    }
    values.update(fields)
    async with runtime.engine.begin() as conn:
        order_id = await conn.scalar(
            text(
                "INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, link, quantity, rate,"
                " charge, cost, refunded, currency, state, status, upstream_order_id, remains, created_at)"
                " VALUES (:c, :s, :p, 1, 'https://x', 100, 10, :charge, :cost, :refunded, 'USD', :state, :status,"
                " :upstream_order_id, :remains, coalesce(CAST(:created_at AS timestamptz), now())) RETURNING id"
            ),
            {
                "c": customer_id,
                "s": service_id,
                "p": provider_id,
                **values,
                "charge": Decimal(str(values["charge"])),
                "cost": Decimal(str(values["cost"])),
                "refunded": Decimal(str(values["refunded"])),
                "created_at": datetime.fromisoformat(str(values["created_at"])) if values["created_at"] else None,
            },
        )
    return int(order_id)


async def test_named_tokens_work_until_revoked_and_are_audited(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post("/admin/tokens", json={"name": "console", "scope": "operator"}, headers=admin_headers)
    assert created.status_code == 201
    token = created.json()["token"]
    named = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/admin/customers", headers=named)).status_code == 200
    customer_key = (await client.post("/admin/customers", json={"name": "by console"}, headers=named)).json()["api_key"]
    listed = (await client.get("/admin/tokens", headers=admin_headers)).json()
    assert [t["name"] for t in listed] == ["console"]
    assert token not in (await client.get("/admin/tokens", headers=admin_headers)).text
    assert (await client.post("/admin/tokens", json={"name": "console"}, headers=admin_headers)).status_code == 409
    assert (await client.post("/admin/tokens", json={"name": ""}, headers=admin_headers)).status_code == 400
    assert (await client.delete(f"/admin/tokens/{listed[0]['id']}", headers=admin_headers)).status_code == 204
    assert (await client.get("/admin/customers", headers=named)).status_code == 401
    assert (await client.delete(f"/admin/tokens/{listed[0]['id']}", headers=admin_headers)).status_code == 404

    audit = (await client.get("/admin/audit", headers=admin_headers)).json()
    actions = [(a["actor"], a["action"]) for a in audit]
    assert ("token:console", "customer.create") in actions
    assert ("admin", "token.create") in actions
    assert ("admin", "token.revoke") in actions
    only = (await client.get("/admin/audit", params={"actor": "token:console"}, headers=admin_headers)).json()
    assert {a["action"] for a in only} == {"customer.create"}
    assert customer_key not in str(audit)
    assert token not in str(audit)


async def test_every_change_is_audited_with_before_and_after(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    customer = (await client.post("/admin/customers", json={"name": "A"}, headers=admin_headers)).json()
    await client.patch(f"/admin/customers/{customer['id']}", json={"name": "B"}, headers=admin_headers)
    await client.post(
        f"/admin/customers/{customer['id']}/funds", json={"amount": "3", "note": "n"}, headers=admin_headers
    )
    entries = (
        await client.get(
            "/admin/audit", params={"entity": "customer", "entity_id": str(customer["id"])}, headers=admin_headers
        )
    ).json()
    by_action = {e["action"]: e for e in entries}
    assert by_action["customer.update"]["before"]["name"] == "A"
    assert by_action["customer.update"]["after"]["name"] == "B"
    assert by_action["customer.funds"]["after"]["amount"] == "3.00000"
    assert set(by_action) == {"customer.create", "customer.update", "customer.funds"}


async def test_reports(client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    alice, _ = await make_customer(runtime, name="alice")
    bob, _ = await make_customer(runtime, name="bob")
    await _order(runtime, alice, service_id, provider_id)  # 1.00 revenue, 0.40 cost
    await _order(runtime, alice, service_id, provider_id, status="Partial", refunded="0.25")  # 0.75, cost 0.30
    await _order(runtime, bob, service_id, provider_id, status="Canceled", refunded="1.00")  # 0, 0
    await _order(runtime, bob, service_id, provider_id, created_at="2020-01-01T00:00:00Z")  # outside the window
    summary = (
        await client.get("/admin/reports/summary", params={"from": "2025-01-01T00:00:00Z"}, headers=admin_headers)
    ).json()
    assert summary == {"orders": 3, "revenue": "1.75", "cost": "0.70", "profit": "1.05", "refunds": "1.25"}
    everything = (await client.get("/admin/reports/summary", headers=admin_headers)).json()
    assert everything["orders"] == 4
    per_customer = (
        await client.get("/admin/reports/customers", params={"from": "2025-01-01T00:00:00"}, headers=admin_headers)
    ).json()
    assert [(r["key"], r["revenue"]) for r in per_customer] == [(str(alice), "1.75"), (str(bob), "0.00")]
    daily = (await client.get("/admin/reports/daily", headers=admin_headers)).json()
    assert daily[0]["key"] == "2020-01-01"
    assert sum(Decimal(r["revenue"]) for r in daily) == Decimal("2.75")
    for group in ("services", "providers"):
        rows = (await client.get(f"/admin/reports/{group}", headers=admin_headers)).json()
        assert rows[0]["orders"] == 4
    bad = await client.get("/admin/reports/planets", headers=admin_headers)
    assert bad.status_code == 400
    inverted = await client.get(
        "/admin/reports/summary",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        headers=admin_headers,
    )
    assert inverted.status_code == 400
    garbage = await client.get("/admin/reports/summary", params={"from": "yesterday"}, headers=admin_headers)
    assert garbage.status_code == 400
    balances = (await client.get("/admin/reports/balances", headers=admin_headers)).json()
    assert balances[0]["provider_id"] == provider_id
    assert balances[0]["low_balance"] is False


async def test_stuck_orders(client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    customer, _ = await make_customer(runtime)
    old = await _order(
        runtime, customer, service_id, provider_id, status="In progress", created_at="2020-01-01T00:00:00Z"
    )
    await _order(runtime, customer, service_id, provider_id, status="In progress")
    await _order(runtime, customer, service_id, provider_id, created_at="2020-01-01T00:00:00Z")  # completed
    stuck = (await client.get("/admin/orders/stuck", params={"older_than": 3600}, headers=admin_headers)).json()
    assert [o["id"] for o in stuck] == [old]
    assert (
        await client.get("/admin/orders/stuck", params={"older_than": -1}, headers=admin_headers)
    ).status_code == 400


async def test_orders_listing_filters_and_pages(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    customer, _ = await make_customer(runtime)
    ids = [await _order(runtime, customer, service_id, provider_id) for _ in range(5)]
    page = (await client.get("/admin/orders", params={"limit": 2}, headers=admin_headers)).json()
    assert [o["id"] for o in page] == ids[:-3:-1]
    nxt = (
        await client.get("/admin/orders", params={"limit": 2, "before": page[-1]["id"]}, headers=admin_headers)
    ).json()
    assert [o["id"] for o in nxt] == [ids[2], ids[1]]
    assert (await client.get("/admin/orders", params={"status": "Nope"}, headers=admin_headers)).status_code == 400
    assert (await client.get("/admin/orders", params={"state": "nope"}, headers=admin_headers)).status_code == 400
    assert (await client.get("/admin/orders", params={"limit": 0}, headers=admin_headers)).status_code == 400
    assert (await client.get("/admin/orders", params={"customer_id": "x"}, headers=admin_headers)).status_code == 400
    assert (
        len(
            (
                await client.get(
                    "/admin/orders", params={"state": "placed", "customer_id": customer}, headers=admin_headers
                )
            ).json()
        )
        == 5
    )
    detail = (await client.get(f"/admin/orders/{ids[0]}", headers=admin_headers)).json()
    assert detail["order"]["profit"] == "0.60"
    assert (await client.get("/admin/orders/999999", headers=admin_headers)).status_code == 404


async def test_an_orders_profit_is_its_share_of_the_reports(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    """One definition of profit: an order's page and the reports agree, order by order."""
    provider_id = await make_provider(runtime)
    service_id = await make_service(runtime, provider_id)
    customer, _ = await make_customer(runtime)
    cases = {  # name: (order fields, the profit it must show)
        "completed": ({"charge": "1.00", "cost": "0.40"}, "0.60"),
        "partial": ({"status": "Partial", "refunded": "0.25", "remains": 25}, "0.45"),  # cost 0.30 kept
        "canceled": ({"status": "Canceled", "refunded": "1.00"}, "0.00"),
        "failed": ({"state": "failed", "status": "Canceled", "refunded": "1.00"}, "0.00"),
        "unknown outcome": ({"state": "unknown", "status": "Pending", "upstream_order_id": None}, "0.60"),
        "still running": ({"status": "In progress"}, "0.60"),  # charged upstream until it ends
        "zero charge": ({"charge": "0", "cost": "0.40"}, "-0.40"),
        "zero charge, canceled": ({"charge": "0", "status": "Canceled"}, "0.00"),
        "zero charge, partial": ({"charge": "0", "status": "Partial", "remains": 25}, "-0.30"),
        "zero charge, failed": ({"charge": "0", "state": "failed", "status": "Canceled"}, "0.00"),
        # 0.00007 × 0.02 / 0.03 = 0.0000466…: half-up to 0.00005, on both sides.
        "rounded": ({"charge": "0.03", "refunded": "0.01", "cost": "0.00007"}, "0.01995"),
    }
    total = Decimal(0)
    for day, (name, (fields, profit)) in enumerate(cases.items(), start=1):
        created = f"2024-01-{day:02d}T12:00:00+00:00"
        order_id = await _order(runtime, customer, service_id, provider_id, created_at=created, **fields)
        shown = (await client.get(f"/admin/orders/{order_id}", headers=admin_headers)).json()["order"]["profit"]
        window = {"from": f"2024-01-{day:02d}T00:00:00Z", "to": f"2024-01-{day + 1:02d}T00:00:00Z"}
        report = (await client.get("/admin/reports/summary", params=window, headers=admin_headers)).json()
        assert report["orders"] == 1, name
        assert (shown, report["profit"]) == (profit, profit), name
        total += Decimal(profit)
    everything = (await client.get("/admin/reports/summary", headers=admin_headers)).json()
    assert Decimal(everything["profit"]) == total
