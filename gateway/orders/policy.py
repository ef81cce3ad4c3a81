"""The settings values the life of an order depends on, and nothing else of the process."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class OrderPolicy:
    currency: str
    duplicate_link_guard: bool
    # A queued order older than this is canceled and refunded.
    queued_order_max_age_seconds: float
    # An order or refill still submitting after this (its sender died) becomes unknown.
    submitting_stale_seconds: float
    # How often an active order is polled upstream (longer for old orders).
    status_sync_interval_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderPolicy:
        return cls(
            currency=settings.currency,
            duplicate_link_guard=settings.duplicate_link_guard,
            queued_order_max_age_seconds=settings.queued_order_max_age_seconds,
            submitting_stale_seconds=settings.submitting_stale_seconds,
            status_sync_interval_seconds=settings.status_sync_interval_seconds,
        )
