"""The OpenAPI schema of the admin API, and a schemathesis run against it on a real process:
no 5xx, and no answer that contradicts the schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.conftest import gateway

TOKEN = "reliability-admin-token-0123456789abcdef"
# Routes that call an upstream: a generated provider URL could point anywhere, and tests talk to
# loopback only. They have their own tests against the simulator.
CALLS_UPSTREAM = (
    "/admin/providers/{provider_id}/sync",
    "/admin/providers/{provider_id}/balance",
    "/admin/providers/{provider_id}/balance/refresh",
    "/admin/reports/balances/refresh",
)


@pytest.mark.slow
def test_admin_api_against_its_schema(database_url: str) -> None:
    # No worker: it would sync generated providers' catalogs.
    with gateway(database_url, worker=False, GATEWAY_CATALOG_SYNC_INTERVAL_SECONDS="0") as proc:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        # Some data, so that ids in paths sometimes exist.
        customer = httpx.post(f"{proc.url}/admin/customers", json={"name": "c", "balance": "5"}, headers=headers).json()
        httpx.post(f"{proc.url}/admin/customers/{customer['id']}/funds", json={"amount": "1"}, headers=headers)
        schema = schemathesis.openapi.from_url(f"{proc.url}/schema/openapi.json")
        schema.config.base_url = proc.url
        checked = 0
        calls = [0]
        for result in schema.exclude(path=CALLS_UPSTREAM).get_all_operations():
            operation = result.ok()

            @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            @given(case=operation.as_strategy())
            def check(case: Any) -> None:
                calls[0] += 1
                case.call_and_validate(
                    headers=headers,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        content_type_conformance,
                        response_schema_conformance,
                    ],
                )

            check()
            checked += 1
        assert checked >= 30
        assert calls[0] >= 10 * checked


async def test_schema_documents_every_admin_route_with_security_and_errors(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    admin_paths = {p: ops for p, ops in document["paths"].items() if p.startswith("/admin")}
    expected = {
        "/admin/providers",
        "/admin/providers/{provider_id}",
        "/admin/providers/{provider_id}/sync",
        "/admin/providers/{provider_id}/balance",
        "/admin/providers/{provider_id}/balance/refresh",
        "/admin/services",
        "/admin/services/{service_id}",
        "/admin/markup-rules",
        "/admin/markup-rules/{rule_id}",
        "/admin/customers",
        "/admin/customers/{customer_id}",
        "/admin/customers/{customer_id}/rotate-key",
        "/admin/customers/{customer_id}/funds",
        "/admin/customers/{customer_id}/ledger",
        "/admin/customers/{customer_id}/rates/{service_id}",
        "/admin/orders",
        "/admin/orders/{order_id}",
        "/admin/orders/{order_id}/resolve",
        "/admin/reports/summary",
        "/admin/reports/balances",
        "/admin/reports/balances/refresh",
    }
    assert expected <= set(admin_paths)
    for path, operations in admin_paths.items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"BearerToken": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
    assert "/api/v2" not in document["paths"]
    docs = await client.get("/schema/swagger")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
