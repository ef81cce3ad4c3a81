"""A simulated upstream SMM panel speaking API v2: for the demo, integration tests and benchmarks.

Typical use::

    async with running_simulator(SimulatorConfig(speed=0)) as sim:
        sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
        ...  # point a provider at sim.url with sim.api_key

    with SimulatorThread(SimulatorConfig(dialect=Dialect.PERFECTPANEL)) as sim:
        ...  # from synchronous code, or next to another event loop
"""

from gateway.simulator.catalog import Service, ServiceType, default_catalog, generate_catalog
from gateway.simulator.command import main
from gateway.simulator.config import Dialect, SimulatorConfig
from gateway.simulator.engine import OrderView, Panel
from gateway.simulator.errors import PanelError
from gateway.simulator.faults import FaultRule
from gateway.simulator.lifecycle import OrderStatus, RefillStatus
from gateway.simulator.recorder import RecordedRequest
from gateway.simulator.runner import RunningSimulator, SimulatorThread, running_simulator, serve
from gateway.simulator.simulation import Simulation

__all__ = [
    "Dialect",
    "FaultRule",
    "OrderStatus",
    "OrderView",
    "Panel",
    "PanelError",
    "RecordedRequest",
    "RefillStatus",
    "RunningSimulator",
    "Service",
    "ServiceType",
    "Simulation",
    "SimulatorConfig",
    "SimulatorThread",
    "default_catalog",
    "generate_catalog",
    "main",
    "running_simulator",
    "serve",
]
