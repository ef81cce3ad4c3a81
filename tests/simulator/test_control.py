"""The control plane and the request log, over HTTP and from Python."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx

from gateway.simulator import RunningSimulator

V2Call = Callable[..., Awaitable[Any]]
LINK = "https://youtube.com/watch?v=abc"


async def test_requests_are_recorded(client: httpx.AsyncClient, v2: V2Call, documented: RunningSimulator) -> None:
    sim = documented
    await v2(sim, action="add", service=301, link=LINK, quantity=1000)
    await v2(sim, action="add", service=301, link=LINK, quantity=1)
    await v2(sim, action="status", order=10001)
    await client.post(sim.url, data={"key": "nope", "action": "balance"})
    await client.post(sim.url, data={"key": sim.api_key})

    assert sim.request_count("add") == 2
    assert sim.request_counts() == {"add": 2, "status": 1, "balance": 1, "(none)": 1}
    first, second = sim.requests("add")
    assert first.params == {"action": "add", "service": "301", "link": LINK, "quantity": "1000"}
    assert (first.outcome, second.outcome) == ("ok", "error: Quantity less than minimal 500")
    assert first.key_valid
    assert not sim.requests("balance")[0].key_valid

    log = (await client.get(f"{sim.control_url}/requests")).json()
    assert log["total"] == 5
    assert log["counts"]["add"] == 2
    assert all("key" not in r["params"] for r in log["requests"])
    assert [r["seq"] for r in log["requests"]] == [1, 2, 3, 4, 5]
    only_adds = (await client.get(f"{sim.control_url}/requests", params={"action": "add", "since": 1})).json()
    assert [r["seq"] for r in only_adds["requests"]] == [2]
    assert only_adds["requests"][0]["error"] == "Quantity less than minimal 500"
    await client.delete(f"{sim.control_url}/requests")
    assert sim.request_count() == 0


async def test_balance_and_reset(client: httpx.AsyncClient, v2: V2Call, perfectpanel: RunningSimulator) -> None:
    sim = perfectpanel
    assert (await client.post(f"{sim.control_url}/balance", json={"balance": "12.5"})).json() == {"balance": "12.50000"}
    assert (await v2(sim, action="balance"))["balance"] == "12.50000"
    await v2(sim, action="add", service=301, link=LINK, quantity=1000)
    assert (await client.get(f"{sim.control_url}/balance")).json() == {"balance": "11.21300"}
    state = (await client.get(f"{sim.control_url}/state")).json()
    assert (state["dialect"], state["orders"], state["requests"]) == ("perfectpanel", 1, 2)
    assert (await client.post(f"{sim.control_url}/reset")).json() == {"reset": True}
    assert sim.state.balance() == Decimal("1000.00")
    assert sim.state.orders() == []
    assert sim.request_count() == 0
    assert (await client.post(f"{sim.control_url}/balance", json={"balance": "x"})).status_code == 400


async def test_catalog_changes_between_syncs(client: httpx.AsyncClient, v2: V2Call, sim: RunningSimulator) -> None:
    catalog_url = f"{sim.control_url}/catalog"
    current = (await client.get(catalog_url)).json()
    assert len(current) == len(sim.state.services())
    repriced = {**current[0], "rate": "9.99"}
    new = {"service": 7777, "name": "Threads Followers", "type": "Default", "category": "Threads",
           "rate": "1.10", "min": 10, "max": 1000, "refill": False, "cancel": True, "dripfeed": False}  # fmt: skip
    changed = await client.put(catalog_url, json={"services": [repriced, *current[2:], new]})
    assert changed.json() == {"services": len(current)}
    served = {int(s["service"]): s for s in await v2(sim, action="services")}
    assert served[current[0]["service"]]["rate"].rstrip("0") == "9.99"
    assert current[1]["service"] not in served
    assert served[7777]["name"] == "Threads Followers"
    removed = await v2(sim, action="add", service=current[1]["service"], link=LINK, quantity=1000)
    assert removed == {"error": "Incorrect service ID"}

    generated = await client.put(catalog_url, json={"generate": 5000, "seed": 4})
    assert generated.json() == {"services": 5000}
    assert len(await v2(sim, action="services")) == 5000
    bad = await client.put(catalog_url, json={"services": [{"service": "x", "rate": "1"}]})
    assert bad.status_code == 400
    assert (await client.put(catalog_url, json={})).status_code == 400


async def test_orders_forced_and_inspected(client: httpx.AsyncClient, v2: V2Call, documented: RunningSimulator) -> None:
    sim = documented
    order_id = (await v2(sim, action="add", service=301, link=LINK, quantity=1000))["order"]
    detail = (await client.get(f"{sim.control_url}/orders/{order_id}")).json()
    assert detail["status"] == "Pending"
    assert detail["params"]["link"] == LINK
    assert detail["price"] == "1.28700"
    assert detail["plan"]["outcome"] == "Completed"

    forced = await client.post(f"{sim.control_url}/orders/{order_id}/status", json={"status": "Partial",
                                                                                   "remains": 400})  # fmt: skip
    assert (forced.json()["status"], forced.json()["remains"], forced.json()["refunded"]) == (
        "Partial",
        400,
        "0.51480",
    )
    assert await v2(sim, action="status", order=order_id) == {
        "status": "Partial",
        "charge": "0.7722",
        "start_count": str(detail["plan"]["start_count"]),
        "remains": "400",
        "currency": "USD",
    }
    assert sim.state.balance() == Decimal("999.2278")
    listed = (await client.get(f"{sim.control_url}/orders")).json()
    assert listed == [{"order": order_id, "service": 301, "status": "Partial", "remains": 400}]
    assert (await client.get(f"{sim.control_url}/orders/1")).status_code == 404
    assert (await client.post(f"{sim.control_url}/orders/1/status", json={"status": "Completed"})).status_code == 404
    bad = await client.post(f"{sim.control_url}/orders/{order_id}/status", json={"status": "Exploded"})
    assert bad.status_code == 400
    too_much = await client.post(f"{sim.control_url}/orders/{order_id}/status", json={"status": "Partial",
                                                                                     "remains": 5000})  # fmt: skip
    assert too_much.status_code == 400

    await client.post(f"{sim.control_url}/orders/{order_id}/status", json={"status": "Completed"})
    refill_id = (await v2(sim, action="refill", order=order_id))["refill"]
    assert (await client.get(f"{sim.control_url}/refills/{refill_id}")).json()["status"] == "Pending"
    rejected = await client.post(f"{sim.control_url}/refills/{refill_id}/status", json={"status": "Rejected"})
    assert rejected.json() == {"refill": refill_id, "status": "Rejected"}
    assert await v2(sim, action="refill_status", refill=refill_id) == {"status": "Rejected"}
    assert (await client.get(f"{sim.control_url}/refills/1")).status_code == 404


async def test_clock(client: httpx.AsyncClient, documented: RunningSimulator) -> None:
    sim = documented
    before = (await client.get(f"{sim.control_url}/clock")).json()
    assert before["speed"] == 0
    after = (await client.post(f"{sim.control_url}/clock", json={"advance": 3600})).json()
    assert after["now"] - before["now"] == 3600
    sped = (await client.post(f"{sim.control_url}/clock", json={"speed": 120})).json()
    assert sped["speed"] == 120
    assert (await client.post(f"{sim.control_url}/clock", json={"advance": -1})).status_code == 400


async def test_sloppy_status_over_the_control_plane(
    client: httpx.AsyncClient, v2: V2Call, perfectpanel: RunningSimulator
) -> None:
    sim = perfectpanel
    order_id = (await v2(sim, action="add", service=301, link=LINK, quantity=1000))["order"]
    fields_url = f"{sim.control_url}/orders/{order_id}/fields"
    sloppy = await client.post(
        fields_url, json={"fields": {"status": "Refunded", "remains": 10**30}, "omit": ["charge"]}
    )
    assert sloppy.status_code == 200
    assert (sloppy.json()["status"], sloppy.json()["remains"]) == ("Pending", 1000)
    assert sloppy.json()["sloppy_status"] == {"fields": {"status": "Refunded", "remains": 10**30}, "omit": ["charge"]}
    assert await v2(sim, action="status", order=order_id) == {
        "start_count": "0",
        "status": "Refunded",
        "remains": 10**30,
        "currency": "USD",
    }

    replaced = await client.post(fields_url, json={"omit": ["remains"]})
    assert replaced.json()["sloppy_status"] == {"fields": {}, "omit": ["remains"]}
    assert await v2(sim, action="status", orders=str(order_id)) == {
        str(order_id): {"charge": "1.28700", "start_count": "0", "status": "Pending", "currency": "USD"}
    }
    cleared = await client.delete(fields_url)
    assert (cleared.status_code, cleared.json()["sloppy_status"]) == (200, None)
    assert (await v2(sim, action="status", order=order_id))["remains"] == "1000"

    assert (await client.post(f"{sim.control_url}/orders/1/fields", json={"fields": {}})).status_code == 404
    assert (await client.delete(f"{sim.control_url}/orders/1/fields")).status_code == 404
    for bad in ({"fields": {}, "typo": 1}, {"fields": [1]}, {"fields": "x"}, {"omit": "remains"}, {"omit": [1]}, [1]):
        assert (await client.post(fields_url, json=bad)).status_code == 400, bad
    assert (await client.get(f"{sim.control_url}/orders/{order_id}")).json()["sloppy_status"] is None

    await client.post(fields_url, json={"fields": {"status": "Unknown"}})
    await client.post(f"{sim.control_url}/reset")
    again = (await v2(sim, action="add", service=301, link=LINK, quantity=1000))["order"]
    assert again == order_id
    assert (await v2(sim, action="status", order=again))["status"] == "Pending"
