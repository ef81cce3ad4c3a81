"""The adapter against the real simulated panel over loopback: every action in both of the
simulator's dialects, and the failures that need a real connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import pytest

from gateway.simulator import Dialect, FaultRule, RunningSimulator, SimulatorConfig, running_simulator
from gateway.upstream import (
    AttemptRecord,
    CancelAccepted,
    ItemError,
    OrderStatus,
    RefillStatusAnswer,
    RejectReason,
    StatusAnswer,
    UpstreamAddressRefused,
    UpstreamClient,
    UpstreamConfig,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
)
from gateway.upstream.addresses import HostGuard
from tests.upstream.helpers import public_resolver

DETERMINISTIC = SimulatorConfig(
    speed=0.0, seed=7, partial_probability=0.0, cancel_probability=0.0, refill_reject_probability=0.0
)
LOOPBACK = UpstreamConfig(
    allow_private=True,
    deadline=2.0,
    connect_timeout=1.0,
    pool_timeout=1.0,
    backoff_base=0.001,
    backoff_max=0.002,
)
MISSING = 999_999


@pytest.fixture(scope="module")
async def panels() -> AsyncIterator[dict[str, RunningSimulator]]:
    documented = replace(DETERMINISTIC, dialect=Dialect.DOCUMENTED)
    perfectpanel = replace(DETERMINISTIC, dialect=Dialect.PERFECTPANEL)
    async with running_simulator(documented) as doc, running_simulator(perfectpanel) as pp:
        yield {"documented": doc, "perfectpanel": pp}


@pytest.fixture(params=["documented", "perfectpanel"])
def sim(request: pytest.FixtureRequest, panels: dict[str, RunningSimulator]) -> RunningSimulator:
    running = panels[request.param]
    running.reset()
    return running


def _client(sim: RunningSimulator, **config: object) -> UpstreamClient:
    return UpstreamClient("sim", sim.url, sim.api_key, config=replace(LOOPBACK, **config))  # type: ignore[arg-type]


async def test_every_action(sim: RunningSimulator) -> None:
    async with _client(sim) as upstream:
        balance = await upstream.balance()
        assert (balance.balance, balance.currency) == (Decimal("1000.00"), "USD")

        services = {s.service: s for s in await upstream.services()}
        followers = services[101]
        assert (followers.type, followers.rate, followers.min, followers.max) == (
            "Default",
            Decimal("1.85"),
            50,
            100000,
        )
        assert (followers.refill, followers.cancel) == (True, True)
        assert services[114].type == "Package"

        order_id = await upstream.add(101, {"link": "https://instagram.com/someone", "quantity": "100"})
        cancelable = await upstream.add(102, {"link": "https://instagram.com/other", "quantity": "100"})
        assert sim.request_count("add") == 2

        status = await upstream.status(order_id)
        assert status.status is OrderStatus.PENDING
        assert status.charge == Decimal("0.185")
        assert status.currency == "USD"
        statuses = await upstream.statuses([order_id, cancelable, MISSING])
        assert isinstance(statuses[order_id], StatusAnswer)
        assert statuses[MISSING] == ItemError("Incorrect order ID")

        canceled = await upstream.cancel([cancelable, MISSING])
        assert canceled[cancelable] == CancelAccepted()
        assert isinstance(canceled[MISSING], ItemError)
        after_cancel = await upstream.status(cancelable)
        assert after_cancel.status is OrderStatus.CANCELED

        sim.advance(10**7)
        completed = await upstream.status(order_id)
        assert (completed.status, completed.remains) == (OrderStatus.COMPLETED, 0)

        refill_id = await upstream.refill(order_id)
        refill = await upstream.refill_status(refill_id)
        assert isinstance(refill, RefillStatusAnswer)
        assert refill.is_known
        refill_statuses = await upstream.refill_statuses([refill_id, MISSING])
        assert isinstance(refill_statuses[refill_id], RefillStatusAnswer)
        assert isinstance(refill_statuses[MISSING], ItemError)

        sim.advance(10**7)
        refills = await upstream.refills([order_id, MISSING])
        assert isinstance(refills[order_id], int)
        assert isinstance(refills[MISSING], ItemError)

        with pytest.raises(UpstreamRejected) as caught:
            await upstream.refill(MISSING)
        assert caught.value.reason is RejectReason.INPUT


@pytest.mark.parametrize(
    ("service", "params", "reason"),
    [
        (999, {"link": "https://instagram.com/x", "quantity": "100"}, RejectReason.SERVICE),
        (101, {"link": "https://instagram.com/x", "quantity": "1"}, RejectReason.INPUT),
        (101, {"link": "", "quantity": "100"}, RejectReason.INPUT),
    ],
)
async def test_rejections_are_classified(
    sim: RunningSimulator, service: int, params: dict[str, str], reason: RejectReason
) -> None:
    async with _client(sim) as upstream:
        with pytest.raises(UpstreamRejected) as caught:
            await upstream.add(service, params)
    assert caught.value.reason is reason
    assert sim.request_count("add") == 1


async def test_a_wrong_key_is_a_provider_rejection(sim: RunningSimulator) -> None:
    async with UpstreamClient("sim", sim.url, "wrong-key", config=LOOPBACK) as upstream:
        with pytest.raises(UpstreamRejected) as caught:
            await upstream.balance()
    assert caught.value.reason is RejectReason.PROVIDER


async def test_not_enough_funds_is_a_provider_rejection(sim: RunningSimulator) -> None:
    sim.set_balance("0.01")
    async with _client(sim) as upstream:
        with pytest.raises(UpstreamRejected) as caught:
            await upstream.add(101, {"link": "https://instagram.com/x", "quantity": "1000"})
    assert caught.value.reason is RejectReason.PROVIDER


async def test_an_add_whose_answer_never_comes_is_unknown_and_reached_the_panel_exactly_once(
    sim: RunningSimulator,
) -> None:
    sim.set_faults(FaultRule(kind="hang", action="add", when="after"))
    async with _client(sim, deadline=0.3, connect_timeout=0.1, pool_timeout=0.1, write_attempts=3) as upstream:
        with pytest.raises(UpstreamUnknown, match="deadline"):
            await upstream.add(101, {"link": "https://instagram.com/x", "quantity": "100"})
    assert sim.request_count("add") == 1
    assert len(sim.state.orders()) == 1  # it was placed: exactly why it must not be re-sent


@pytest.mark.parametrize("kind", ["drop", "http_5xx", "html", "malformed_json", "empty"])
async def test_an_add_whose_answer_goes_wrong_is_unknown_and_sent_once(sim: RunningSimulator, kind: str) -> None:
    sim.set_faults(FaultRule(kind=kind, action="add", when="after"))  # type: ignore[arg-type]
    async with _client(sim, write_attempts=3) as upstream:
        with pytest.raises(UpstreamUnknown):
            await upstream.add(101, {"link": "https://instagram.com/x", "quantity": "100"})
    assert sim.request_count("add") == 1


async def test_reads_retry_through_transient_faults(sim: RunningSimulator) -> None:
    sim.set_faults(
        FaultRule(kind="drop", action="balance", times=1), FaultRule(kind="http_5xx", action="balance", times=1)
    )
    async with _client(sim, read_attempts=3) as upstream:
        assert (await upstream.balance()).currency == "USD"
    assert sim.request_count("balance") == 3


async def test_status_of_250_orders_takes_three_calls(sim: RunningSimulator) -> None:
    async with _client(sim) as upstream:
        ids = [await upstream.add(203, {"link": f"https://tiktok.com/v/{i}", "quantity": "100"}) for i in range(3)]
        result = await upstream.statuses([*ids, *range(MISSING - 246, MISSING + 1)])
    assert sim.request_count("status") == 3
    assert len(result) == 250
    assert all(isinstance(result[i], StatusAnswer) for i in ids)


async def test_the_connect_time_check_refuses_a_private_peer(sim: RunningSimulator) -> None:
    """A name that passed the resolve-time check but connects to loopback (DNS rebinding) is
    refused when the connection is made, before the request is sent."""
    upstream = _client(sim)
    upstream._calls.guard = HostGuard(public_resolver)  # the resolver "says" public; the socket says 127.0.0.1
    async with upstream:
        with pytest.raises(UpstreamAddressRefused, match="connection to the upstream reached a loopback"):
            await upstream.add(101, {"link": "https://instagram.com/x", "quantity": "100"})
    assert sim.request_count() == 0


async def test_no_free_pooled_connection_is_not_sent(sim: RunningSimulator) -> None:
    sim.set_faults(FaultRule(kind="hang", action="status", when="before"))
    async with _client(
        sim, max_connections=1, pool_timeout=0.1, deadline=0.5, connect_timeout=0.2, read_attempts=1, write_attempts=1
    ) as upstream:
        hanging = asyncio.create_task(upstream.status(1))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamNotSent, match="PoolTimeout"):
            await upstream.add(101, {"link": "https://instagram.com/x", "quantity": "100"})
        with pytest.raises(UpstreamUnknown):
            await hanging
    assert sim.request_count("add") == 0


async def test_a_refused_connection_is_not_sent_and_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    records: list[AttemptRecord] = []
    async with UpstreamClient(
        "gone",
        f"http://127.0.0.1:{port}/api/v2",
        "k",
        config=replace(LOOPBACK, write_attempts=2),
        observer=records.append,
    ) as upstream:
        with pytest.raises(UpstreamNotSent, match="ConnectError"):
            await upstream.add(101, {"link": "https://instagram.com/x"})
    assert [r.outcome for r in records] == ["not_sent", "not_sent"]
