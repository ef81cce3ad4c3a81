"""Security checks: customer scoping (alone and inside 100-id lists), every admin route refuses
without the token, hostile and oversized bodies are refused cheaply."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from gateway.orders.sync import check_statuses
from tests.factories import make_customer
from tests.orders.conftest import Shop

FOLLOWERS_REFILL = 101


async def test_foreign_ids_never_answer_for_another_customer(shop: Shop) -> None:
    mine = [
        (await shop.v2(action="add", service=shop.services[FOLLOWERS_REFILL], link="https://i.com/a", quantity=100))[
            "order"
        ]
        for _ in range(3)
    ]
    for order_id in mine:
        shop.sim.state.force_order((await shop.order(order_id)).upstream_order_id, "Completed")
    await shop.execute("UPDATE orders SET next_check_at = now()")
    await check_statuses(shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds)
    refill_id = (await shop.v2(action="refill", order=mine[0]))["refill"]
    _, thief = await make_customer(shop.runtime, balance="10")
    ids = ",".join(map(str, [*mine, *range(1, 98)]))[:2000]
    listing = await shop.v2(key=thief, action="status", orders=ids)
    assert all(item.get("error") == "Incorrect order ID" for item in listing)
    assert await shop.v2(key=thief, action="status", order=mine[0]) == {"error": "Incorrect order ID"}
    assert await shop.v2(key=thief, action="refill", order=mine[1]) == {"error": "Incorrect order ID"}
    multi = await shop.v2(key=thief, action="refill", orders=",".join(map(str, mine)))
    assert all(item["refill"] == {"error": "Incorrect order ID"} for item in multi)
    assert await shop.v2(key=thief, action="refill_status", refill=refill_id) == {"error": "Refill not found"}
    cancel = await shop.v2(key=thief, action="cancel", orders=",".join(map(str, mine)))
    assert all(
        item == {"order": o, "canceled": False, "error": "Incorrect order ID"}
        for item, o in zip(cancel, mine, strict=True)
    )
    # Nothing of it reached the upstream.
    assert shop.sim.request_count("cancel") == 0
    assert shop.sim.request_count("refill") == 1


async def test_every_admin_route_refuses_without_the_token(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    count = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/admin"):
            continue
        # Every path parameter (whatever its name: a new route cannot slip through) as an id.
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
                response = await client.request(method.upper(), concrete, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"] == "missing or invalid admin token"
                count += 1
    assert count > 90


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"key=x&action=balance&" + b"a" * 10_000_000, "application/x-www-form-urlencoded"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (json.dumps({f"p{i}": i for i in range(5000)}).encode(), "application/json"),
        ("&".join(f"p{i}=x" for i in range(5000)).encode(), "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage" * 1000, "application/json"),
        (b"--b\r\nContent-Disposition: form-data; name=key\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=zzz"),
    ],
)
async def test_hostile_bodies_are_refused_cheaply(client: httpx.AsyncClient, content: bytes, content_type: str) -> None:
    start = time.perf_counter()
    response = await client.post("/api/v2", content=content, headers={"Content-Type": content_type})
    elapsed = time.perf_counter() - start
    assert response.status_code == 200
    assert response.json()["error"] in ("Incorrect request", "Invalid API key")
    assert elapsed < 2.0


async def test_oversized_admin_body_is_refused(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/admin/customers",
        content=b'{"name": "' + b"x" * 1_000_000 + b'"}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 413)
    assert (await client.get("/admin/customers", headers=admin_headers)).json() == []
