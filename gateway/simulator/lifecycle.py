"""Order and refill lifecycles as pure functions of simulated time.

Each order gets a plan when it is placed, drawn from an RNG seeded by (config seed, order id), so
an order's fate does not depend on how requests interleave. Its status at any moment is then
computed from the plan; nothing runs in the background.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from gateway.simulator.config import SimulatorConfig


class OrderStatus(StrEnum):
    """Order statuses as panels spell them."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        """Whether the order will never change again (by itself)."""
        return self in (OrderStatus.COMPLETED, OrderStatus.PARTIAL, OrderStatus.CANCELED)


class RefillStatus(StrEnum):
    """Refill statuses as panels spell them."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """What ``status`` shows for an order at one moment."""

    status: OrderStatus
    start_count: int
    remains: int


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """An order's whole future, drawn once when it is placed."""

    units: int
    start_count: int
    processing_at: float
    started_at: float
    # When delivery would reach all units; a Partial plan stops at ``delivered`` units earlier.
    full_delivery_at: float
    outcome: OrderStatus
    delivered: int

    @property
    def finished_at(self) -> float:
        """When the order reaches its terminal status."""
        if self.outcome is OrderStatus.CANCELED:
            return self.started_at
        share = self.delivered / self.units
        return self.started_at + (self.full_delivery_at - self.started_at) * share

    def progress_at(self, now: float) -> OrderProgress:
        """The order as ``status`` would show it at simulated time ``now``."""
        if now < self.processing_at:
            return OrderProgress(OrderStatus.PENDING, 0, self.units)
        if now < self.started_at:
            return OrderProgress(OrderStatus.PROCESSING, 0, self.units)
        if now >= self.finished_at:
            return OrderProgress(self.outcome, self.start_count, self.units - self.delivered)
        elapsed = (now - self.started_at) / (self.full_delivery_at - self.started_at)
        delivered = min(self.delivered, math.floor(self.units * elapsed))
        return OrderProgress(OrderStatus.IN_PROGRESS, self.start_count, self.units - delivered)


def plan_delivery(
    config: SimulatorConfig, order_id: int, created_at: float, units: int, drip_seconds: float
) -> DeliveryPlan:
    """Draw an order's plan; ``drip_seconds`` stretches delivery over drip-feed runs."""
    rng = random.Random(config.seed * 1_000_003 + order_id)
    processing_at = created_at + rng.uniform(*config.pending_seconds)
    started_at = processing_at + rng.uniform(*config.processing_seconds)
    duration = max(units / rng.uniform(*config.units_per_hour) * 3600.0, drip_seconds, 60.0)
    # Accounts and posts already have an audience: a log-normal start count, median around 1,100.
    start_count = int(rng.lognormvariate(7.0, 1.5))
    draw = rng.random()
    if draw < config.cancel_probability:
        outcome, delivered = OrderStatus.CANCELED, 0
    elif draw < config.cancel_probability + config.partial_probability and units > 1:
        outcome = OrderStatus.PARTIAL
        delivered = min(units - 1, max(1, math.floor(units * rng.uniform(0.1, 0.9))))
    else:
        outcome, delivered = OrderStatus.COMPLETED, units
    return DeliveryPlan(
        units=units,
        start_count=start_count,
        processing_at=processing_at,
        started_at=started_at,
        full_delivery_at=started_at + duration,
        outcome=outcome,
        delivered=delivered,
    )


@dataclass(frozen=True, slots=True)
class RefillPlan:
    """A refill's whole future, drawn once when it is requested."""

    started_at: float
    finished_at: float
    outcome: RefillStatus

    def status_at(self, now: float) -> RefillStatus:
        """The refill's status at simulated time ``now``."""
        if now < self.started_at:
            return RefillStatus.PENDING
        if now < self.finished_at:
            return RefillStatus.IN_PROGRESS
        return self.outcome


def plan_refill(config: SimulatorConfig, refill_id: int, created_at: float) -> RefillPlan:
    """Draw a refill's plan: a short wait, then work, then Completed or (sometimes) Rejected."""
    rng = random.Random(config.seed * 1_000_033 + refill_id)
    low, high = config.refill_seconds
    started_at = created_at + rng.uniform(low, high) / 4
    finished_at = started_at + rng.uniform(low, high)
    rejected = rng.random() < config.refill_reject_probability
    return RefillPlan(started_at, finished_at, RefillStatus.REJECTED if rejected else RefillStatus.COMPLETED)
