"""Fixtures for the simulator's tests: one server per dialect per module, reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.simulator import Dialect, RunningSimulator, SimulatorConfig, running_simulator

# No randomness in outcomes and a stopped clock: tests move time with advance().
DETERMINISTIC = {
    "speed": 0.0,
    "seed": 7,
    "partial_probability": 0.0,
    "cancel_probability": 0.0,
    "refill_reject_probability": 0.0,
}

V2Call = Callable[..., Awaitable[Any]]


@pytest.fixture(scope="module")
async def panels() -> AsyncIterator[dict[str, RunningSimulator]]:
    documented = SimulatorConfig(dialect=Dialect.DOCUMENTED, **DETERMINISTIC)  # type: ignore[arg-type]
    perfectpanel = SimulatorConfig(dialect=Dialect.PERFECTPANEL, **DETERMINISTIC)  # type: ignore[arg-type]
    async with running_simulator(documented) as doc, running_simulator(perfectpanel) as pp:
        yield {"documented": doc, "perfectpanel": pp}


@pytest.fixture(params=["documented", "perfectpanel"])
def sim(request: pytest.FixtureRequest, panels: dict[str, RunningSimulator]) -> RunningSimulator:
    running = panels[request.param]
    running.reset()
    return running


@pytest.fixture
def documented(panels: dict[str, RunningSimulator]) -> RunningSimulator:
    panels["documented"].reset()
    return panels["documented"]


@pytest.fixture
def perfectpanel(panels: dict[str, RunningSimulator]) -> RunningSimulator:
    panels["perfectpanel"].reset()
    return panels["perfectpanel"]


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


@pytest.fixture
def v2(client: httpx.AsyncClient) -> V2Call:
    """``await v2(sim, action="balance", ...)``: a form-encoded v2 call, checked to be HTTP 200 JSON."""

    async def call(target: RunningSimulator, **params: Any) -> Any:
        form = {"key": target.api_key, **{k: str(v) for k, v in params.items()}}
        response = await client.post(target.url, data=form)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        return response.json()

    return call
