from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import RunningSimulator, running_simulator


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(SimulatorConfig(speed=0)) as sim:
        yield sim
