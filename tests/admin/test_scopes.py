"""Scoped admin tokens: every admin route, taken from the OpenAPI schema (so a new route cannot slip
through unscoped), called with a token of each scope; a call beyond the scope is a 403 and changes
nothing. And the operator's own token: too short or a placeholder, start-up refuses it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar import Litestar

from gateway.settings import SettingsError, load_settings
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCOPES = ("read", "operator", "admin")
# Every admin route that is not a GET, with the scope it needs. A new one must be added here,
# deliberately: the test fails on any route the table does not know.
WRITES = {
    ("POST", "/admin/providers"): "admin",
    ("PATCH", "/admin/providers/{provider_id}"): "admin",
    ("POST", "/admin/providers/{provider_id}/sync"): "operator",
    ("POST", "/admin/providers/{provider_id}/balance/refresh"): "operator",
    ("POST", "/admin/tokens"): "admin",
    ("DELETE", "/admin/tokens/{token_id}"): "admin",
    ("PATCH", "/admin/services/{service_id}"): "operator",
    ("PUT", "/admin/services/{service_id}/routes"): "operator",
    ("POST", "/admin/markup-rules"): "operator",
    ("DELETE", "/admin/markup-rules/{rule_id}"): "operator",
    ("PUT", "/admin/customers/{customer_id}/rates/{service_id}"): "operator",
    ("DELETE", "/admin/customers/{customer_id}/rates/{service_id}"): "operator",
    ("POST", "/admin/customers"): "operator",
    ("PATCH", "/admin/customers/{customer_id}"): "operator",
    ("POST", "/admin/customers/{customer_id}/rotate-key"): "operator",
    ("POST", "/admin/customers/{customer_id}/funds"): "operator",
    ("POST", "/admin/customers/{customer_id}/webhook-secret"): "operator",
    ("POST", "/admin/customers/{customer_id}/webhook-test"): "operator",
    ("POST", "/admin/customers/{customer_id}/webhooks/{delivery_id}/resend"): "operator",
    ("POST", "/admin/orders/{order_id}/resolve"): "operator",
    ("POST", "/admin/orders/{order_id}/retry"): "operator",
    ("POST", "/admin/orders/{order_id}/settle"): "operator",
    ("POST", "/admin/refills/{refill_id}/resolve"): "operator",
    ("POST", "/admin/reports/balances/refresh"): "operator",
    ("POST", "/admin/alerts/{alert_id}/ack"): "operator",
}


def admin_operations(app: Litestar) -> list[tuple[str, str]]:
    schema = app.openapi_schema.to_schema()
    return sorted(
        (method.upper(), path.rstrip("/") or "/")
        for path, item in schema["paths"].items()
        if path.startswith("/admin")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def needed(method: str, path: str) -> str:
    return "read" if method == "GET" else WRITES[(method, path)]


async def test_every_admin_route_is_scoped(app: Litestar, client: httpx.AsyncClient) -> None:
    operations = admin_operations(app)
    writes = {op for op in operations if op[0] != "GET"}
    assert writes == set(WRITES), f"unscoped: {writes - set(WRITES)}; gone: {set(WRITES) - writes}"
    assert len(operations) > 30
    tokens = {}
    for scope in SCOPES:
        issued = await client.post("/admin/tokens", json={"name": f"{scope} token", "scope": scope}, headers=ADMIN)
        assert issued.status_code == 201, issued.text
        assert issued.json()["scope"] == scope
        tokens[scope] = issued.json()["token"]
    for method, path in operations:
        url = re.sub(r"\{[^}]+\}", "999999", path)
        for scope, token in tokens.items():
            body: Any = {} if method in ("POST", "PUT", "PATCH") else None
            response = await client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
            allowed = SCOPES.index(scope) >= SCOPES.index(needed(method, path))
            if allowed:
                assert response.status_code != 403, (method, path, scope, response.text)
            else:
                assert response.status_code == 403, (method, path, scope, response.status_code)
                assert needed(method, path) in response.json()["error"]


async def test_a_read_token_cannot_mint_and_a_revoked_one_stops(client: httpx.AsyncClient) -> None:
    operator = (await client.post("/admin/tokens", json={"name": "console", "scope": "operator"}, headers=ADMIN)).json()
    as_operator = {"Authorization": f"Bearer {operator['token']}"}
    # A leaked operator token cannot mint a successor or revoke anyone.
    minted = await client.post("/admin/tokens", json={"name": "backdoor", "scope": "admin"}, headers=as_operator)
    assert minted.status_code == 403
    assert (await client.delete(f"/admin/tokens/{operator['id']}", headers=as_operator)).status_code == 403
    listed = (await client.get("/admin/tokens", headers=ADMIN)).json()
    assert [t["name"] for t in listed] == ["console"]
    # What it may do is audited with its scope.
    created = await client.post("/admin/customers", json={"name": "Scoped Co"}, headers=as_operator)
    assert created.status_code == 201
    audit = (await client.get("/admin/audit", params={"entity": "customer"}, headers=ADMIN)).json()
    assert (audit[0]["actor"], audit[0]["scope"]) == ("token:console", "operator")
    assert (await client.delete(f"/admin/tokens/{operator['id']}", headers=ADMIN)).status_code == 204
    assert (await client.get("/admin/customers", headers=as_operator)).status_code == 401
    tokens_audit = (await client.get("/admin/audit", params={"entity": "admin_token"}, headers=ADMIN)).json()
    assert {(a["action"], a["scope"]) for a in tokens_audit} == {("token.create", "admin"), ("token.revoke", "admin")}


@pytest.mark.parametrize("scope", ["", "root", "ADMIN", "read ", "operatör", 3, None, ["admin"]])
async def test_a_token_of_an_unknown_scope_is_refused(client: httpx.AsyncClient, scope: Any) -> None:
    response = await client.post("/admin/tokens", json={"name": "odd", "scope": scope}, headers=ADMIN)
    assert response.status_code == 400
    assert (await client.get("/admin/tokens", headers=ADMIN)).json() == []


def test_a_token_without_a_scope_only_reads() -> None:
    from gateway.admin.tokens import TokenCreate

    assert TokenCreate(name="x").scope == "read"


@pytest.mark.parametrize(
    "token",
    [
        "short",
        "a" * 31,
        "CHANGE_ME",
        "change_me_to_a_long_random_string_please_now",
        "REPLACE-ME-with-something-long-enough-1234",
        "your-token-here-0123456789abcdefghijklmnop",
        "a" * 64,
        "ab" * 20,
        " " + "q8Wn2Lr5Tz0Xv7Ky4Mp1Hs6Jd9Gf3Cb",
        "q8Wn2Lr5Tz0Xv7Ky4Mp1Hs6Jd9Gf3Cb\n",
    ],
)
def test_a_weak_admin_token_stops_start_up(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", token)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert "GATEWAY_ADMIN_TOKEN" in message
    assert token.strip() not in message or len(token.strip()) < 6  # the value is never echoed


def test_a_strong_admin_token_and_no_token_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "q8Wn2Lr5Tz0Xv7Ky4Mp1Hs6Jd9Gf3Cb2A")
    assert load_settings(_env_file=None).admin_token is not None
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "")
    assert load_settings(_env_file=None).admin_token is None
