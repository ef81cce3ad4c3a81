"""The v2 endpoint over real loopback HTTP: every action in both dialects, errors, transports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.simulator import RunningSimulator

V2Call = Callable[..., Awaitable[Any]]

LINK = "https://www.tiktok.com/@someone"


async def place(v2: V2Call, sim: RunningSimulator, service: int = 201, quantity: int = 1000) -> int:
    answer = await v2(sim, action="add", service=service, link=LINK, quantity=quantity)
    assert isinstance(answer["order"], int)
    return int(answer["order"])


# -- shapes per dialect ----------------------------------------------------------------------


async def test_balance(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    assert await v2(documented, action="balance") == {"balance": "1000.00", "currency": "USD"}
    assert await v2(perfectpanel, action="balance") == {"balance": "1000.00000", "currency": "USD"}


async def test_services(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    doc = await v2(documented, action="services")
    assert len(doc) == len(documented.state.services()) >= 20
    assert doc[0] == {
        "service": 101,
        "name": "Instagram Followers [Real] [Refill 30D]",
        "type": "Default",
        "category": "Instagram Followers",
        "rate": "1.85",
        "min": 50,
        "max": 100000,
        "refill": True,
        "cancel": True,
        "dripfeed": False,
    }
    pp = await v2(perfectpanel, action="services")
    assert pp[2]["rate"] == "0.27819"
    assert pp[0]["min"] == "50"
    assert pp[0]["max"] == "100000"
    assert "dripfeed" not in pp[0]
    assert "desc" in pp[0]


async def test_add_and_status(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    doc_order = await place(v2, documented)
    assert await v2(documented, action="status", order=doc_order) == {
        "status": "Pending",
        "charge": "3.90",
        "start_count": "0",
        "remains": "1000",
        "currency": "USD",
    }
    pp_order = await place(v2, perfectpanel)
    assert await v2(perfectpanel, action="status", order=pp_order) == {
        "charge": "3.90000",
        "start_count": "0",
        "status": "Pending",
        "remains": "1000",
        "currency": "USD",
    }
    assert await v2(documented, action="status", order=" 999 ") == {"error": "Incorrect order ID"}
    assert await v2(documented, action="status", order="abc") == {"error": "Incorrect order ID"}


async def test_multi_status(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    first, second = await place(v2, documented), await place(v2, documented)
    documented.state.force_order(second, "Partial", remains=157, start_count=3572)
    answer = await v2(documented, action="status", orders=f"{first}, {second},7")
    assert [item["order"] for item in answer] == [first, second, 7]
    assert answer[1] == {
        "order": second,
        "status": "Partial",
        "charge": "3.2877",
        "start_count": "3572",
        "remains": "157",
        "currency": "USD",
    }
    assert answer[2] == {"order": 7, "error": "Incorrect order ID"}

    pp_order = await place(v2, perfectpanel)
    pp = await v2(perfectpanel, action="status", orders=f"{pp_order},7")
    assert pp == {
        str(pp_order): {
            "charge": "3.90000",
            "start_count": "0",
            "status": "Pending",
            "remains": "1000",
            "currency": "USD",
        },
        "7": {"error": "Incorrect order ID"},
    }


async def test_multi_id_limits(v2: V2Call, sim: RunningSimulator) -> None:
    too_many = ",".join(str(n) for n in range(1, 102))
    for action, field in (("status", "orders"), ("refill", "orders"), ("refill_status", "refills")):
        assert await v2(sim, action=action, **{field: too_many}) == {"error": "Too many ids (max 100)"}
        assert await v2(sim, action=action, **{field: "1,x"}) == {"error": "Incorrect request"}
    hundred = ",".join(str(n) for n in range(1, 101))
    assert len(await v2(sim, action="status", orders=hundred)) == 100


async def test_refill(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    for sim, refill_id in ((documented, 5001), (perfectpanel, "5001")):
        done, running = await place(v2, sim), await place(v2, sim)
        sim.state.force_order(done, "Completed")
        sim.state.force_order(running, "In progress")
        assert await v2(sim, action="refill", order=done) == {"refill": refill_id}
        assert await v2(sim, action="refill", order=running) == {"error": "Refill is not available for this order"}
        assert await v2(sim, action="refill", order=12) == {"error": "Incorrect order ID"}
        sim.advance(86_400)
        assert await v2(sim, action="refill", orders=f"{done},{running},12") == [
            {"order": done, "refill": 5002},
            {"order": running, "refill": {"error": "Refill is not available for this order"}},
            {"order": 12, "refill": {"error": "Incorrect order ID"}},
        ]


async def test_refill_status(v2: V2Call, sim: RunningSimulator) -> None:
    order_id = await place(v2, sim)
    sim.state.force_order(order_id, "Completed")
    refill_id = sim.state.refill(order_id)
    assert await v2(sim, action="refill_status", refill=refill_id) == {"status": "Pending"}
    sim.advance(86_400)
    assert await v2(sim, action="refill_status", refill=refill_id) == {"status": "Completed"}
    assert await v2(sim, action="refill_status", refill=1) == {"error": "Refill not found"}
    assert await v2(sim, action="refill_status", refills=f"{refill_id},1") == [
        {"refill": refill_id, "status": "Completed"},
        {"refill": 1, "status": {"error": "Refill not found"}},
    ]


async def test_cancel(v2: V2Call, documented: RunningSimulator, perfectpanel: RunningSimulator) -> None:
    doc_order, doc_locked = await place(v2, documented), await place(v2, documented, service=303, quantity=100)
    assert await v2(documented, action="cancel", orders=f"{doc_order},{doc_locked},9") == [
        {"order": doc_order, "canceled": True},
        {"order": doc_locked, "canceled": False, "error": "Cancel is not available for this order"},
        {"order": 9, "canceled": False, "error": "Incorrect order ID"},
    ]
    assert await v2(documented, action="balance") == {"balance": "999.725", "currency": "USD"}
    pp_order = await place(v2, perfectpanel)
    assert await v2(perfectpanel, action="cancel", order=pp_order) == [{"order": pp_order, "cancel": 1}]
    assert await v2(perfectpanel, action="cancel", orders=f"{pp_order},9") == [
        {"order": pp_order, "cancel": {"error": "Cancel is not available for this order"}},
        {"order": 9, "cancel": {"error": "Incorrect order ID"}},
    ]
    assert await v2(perfectpanel, action="status", order=pp_order) == {
        "charge": "0.00000",
        "start_count": "0",
        "status": "Canceled",
        "remains": "1000",
        "currency": "USD",
    }
    assert await v2(perfectpanel, action="cancel") == {"error": "Incorrect request"}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"key": "wrong", "action": "balance"}, "Invalid API key"),
        ({"action": "balance"}, "Invalid API key"),
        ({"key": "sim-api-key"}, "Incorrect request"),
        ({"key": "sim-api-key", "action": "explode"}, "Incorrect request"),
        ({"key": "sim-api-key", "action": "add", "service": "abc", "link": LINK}, "Incorrect service ID"),
        ({"key": "sim-api-key", "action": "add", "service": "404404", "link": LINK}, "Incorrect service ID"),
        ({"key": "sim-api-key", "action": "add", "service": "201", "link": "", "quantity": "100"}, "Incorrect link"),
        ({"key": "sim-api-key", "action": "add", "service": "201", "link": LINK, "quantity": "99"},
         "Quantity less than minimal 100"),
        ({"key": "sim-api-key", "action": "add", "service": "201", "link": LINK, "quantity": "100001"},
         "Quantity more than maximal 100000"),
        ({"key": "sim-api-key", "action": "add", "service": "121", "link": LINK}, "Incorrect comments"),
    ],
)  # fmt: skip
async def test_errors_are_http_200_json(
    client: httpx.AsyncClient, sim: RunningSimulator, params: dict[str, str], error: str
) -> None:
    response = await client.post(sim.url, data=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": error}


async def test_balance_runs_out(v2: V2Call, sim: RunningSimulator) -> None:
    sim.set_balance("5.00")
    await place(v2, sim)  # 3.90
    assert await v2(sim, action="add", service=201, link=LINK, quantity=1000) == {
        "error": "Not enough funds on balance"
    }
    assert len(sim.state.orders()) == 1


# -- transports ------------------------------------------------------------------------------


async def test_parameter_transports(client: httpx.AsyncClient, documented: RunningSimulator) -> None:
    sim = documented
    key = sim.api_key
    as_json = await client.post(sim.url, json={"key": key, "action": "add", "service": 201, "link": LINK,
                                               "quantity": 100})  # fmt: skip
    assert as_json.json() == {"order": 10001}
    as_query = await client.get(sim.url, params={"key": key, "action": "status", "order": "10001"})
    assert as_query.json()["status"] == "Pending"
    multipart = await client.post(
        sim.url + "/", data={"key": key, "action": "balance"}, files={"ignored": ("a.txt", b"x")}
    )
    assert multipart.json() == {"balance": "999.61", "currency": "USD"}
    body_wins = await client.post(sim.url, params={"key": "wrong", "action": "services"},
                                  data={"key": key, "action": "balance"})  # fmt: skip
    assert body_wins.json()["balance"] == "999.61"
    orders_as_list = await client.post(sim.url, json={"key": key, "action": "status", "orders": [10001, 3]})
    assert [item["order"] for item in orders_as_list.json()] == [10001, 3]
    broken_json = await client.post(sim.url, content=b"{oops", headers={"content-type": "application/json"})
    assert broken_json.json() == {"error": "Invalid API key"}
    assert [r.content_type for r in sim.requests()][:3] == [
        "application/json",
        "",
        "multipart/form-data",
    ]


async def test_lifecycle_over_http(v2: V2Call, client: httpx.AsyncClient, documented: RunningSimulator) -> None:
    order_id = await place(v2, documented, quantity=2000)
    statuses = []
    for _ in range(60):
        answer = await v2(documented, action="status", order=order_id)
        statuses.append(answer["status"])
        if answer["status"] == "Completed":
            break
        clock = await client.post(f"{documented.control_url}/clock", json={"advance": 120})
        assert clock.status_code == 200
    assert statuses[0] == "Pending"
    assert statuses[-1] == "Completed"
    assert "In progress" in statuses
    assert answer["remains"] == "0"
    assert int(answer["start_count"]) > 0


# -- hostile status answers ------------------------------------------------------------------

HOSTILE: dict[str, Any] = {
    "status": "Weird status",
    "start_count": 10**30,
    "charge": None,
    "remains": "-7",
    "extra": {"nested": [1, "2", None]},
}


async def test_sloppy_status_documented(v2: V2Call, documented: RunningSimulator) -> None:
    sim = documented
    order_id, clean = await place(v2, sim), await place(v2, sim)
    sim.state.sloppy_status(order_id, HOSTILE, omit=["currency"])
    single = await v2(sim, action="status", order=order_id)
    assert single == HOSTILE
    assert list(single) == ["status", "charge", "start_count", "remains", "extra"]  # overwritten fields stay put
    multi = await v2(sim, action="status", orders=f"{order_id},{clean},7")
    assert multi[0] == {"order": order_id, **HOSTILE}
    assert multi[1] == {"order": clean, **(await v2(sim, action="status", order=clean))}
    assert multi[1]["status"] == "Pending"
    assert multi[2] == {"order": 7, "error": "Incorrect order ID"}
    assert sim.state.order(order_id).status.value == "Pending"

    # In the list form the item's own ``order`` field is fair game too.
    sim.state.sloppy_status(order_id, {"order": str(order_id), "remains": "x"}, omit=["remains", "charge"])
    assert (await v2(sim, action="status", orders=str(order_id))) == [
        {"order": str(order_id), "status": "Pending", "start_count": "0", "currency": "USD"}
    ]
    sim.state.sloppy_status(order_id, omit=["order"])
    assert "order" not in (await v2(sim, action="status", orders=f"{order_id},{clean}"))[0]

    sim.state.clear_sloppy_status(order_id)
    assert await v2(sim, action="status", order=order_id) == await v2(sim, action="status", order=clean)


async def test_sloppy_status_perfectpanel(v2: V2Call, perfectpanel: RunningSimulator) -> None:
    sim = perfectpanel
    order_id, clean = await place(v2, sim), await place(v2, sim)
    sim.state.force_order(order_id, "Completed")
    sim.state.sloppy_status(order_id, HOSTILE, omit=["currency"])
    single = await v2(sim, action="status", order=order_id)
    assert single == HOSTILE
    assert list(single) == ["charge", "start_count", "status", "remains", "extra"]
    multi = await v2(sim, action="status", orders=f"{order_id},{clean},7")
    assert multi == {
        str(order_id): HOSTILE,
        str(clean): {
            "charge": "3.90000",
            "start_count": "0",
            "status": "Pending",
            "remains": "1000",
            "currency": "USD",
        },
        "7": {"error": "Incorrect order ID"},
    }

    sim.state.sloppy_status(order_id, {"status": "Refunded"}, omit=["remains", "start_count"])
    refunded = {"charge": "3.90000", "status": "Refunded", "currency": "USD"}
    assert await v2(sim, action="status", order=order_id) == refunded
    assert (await v2(sim, action="status", orders=f"{order_id}"))[str(order_id)] == refunded
    assert sim.state.order(order_id).status.value == "Completed"
    assert await v2(sim, action="refill", order=order_id) == {"refill": "5001"}  # still Completed inside

    sim.state.clear_sloppy_status(order_id)
    assert (await v2(sim, action="status", order=order_id))["status"] == "Completed"
