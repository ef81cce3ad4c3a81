"""One simulated panel's moving parts, bundled: the panel, its faults, its request log."""

from __future__ import annotations

from gateway.simulator.config import SimulatorConfig
from gateway.simulator.dialects import DocumentedDialect, dialect_for
from gateway.simulator.engine import Panel
from gateway.simulator.faults import FaultPlan
from gateway.simulator.recorder import RequestLog


class Simulation:
    """What the HTTP layer serves and what a runner hands to tests."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.panel = Panel(self.config)
        self.faults = FaultPlan(self.config.seed)
        self.requests = RequestLog(self.config.max_recorded_requests)
        self.dialect: DocumentedDialect = dialect_for(self.config.dialect, self.config.currency)

    def reset(self) -> None:
        """Back to the configured start: no orders, no faults, no recorded requests."""
        self.panel.reset()
        self.faults.reset()
        self.requests.clear()
