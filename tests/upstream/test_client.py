"""The client's requests, multi-call splitting, observer records, and the registry."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from gateway.upstream import (
    AttemptRecord,
    StatusAnswer,
    UnsafeUpstreamURL,
    UpstreamCircuitOpen,
    UpstreamConfig,
    UpstreamNotSent,
    UpstreamRegistry,
    UpstreamRejected,
    UpstreamUnknown,
)
from gateway.upstream.transport import PanelTransport
from gateway.upstream.wire import UpstreamHttp
from tests.upstream.helpers import API_KEY, API_URL, FAST, FakePanel, make_client, public_resolver


async def test_a_call_is_one_urlencoded_post_with_key_and_action_in_the_body() -> None:
    panel = FakePanel({"order": 23501})
    async with make_client(panel) as client:
        order_id = await client.add(
            3, {"link": "https://instagram.com/p/x", "comments": "nice\ngreat", "runs": "5", "interval": "30"}
        )
    assert order_id == 23501
    request = panel.requests[0]
    assert request.method == "POST"
    assert str(request.url) == API_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert panel.forms[0] == {
        "key": API_KEY,
        "action": "add",
        "service": "3",
        "link": "https://instagram.com/p/x",
        "comments": "nice\ngreat",
        "runs": "5",
        "interval": "30",
    }


@pytest.mark.parametrize("field", ["key", "action", "service"])
async def test_add_params_cannot_override_the_adapters_fields(field: str) -> None:
    panel = FakePanel({"order": 1})
    async with make_client(panel) as client:
        with pytest.raises(ValueError, match=field):
            await client.add(1, {field: "x", "link": "https://x.test/p"})
    assert panel.count == 0


@pytest.mark.parametrize("bad", [0, -1, True])
async def test_ids_must_be_positive_integers(bad: int) -> None:
    async with make_client(FakePanel({})) as client:
        with pytest.raises(ValueError, match="positive"):
            await client.status(bad)


async def test_multi_status_splits_250_ids_into_three_calls() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = dict(httpx.QueryParams(request.content.decode()))["orders"].split(",")
        return httpx.Response(200, json={i: {"status": "Completed", "remains": "0"} for i in ids})

    panel = FakePanel(answer)
    async with make_client(panel) as client:
        result = await client.statuses(range(1, 251))
    assert panel.count == 3
    sizes = [len(form["orders"].split(",")) for form in panel.forms]
    assert sizes == [100, 100, 50]
    assert sorted(result) == list(range(1, 251))
    assert all(isinstance(v, StatusAnswer) for v in result.values())


async def test_multi_ids_are_deduplicated_and_empty_lists_cost_nothing() -> None:
    panel = FakePanel({"1": {"status": "Pending"}, "2": {"status": "Pending"}})
    async with make_client(panel) as client:
        assert await client.statuses([]) == {}
        assert await client.refill_statuses([]) == {}
        assert await client.cancel([]) == {}
        assert await client.refills([]) == {}
        await client.statuses([1, 2, 1, 2])
    assert panel.forms == [{"key": API_KEY, "action": "status", "orders": "1,2"}]


async def test_refill_statuses_are_split_too() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = dict(httpx.QueryParams(request.content.decode()))["refills"].split(",")
        return httpx.Response(200, json=[{"refill": i, "status": "Pending"} for i in ids])

    panel = FakePanel(answer)
    async with make_client(panel) as client:
        result = await client.refill_statuses(range(1, 102))
    assert panel.count == 2
    assert len(result) == 101


async def test_multi_writes_are_not_split() -> None:
    async with make_client(FakePanel({})) as client:
        with pytest.raises(ValueError, match="100"):
            await client.cancel(range(1, 102))
        with pytest.raises(ValueError, match="100"):
            await client.refills(range(1, 102))


async def test_the_observer_sees_every_attempt() -> None:
    records: list[AttemptRecord] = []
    panel = FakePanel(
        httpx.ConnectError("refused"),
        {"order": 5},
        {"error": "Incorrect service ID"},
        httpx.ReadTimeout("slow"),
        httpx.Response(503, html="<h1>Service Unavailable</h1>"),
    )
    async with make_client(panel, records=records, read_attempts=2, write_attempts=2) as client:
        assert await client.add(1, {"link": "https://x.test/p"}, request_id="req-add") == 5
        with pytest.raises(UpstreamRejected):
            await client.add(2, {"link": "https://x.test/p"}, request_id="req-rej")
        with pytest.raises(UpstreamUnknown):
            await client.balance(request_id="req-bal")
    summary = [(r.action, r.outcome, r.http_status, r.attempt, r.request_id) for r in records]
    assert summary == [
        ("add", "not_sent", None, 1, "req-add"),
        ("add", "ok", 200, 2, "req-add"),
        ("add", "rejected", 200, 1, "req-rej"),
        ("balance", "unknown", None, 1, "req-bal"),
        ("balance", "unknown", 503, 2, "req-bal"),
    ]
    assert all(r.provider_id == 7 and r.duration >= 0 and not r.short_circuited for r in records)
    assert "ConnectError" in (records[0].error or "")
    assert records[1].error is None
    assert records[2].error == "Incorrect service ID"
    assert "ReadTimeout" in (records[3].error or "")
    assert records[4].excerpt == "<h1>Service Unavailable</h1>"
    assert "request_id" not in panel.forms[0]
    assert not any("req-" in v for form in panel.forms for v in form.values())


async def test_the_observer_sees_short_circuits_and_cannot_break_a_call() -> None:
    records: list[AttemptRecord] = []

    def observer(record: AttemptRecord) -> None:
        records.append(record)
        raise RuntimeError("call log is down")

    panel = FakePanel(httpx.ConnectError("refused"), {"order": 9})
    async with make_client(
        panel, observer=observer, read_attempts=1, write_attempts=1, breaker_failure_threshold=1
    ) as client:
        with pytest.raises(UpstreamNotSent):
            await client.add(1, {"link": "https://x.test/p"})
        with pytest.raises(UpstreamCircuitOpen):
            await client.add(1, {"link": "https://x.test/p"})
    assert [(r.outcome, r.short_circuited) for r in records] == [("not_sent", False), ("not_sent", True)]


async def test_a_cancelled_call_is_recorded_and_releases_the_probe() -> None:
    records: list[AttemptRecord] = []
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    async with make_client(FakePanel(hang), records=records) as client:
        task = asyncio.create_task(client.balance())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(r.outcome, r.error) for r in records] == [("unknown", "cancelled")]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="deadline"):
        UpstreamConfig(deadline=1.0, connect_timeout=2.0)
    with pytest.raises(ValueError, match="max_ids_per_call"):
        UpstreamConfig(max_ids_per_call=101)
    with pytest.raises(ValueError, match="attempt"):
        UpstreamConfig(read_attempts=0)
    assert UpstreamConfig().keepalive_expiry < 5


async def test_the_pool_is_configured_from_the_config() -> None:
    config = UpstreamConfig(max_connections=3, max_keepalive_connections=2, keepalive_expiry=2.5)
    http = UpstreamHttp(config, None)
    try:
        assert (http.timeout["connect"], http.timeout["pool"]) == (config.connect_timeout, config.pool_timeout)
        transport = http.transport
        assert isinstance(transport, PanelTransport)
        assert (transport.max_connections, transport.max_keepalive, transport.keepalive_expiry) == (3, 2, 2.5)
        assert transport._slots._value == 3
    finally:
        await http.aclose()


# --- registry -----------------------------------------------------------------------------------


def _registry(panel: FakePanel) -> UpstreamRegistry:
    return UpstreamRegistry(
        replace(FAST), transport_factory=lambda pid: httpx.MockTransport(panel), resolver=public_resolver
    )


async def test_the_registry_reuses_a_client_until_url_or_key_change() -> None:
    panel = FakePanel({"balance": "1"})
    registry = _registry(panel)
    first = registry.client_for(1, API_URL, API_KEY)
    assert registry.client_for(1, API_URL, API_KEY) is first
    assert registry.client_for(2, API_URL, API_KEY) is not first

    rekeyed = registry.client_for(1, API_URL, "another-key")
    assert rekeyed is not first
    await asyncio.sleep(0)  # the retired client closes in the background
    assert first.is_closed
    moved = registry.client_for(1, "https://other.example.com/api/v2", "another-key")
    assert moved is not rekeyed
    assert set(registry.breakers()) == {1, 2}
    assert registry.breakers()[1].state == "closed"

    await registry.aclose()
    assert rekeyed.is_closed
    assert moved.is_closed


async def test_a_retired_client_finishes_its_calls_before_closing() -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"order": 77})

    panel = FakePanel(slow)
    registry = _registry(panel)
    old = registry.client_for(1, API_URL, API_KEY)
    call = asyncio.create_task(old.add(1, {"link": "https://x.test/p"}))
    await asyncio.sleep(0.01)
    registry.client_for(1, API_URL, "rotated-key")
    await asyncio.sleep(0.01)
    assert not old.is_closed
    release.set()
    assert await call == 77
    assert old.is_closed
    await registry.aclose()


def test_the_registry_refuses_unsafe_urls() -> None:
    registry = UpstreamRegistry()
    with pytest.raises(UnsafeUpstreamURL):
        registry.client_for(1, "http://127.0.0.1:8000/api/v2", API_KEY)
    assert "127.0.0.1" not in repr(registry)


async def test_forget_closes_the_client() -> None:
    registry = _registry(FakePanel({}))
    client = registry.client_for(1, API_URL, API_KEY)
    registry.forget(1)
    await asyncio.sleep(0)
    assert client.is_closed
    assert registry.breakers() == {}
    await registry.aclose()
