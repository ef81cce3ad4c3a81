"""Customers and funds through the admin API: the key shown once, rotation, disabling, deposits
and deductions with notes, the ledger — and what must be refused."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from gateway.runtime import Runtime
from tests.factories import balance_of, ledger_sum


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await client.post("/admin/customers", json={"name": "Alice", **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


async def test_create_shows_the_key_once_and_it_works(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await _create(client, admin_headers, balance="25.50", dialect="perfectpanel", discount_percent="5")
    key = str(created["api_key"])
    assert key.startswith("smm_")
    assert len(key) >= 4 + 32
    assert created["balance"] == "25.50"
    shown = (await client.get(f"/admin/customers/{created['id']}", headers=admin_headers)).json()
    assert "api_key" not in shown
    assert key not in (await client.get("/admin/customers", headers=admin_headers)).text
    balance = await client.post("/api/v2", data={"key": key, "action": "balance"})
    assert balance.json() == {"balance": "25.50", "currency": "USD"}
    ledger = (await client.get(f"/admin/customers/{created['id']}/ledger", headers=admin_headers)).json()
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger] == [("deposit", "25.50", "25.50")]


async def test_rotate_key_stops_the_old_one_at_once(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await _create(client, admin_headers)
    old = str(created["api_key"])
    rotated = await client.post(f"/admin/customers/{created['id']}/rotate-key", headers=admin_headers)
    new = rotated.json()["api_key"]
    assert new != old
    assert (await client.post("/api/v2", data={"key": old, "action": "balance"})).json() == {"error": "Invalid API key"}
    assert "balance" in (await client.post("/api/v2", data={"key": new, "action": "balance"})).json()
    assert (await client.post("/admin/customers/999/rotate-key", headers=admin_headers)).status_code == 404


async def test_disable_and_patch(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await _create(client, admin_headers)
    path = f"/admin/customers/{created['id']}"
    patched = await client.patch(
        path, json={"enabled": False, "name": "Alice B", "dialect": None}, headers=admin_headers
    )
    assert patched.json()["enabled"] is False
    assert (await client.post("/api/v2", data={"key": created["api_key"], "action": "balance"})).json() == {
        "error": "Invalid API key"
    }
    for body, field in (
        ({"dialect": "klingon"}, "dialect"),
        ({"discount_percent": "101"}, "discount_percent"),
        ({"discount_percent": "-1"}, "discount_percent"),
        ({"name": ""}, "name"),
        ({"name": "x\ny"}, "name"),
    ):
        response = await client.patch(path, json=body, headers=admin_headers)
        assert response.status_code == 400, body
        assert response.json()["field"] == field
    assert (await client.patch(path, json={"balance": "1000"}, headers=admin_headers)).status_code == 400
    assert (await client.get(path, headers=admin_headers)).json()["name"] == "Alice B"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "a", "balance": "-5"},
        {"name": "a", "balance": "abc"},
        {"name": "a", "balance": 1.5},
        {"name": "a", "balance": "1.123456"},
        {"name": "a", "balance": "1e30"},
        {"name": "a", "dialect": "x"},
        {"name": "a", "discount_percent": "200"},
        {"name": "a", "colour": "red"},
        {},
    ],
)
async def test_bad_customer_creation_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, object]
) -> None:
    response = await client.post("/admin/customers", json=body, headers=admin_headers)
    assert response.status_code == 400, response.text
    assert (await client.get("/admin/customers", headers=admin_headers)).json() == []


async def test_funds_add_deduct_and_refuse_below_zero(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _create(client, admin_headers)
    path = f"/admin/customers/{created['id']}/funds"
    assert (
        await client.post(path, json={"amount": "10.00", "note": "bank transfer #1"}, headers=admin_headers)
    ).json() == {"balance": "10.00"}
    assert (await client.post(path, json={"amount": "-2.5", "note": "chargeback"}, headers=admin_headers)).json() == {
        "balance": "7.50"
    }
    refused = await client.post(path, json={"amount": "-7.50001"}, headers=admin_headers)
    assert refused.status_code == 400
    assert refused.json()["field"] == "amount"
    for body in (
        {"amount": "0"},
        {"amount": "x"},
        {"amount": 3.3},
        {"amount": "NaN"},
        {"note": "no amount"},
        {"amount": "1", "note": "n" * 1001},
    ):
        assert (await client.post(path, json=body, headers=admin_headers)).status_code == 400, body
    assert (
        await client.post("/admin/customers/999/funds", json={"amount": "1"}, headers=admin_headers)
    ).status_code == 404
    customer_id = int(str(created["id"]))
    assert await balance_of(runtime, customer_id) == Decimal("7.5")
    assert await ledger_sum(runtime, customer_id) == Decimal("7.5")
    ledger = (await client.get(f"/admin/customers/{customer_id}/ledger", headers=admin_headers)).json()
    assert [(e["kind"], e["amount"], e["note"]) for e in ledger] == [
        ("adjustment", "-2.50", "chargeback"),
        ("deposit", "10.00", "bank transfer #1"),
    ]
    page = (
        await client.get(
            f"/admin/customers/{customer_id}/ledger",
            params={"limit": 1, "before": ledger[0]["id"]},
            headers=admin_headers,
        )
    ).json()
    assert [e["kind"] for e in page] == ["deposit"]


async def test_concurrent_deductions_never_overdraw(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _create(client, admin_headers, balance="10")
    path = f"/admin/customers/{created['id']}/funds"
    results = await asyncio.gather(
        *(client.post(path, json={"amount": "-1"}, headers=admin_headers) for _ in range(25))
    )
    assert sum(r.status_code == 200 for r in results) == 10
    customer_id = int(str(created["id"]))
    assert await balance_of(runtime, customer_id) == 0
    assert await ledger_sum(runtime, customer_id) == 0
