"""The operator's refill endpoints: list and filter, one refill with its upstream calls, resolving an
unknown one (placed: followed by the sync; failed: Rejected), hostile input to each, the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.orders.refills import sync_refills
from gateway.simulator.faults import FaultRule
from tests.orders.conftest import Shop
from tests.orders.test_refills import ADMIN, completed_order, refill_row

HUGE = 2**70


async def unknown_refill(shop: Shop, link: str, fault: FaultRule) -> tuple[int, int]:
    """A refill whose upstream answer was lost to ``fault``: (gateway refill id, upstream order id)."""
    order_id, upstream_order_id = await completed_order(shop, link)
    shop.sim.set_faults(fault)
    try:
        refill_id = (await shop.v2(action="refill", order=order_id))["refill"]
    finally:
        shop.sim.clear_faults()
    assert (await refill_row(shop, refill_id)).state == "unknown"
    return refill_id, upstream_order_id


async def admin_get(shop: Shop, path: str, **params: Any) -> Any:
    return await shop.client.get(f"/admin{path}", params=params, headers=ADMIN)


async def resolve(shop: Shop, refill_id: int, body: Any) -> Any:
    return await shop.client.post(f"/admin/refills/{refill_id}/resolve", json=body, headers=ADMIN)


async def test_an_answer_lost_after_the_upstream_took_it_is_resolved_placed_and_followed(shop: Shop) -> None:
    refill_id, upstream_order_id = await unknown_refill(
        shop, "https://i.com/dropped", FaultRule(kind="drop", action="refill", when="after")
    )
    # The customer was given the id; it stays Pending while the operator has not settled it.
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Pending"}
    listed = (await admin_get(shop, "/refills", state="unknown")).json()
    assert [r["id"] for r in listed] == [refill_id]
    assert set(listed[0]) == {
        "id",
        "order_id",
        "customer_id",
        "provider_id",
        "upstream_refill_id",
        "status",
        "status_raw",
        "state",
        "last_error",
        "created_at",
        "updated_at",
        "last_checked_at",
    }
    assert (listed[0]["customer_id"], listed[0]["provider_id"]) == (shop.customer_id, shop.provider_id)
    assert listed[0]["last_error"]

    upstream_refill_id = shop.sim.state.refills_of(upstream_order_id)[0].refill_id
    placed = await resolve(shop, refill_id, {"outcome": "placed", "upstream_refill_id": upstream_refill_id})
    assert placed.status_code == 200, placed.text
    assert placed.json()["state"] == "placed"
    assert placed.json()["upstream_refill_id"] == upstream_refill_id
    assert (await resolve(shop, refill_id, {"outcome": "failed"})).status_code == 409

    shop.sim.state.force_refill(upstream_refill_id, "Completed")
    assert await sync_refills(shop.runtime.orders, shop.runtime.providers) == 1
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Completed"}
    detail = (await admin_get(shop, f"/refills/{refill_id}")).json()
    assert (detail["refill"]["status"], detail["refill"]["status_raw"]) == ("Completed", "Completed")
    assert detail["refill"]["last_checked_at"] is not None

    audit = (await admin_get(shop, "/audit", entity="refill", entity_id=str(refill_id))).json()
    assert [(a["action"], a["actor"], a["before"], a["after"]) for a in audit] == [
        (
            "refill.resolve",
            "admin",
            {"state": "unknown"},
            {"state": "placed", "status": "Pending", "upstream_refill_id": upstream_refill_id},
        )
    ]


async def test_an_unanswered_refill_resolved_failed_is_rejected(shop: Shop) -> None:
    refill_id, upstream_order_id = await unknown_refill(
        shop, "https://i.com/hung", FaultRule(kind="hang", action="refill")
    )
    assert shop.sim.state.refills_of(upstream_order_id) == []  # it never arrived
    failed = await resolve(shop, refill_id, {"outcome": "failed"})
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert (body["state"], body["status"], body["upstream_refill_id"]) == ("failed", "Rejected", None)
    assert body["last_error"] == "resolved as failed by the operator"
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Rejected"}
    assert await shop.v2(action="refill_status", refills=str(refill_id)) == [
        {"refill": refill_id, "status": "Rejected"}
    ]
    again = await resolve(shop, refill_id, {"outcome": "failed"})
    assert again.status_code == 409
    assert again.json()["error"] == f"refill {refill_id} is failed, not unknown"
    assert (await admin_get(shop, "/refills", state="unknown")).json() == []
    assert [r["id"] for r in (await admin_get(shop, "/refills", status="Rejected")).json()] == [refill_id]

    audit = (await admin_get(shop, "/audit", entity="refill")).json()
    assert [(a["action"], a["entity_id"], a["after"]["state"]) for a in audit] == [
        ("refill.resolve", str(refill_id), "failed")
    ]


async def test_the_refill_list_filters_and_pages(shop: Shop) -> None:
    orders = [await completed_order(shop, f"https://i.com/p{i}") for i in range(3)]
    ids = [(await shop.v2(action="refill", order=order_id))["refill"] for order_id, _ in orders]
    every = (await admin_get(shop, "/refills")).json()
    assert [r["id"] for r in every] == ids[::-1]  # newest first
    assert [r["state"] for r in every] == ["placed"] * 3
    first_page = (await admin_get(shop, "/refills", limit=2)).json()
    assert [r["id"] for r in first_page] == ids[:0:-1]
    assert [r["id"] for r in (await admin_get(shop, "/refills", limit=2, before=first_page[-1]["id"])).json()] == [
        ids[0]
    ]
    assert [r["id"] for r in (await admin_get(shop, "/refills", order_id=orders[1][0])).json()] == [ids[1]]
    assert len((await admin_get(shop, "/refills", customer_id=shop.customer_id, state="placed")).json()) == 3
    assert len((await admin_get(shop, "/refills", provider_id=shop.provider_id, status="Pending")).json()) == 3
    assert (await admin_get(shop, "/refills", customer_id=999999)).json() == []
    assert (await admin_get(shop, "/refills", state="unknown")).json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "nope"}, "state"),
        ({"state": "UNKNOWN"}, "state"),
        ({"state": "x" * 50}, "state"),
        ({"status": "Done"}, "status"),
        ({"status": "Canceled"}, "status"),  # an order status, not a refill one
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": 0}, "before"),
        ({"before": -3}, "before"),
        ({"customer_id": "x"}, "customer_id"),
        ({"customer_id": HUGE}, "customer_id"),
        ({"order_id": "1.5"}, "order_id"),
        ({"provider_id": -1}, "provider_id"),
    ],
)
async def test_bad_list_filters_are_refused_naming_the_field(shop: Shop, params: dict[str, Any], field: str) -> None:
    response = await admin_get(shop, "/refills", **params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_one_refill_path_and_token(shop: Shop) -> None:
    assert (await admin_get(shop, "/refills/999999")).status_code == 404
    assert (await admin_get(shop, "/refills/0")).status_code == 400
    assert (await admin_get(shop, f"/refills/{HUGE}")).status_code in (400, 404)
    assert (await admin_get(shop, "/refills/abc")).status_code == 404
    assert (await resolve(shop, 999999, {"outcome": "failed"})).status_code == 404
    for method, path in (
        ("GET", "/admin/refills"),
        ("GET", "/admin/refills/1"),
        ("POST", "/admin/refills/1/resolve"),
    ):
        response = await shop.client.request(method, path, json={"outcome": "failed"})
        assert response.status_code == 401, (method, path)
        forged = await shop.client.request(
            method, path, json={"outcome": "failed"}, headers={"Authorization": "Bearer x"}
        )
        assert forged.status_code == 401, (method, path)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"outcome": "maybe"},
        {"outcome": "PLACED"},
        {"outcome": None},
        {"outcome": 1},
        {"outcome": "placed"},
        {"outcome": "placed", "upstream_refill_id": None},
        {"outcome": "placed", "upstream_refill_id": 0},
        {"outcome": "placed", "upstream_refill_id": -4},
        {"outcome": "placed", "upstream_refill_id": 2**63},
        {"outcome": "placed", "upstream_refill_id": HUGE},
        {"outcome": "placed", "upstream_refill_id": "twelve"},
        {"outcome": "placed", "upstream_refill_id": "-12"},
        {"outcome": "placed", "upstream_refill_id": 1.5},
        {"outcome": "placed", "upstream_refill_id": True},
        {"outcome": "placed", "upstream_refill_id": [1]},
        {"outcome": "failed", "upstream_refill_id": 5},
        {"outcome": "failed", "note": "unknown fields are refused"},
        {"outcome": "placed", "upstream_refill_id": 5, "upstream_order_id": 5},
        [{"outcome": "failed"}],
        "failed",
        None,
    ],
)
async def test_bad_resolve_bodies_are_refused_and_change_nothing(shop: Shop, body: Any) -> None:
    refill_id, _ = await unknown_refill(
        shop, "https://i.com/bad", FaultRule(kind="drop", action="refill", when="after")
    )
    response = await resolve(shop, refill_id, body)
    assert response.status_code == 400, (body, response.text)
    assert response.json()["status_code"] == 400
    row = await refill_row(shop, refill_id)
    assert (row.state, row.status, row.upstream_refill_id) == ("unknown", "Pending", None)
    assert (await admin_get(shop, "/audit", entity="refill")).json() == []


async def test_bodies_that_are_not_json_are_refused(shop: Shop) -> None:
    refill_id, _ = await unknown_refill(
        shop, "https://i.com/garbage", FaultRule(kind="drop", action="refill", when="after")
    )
    for content in (b"", b"{", b"outcome=failed", b"\xff\xfe", b'{"outcome": "failed"' + b" " * 10 + b"}}"):
        response = await shop.client.post(
            f"/admin/refills/{refill_id}/resolve",
            content=content,
            headers={**ADMIN, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (content, response.text)
    assert (await refill_row(shop, refill_id)).state == "unknown"


async def test_a_refill_that_is_not_unknown_cannot_be_resolved(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/fine")
    refill_id = (await shop.v2(action="refill", order=order_id))["refill"]
    for body in ({"outcome": "failed"}, {"outcome": "placed", "upstream_refill_id": 77}):
        response = await resolve(shop, refill_id, body)
        assert response.status_code == 409, response.text
        assert response.json()["field"] == "outcome"
    row = await refill_row(shop, refill_id)
    assert (row.state, row.status) == ("placed", "Pending")
    assert row.upstream_refill_id != 77
