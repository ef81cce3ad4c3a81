"""Fault injection as an httpx client experiences it, switched from Python and over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.simulator import FaultRule, RunningSimulator

LINK = "https://t.me/somechannel"


@pytest.fixture
async def fresh_client() -> AsyncIterator[httpx.AsyncClient]:
    # Faults break connections; a client of its own keeps the shared one's pool out of it.
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=2.0)) as http:
        yield http


@pytest.fixture
def sim(documented: RunningSimulator) -> RunningSimulator:
    # The transport does not depend on the dialect: one dialect keeps these tests quick.
    return documented


def form(sim: RunningSimulator, action: str, **params: str) -> dict[str, str]:
    return {"key": sim.api_key, "action": action, **params}


def add_form(sim: RunningSimulator) -> dict[str, str]:
    return form(sim, "add", service="401", link=LINK, quantity="1000")


async def test_latency(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="latency", latency=0.2), FaultRule(kind="latency", latency=0.1, when="after"))
    started = time.perf_counter()
    response = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert time.perf_counter() - started >= 0.3
    assert response.json()["currency"] == "USD"


async def test_error_answer(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="error", action="add", error="Spam protection, wait 7 seconds"))
    response = await fresh_client.post(sim.url, data=add_form(sim))
    assert (response.status_code, response.json()) == (200, {"error": "Spam protection, wait 7 seconds"})
    assert sim.state.orders() == []
    other = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert "balance" in other.json()


async def test_http_5xx(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="http_5xx"), FaultRule(kind="http_5xx", status_code=503))
    first = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert first.status_code == 502
    assert "Bad Gateway" in first.text
    sim.set_faults(FaultRule(kind="http_5xx", status_code=503, body="upstream overloaded"))
    second = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert (second.status_code, second.text) == (503, "upstream overloaded")


async def test_html_page(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="html"))
    response = await fresh_client.post(sim.url, data=form(sim, "status", order="1"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_malformed_json_cuts_the_real_answer(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="malformed_json", action="services", when="after"))
    response = await fresh_client.post(sim.url, data=form(sim, "services"))
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('[{"service":101')
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_empty_body(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="empty"))
    response = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert (response.status_code, response.content) == (200, b"")


async def test_drop_is_a_protocol_error(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="drop", times=2))
    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await fresh_client.post(sim.url, data=add_form(sim))
    assert sim.state.orders() == []  # dropped before processing: nothing happened upstream
    recovered = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert recovered.json()["balance"]
    assert [r.outcome for r in sim.requests()] == ["fault: drop", "fault: drop", "ok"]
    assert [r.processed for r in sim.requests()] == [False, False, True]


async def test_hang_until_the_client_gives_up(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="hang", action="status"))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        await fresh_client.post(sim.url, data=form(sim, "status", order="1"), timeout=0.3)
    assert time.perf_counter() - started < 1.5
    assert sim.request_count("status") == 1


async def test_hang_with_a_limit_then_drops(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="hang", latency=0.2))
    started = time.perf_counter()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert 0.2 <= time.perf_counter() - started < 1.5


@pytest.mark.parametrize("kind", ["drop", "hang", "http_5xx", "malformed_json"])
async def test_add_processed_but_answer_lost(fresh_client: httpx.AsyncClient, sim: RunningSimulator, kind: str) -> None:
    sim.set_faults(FaultRule(kind=kind, action="add", when="after", times=1))  # type: ignore[arg-type]
    try:
        response = await fresh_client.post(sim.url, data=add_form(sim), timeout=0.3)
        response.json()
    except (httpx.TransportError, json.JSONDecodeError):
        pass  # the answer is lost one way or another: the outcome is unknown to the client
    else:
        pytest.fail("the answer should not have been readable")
    assert sim.request_count("add") == 1
    [record] = sim.requests("add")
    assert (record.processed, record.fault, record.error) == (True, kind, None)
    [order] = sim.state.orders()
    assert order.quantity == 1000
    assert sim.state.balance() == 1000 - order.charge
    again = await fresh_client.post(sim.url, data=form(sim, "status", order=str(order.order_id)))
    assert again.json()["status"] == "Pending"


async def test_rules_match_actions_and_count_down(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="error", action="add", error="Incorrect request", times=2))
    answers = [(await fresh_client.post(sim.url, data=add_form(sim))).json() for _ in range(3)]
    assert answers[:2] == [{"error": "Incorrect request"}] * 2
    assert "order" in answers[2]
    assert (await fresh_client.post(sim.url, data=form(sim, "balance"))).json()["currency"] == "USD"
    assert sim.simulation.faults.armed() == []


async def test_probability(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="empty", probability=0.5))
    bodies = [(await fresh_client.post(sim.url, data=form(sim, "balance"))).content for _ in range(40)]
    empties = bodies.count(b"")
    assert 5 < empties < 35


async def test_faults_over_the_control_plane(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    faults = f"{sim.control_url}/faults"
    added = await fresh_client.post(faults, json={"kind": "drop", "action": "add", "when": "after", "times": 1})
    assert added.json() == {"ids": [1]}
    more = await fresh_client.post(faults, json=[{"kind": "latency", "latency": 0.01}, {"kind": "empty"}])
    assert more.json() == {"ids": [2, 3]}
    listed = (await fresh_client.get(faults)).json()
    assert [(f["id"], f["rule"]["kind"], f["remaining"]) for f in listed] == [
        (1, "drop", 1),
        (2, "latency", None),
        (3, "empty", None),
    ]
    assert (await fresh_client.delete(f"{faults}/3")).status_code == 200
    assert (await fresh_client.delete(f"{faults}/3")).status_code == 404
    with pytest.raises(httpx.RemoteProtocolError):
        await fresh_client.post(sim.url, data=add_form(sim))
    assert len(sim.state.orders()) == 1
    replaced = await fresh_client.put(faults, json=[{"kind": "html", "action": "balance"}])
    assert replaced.json() == {"ids": [4]}
    assert (await fresh_client.post(sim.url, data=form(sim, "balance"))).headers["content-type"].startswith("text/html")
    assert (await fresh_client.delete(faults)).status_code == 200
    assert (await fresh_client.get(faults)).json() == []
    for bad in ({"kind": "explode"}, {"kind": "drop", "probability": 2}, {"kind": "drop", "typo": 1}):
        assert (await fresh_client.post(faults, json=bad)).status_code == 400


async def test_answer_before_processing(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="answer", action="balance", body='{"balance": "-7", "currency": null}', times=1))
    response = await fresh_client.post(sim.url, data=form(sim, "balance"))
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.text == '{"balance": "-7", "currency": null}'
    sim.set_faults(FaultRule(kind="answer", action="add", body='{"order": 10001}', status_code=201))
    placed = await fresh_client.post(sim.url, data=add_form(sim))
    assert (placed.status_code, placed.json()) == (201, {"order": 10001})
    assert sim.state.orders() == []  # the panel never saw it
    [record] = sim.requests("add")
    assert (record.processed, record.fault) == (False, "answer")


async def test_answer_after_processing(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    first = (await fresh_client.post(sim.url, data=add_form(sim))).json()["order"]
    sim.set_faults(FaultRule(kind="answer", action="add", when="after", body=f'{{"order": {first}}}', times=1))
    reused = await fresh_client.post(sim.url, data=add_form(sim))
    assert (reused.status_code, reused.json()) == (200, {"order": first})
    sim.set_faults(FaultRule(kind="answer", action="add", when="after", body='{"order": 99999999999999999999999}'))
    huge = await fresh_client.post(sim.url, data=add_form(sim))
    assert huge.json() == {"order": 99999999999999999999999}
    orders = sim.state.orders()
    assert [o.order_id for o in orders] == [first, first + 1, first + 2]  # each add placed its own order
    assert sim.state.balance() == 1000 - sum(o.charge for o in orders)
    assert [(r.processed, r.fault) for r in sim.requests("add")] == [(True, None), (True, "answer"), (True, "answer")]


async def test_answer_needs_a_body(fresh_client: httpx.AsyncClient, sim: RunningSimulator) -> None:
    with pytest.raises(ValueError, match="body"):
        FaultRule(kind="answer")
    assert FaultRule(kind="answer", body="[]").body == "[]"
    faults = f"{sim.control_url}/faults"
    assert (await fresh_client.post(faults, json={"kind": "answer"})).status_code == 400
    assert (await fresh_client.post(faults, json={"kind": "answer", "body": None})).status_code == 400
    assert (await fresh_client.post(faults, json={"kind": "answer", "body": '{"x": 1}'})).json() == {"ids": [1]}
