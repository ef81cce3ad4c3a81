"""The per-provider circuit breaker, alone and inside the client."""

from __future__ import annotations

import httpx
import pytest

from gateway.upstream import CircuitBreaker, UpstreamCircuitOpen, UpstreamNotSent, UpstreamRejected, UpstreamUnknown
from tests.upstream.helpers import FakeClock, FakePanel, make_client


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert not breaker.allow()
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.consecutive_failures, snapshot.failures, snapshot.short_circuited) == (
        "open",
        3,
        3,
        2,
    )
    assert snapshot.times_opened == 1
    assert snapshot.retry_in == pytest.approx(30.0)


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(2, 30.0, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.advance(9.9)
    assert breaker.state == "open"
    clock.advance(0.2)
    assert breaker.state == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its outcome
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.allow()


def test_a_failed_probe_opens_again_for_a_full_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert breaker.times_opened == 2


def test_an_abandoned_probe_releases_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_abandoned()
    assert breaker.allow()


async def test_the_client_opens_fails_fast_probes_and_closes() -> None:
    clock = FakeClock()
    refused = httpx.ConnectError("refused")
    panel = FakePanel(refused, refused, refused, {"balance": "1.00", "currency": "USD"})
    async with make_client(
        panel, clock=clock, read_attempts=1, breaker_failure_threshold=3, breaker_reset_timeout=30.0
    ) as client:
        for _ in range(3):
            with pytest.raises(UpstreamNotSent):
                await client.balance()
        assert client.breaker.state == "open"
        with pytest.raises(UpstreamCircuitOpen):
            await client.balance()
        with pytest.raises(UpstreamCircuitOpen):
            await client.add(1, {"link": "https://x.test/p"})
        assert panel.count == 3  # fail fast: the network was not touched

        clock.advance(30)
        assert client.breaker.state == "half_open"
        assert (await client.balance()).currency == "USD"
        assert client.breaker.state == "closed"
        assert panel.count == 4


async def test_an_open_circuit_stops_the_retries_of_a_read() -> None:
    panel = FakePanel(httpx.ReadTimeout("slow"))
    async with make_client(panel, read_attempts=5, breaker_failure_threshold=2) as client:
        with pytest.raises(UpstreamCircuitOpen):
            await client.balance()
    assert panel.count == 2


async def test_rejections_do_not_open_the_circuit_and_unknowns_do() -> None:
    panel = FakePanel({"error": "Incorrect order ID"})
    async with make_client(panel, read_attempts=1, breaker_failure_threshold=2) as client:
        for _ in range(5):
            with pytest.raises(UpstreamRejected):
                await client.status(1)
        assert client.breaker.state == "closed"

    panel = FakePanel(httpx.Response(500))
    async with make_client(panel, read_attempts=1, breaker_failure_threshold=2) as client:
        for _ in range(2):
            with pytest.raises(UpstreamUnknown):
                await client.status(1)
        assert client.breaker.state == "open"
