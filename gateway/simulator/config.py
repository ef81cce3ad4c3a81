"""How a simulated panel behaves: one frozen value, chosen at start (see ``SimulatorConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gateway.simulator.catalog import Service, default_catalog, index_catalog

DEFAULT_API_KEY = "sim-api-key"


class Dialect(StrEnum):
    """Which answer shapes the panel uses (PROTOCOL.md §2 and §4)."""

    DOCUMENTED = "documented"
    PERFECTPANEL = "perfectpanel"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything that makes one simulated panel differ from another.

    Times are in simulated seconds; ``speed`` simulated seconds pass per real second, so the
    default of 60 makes a minute of panel life pass every second. ``speed=0`` stops the clock:
    then only ``advance`` moves it, which is what deterministic tests want.
    """

    api_key: str = DEFAULT_API_KEY
    dialect: Dialect = Dialect.DOCUMENTED
    speed: float = 60.0
    seed: int = 0
    currency: str = "USD"
    starting_balance: Decimal = Decimal("1000.00")
    catalog: tuple[Service, ...] = field(default_factory=default_catalog)
    # Outcome odds of a new order; the rest complete. Canceled orders deliver nothing.
    partial_probability: float = 0.1
    cancel_probability: float = 0.05
    refill_reject_probability: float = 0.1
    # Lifecycle pacing: Pending for this long, then Processing, then delivery at a per-order rate.
    pending_seconds: tuple[float, float] = (30.0, 300.0)
    processing_seconds: tuple[float, float] = (10.0, 120.0)
    units_per_hour: tuple[float, float] = (2_000.0, 20_000.0)
    refill_seconds: tuple[float, float] = (300.0, 3_600.0)
    # Answer "You have active order with this link..." like panels that guard duplicates.
    duplicate_link_guard: bool = False
    max_ids: int = 100
    first_order_id: int = 10_001
    first_refill_id: int = 5_001
    max_recorded_requests: int = 100_000

    def __post_init__(self) -> None:
        # Fail at construction, not at the first request, on settings no panel could have.
        object.__setattr__(self, "dialect", Dialect(self.dialect))
        index_catalog(self.catalog)
        for name in ("partial_probability", "cancel_probability", "refill_reject_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.partial_probability + self.cancel_probability > 1.0:
            raise ValueError("partial_probability + cancel_probability must not exceed 1")
        if self.speed < 0:
            raise ValueError("speed must not be negative")
        if self.starting_balance < 0:
            raise ValueError("starting_balance must not be negative")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
