"""Failover routing: which of a service's routes an order is sent to, and where it goes next.

A gateway service is served by its own provider service (route 0) and, when the operator set
them, failover routes (1, 2, ...) of the same type on other providers (the price book keeps the
usable ones, in order). An order starts on the first route whose provider's circuit is not open;
when a send definitely placed nothing (the provider refused for its own reasons, never got the
request, or no longer sells the service) it moves to the next route at once. Never after an
outcome that may have placed it (``unknown``) and never for a refusal of the customer's input:
those end the order's journey as they would without routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from gateway.catalog.pricebook import PricedService, Route
from gateway.money import cost_for
from gateway.orders.outcomes import Failed, OrderToSend, Outcome, Retry
from gateway.orders.validation import SERVICE_TYPES

# Whether calls to a provider may go out now (its circuit is not open).
Reachable = Callable[[int], bool]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The routes one order may take, in order, and what it costs on each."""

    routes: tuple[Route, ...]
    units: int
    per_package: bool

    @classmethod
    def for_order(
        cls, service: PricedService, *, units: int, per_package: bool, params: Mapping[str, object]
    ) -> RoutePlan:
        """The plan of an order of ``service``; a drip-feed order only takes routes that drip-feed."""
        dripfeed = "runs" in params
        routes = tuple(route for route in service.routes if route.dripfeed or not dripfeed)
        return cls(routes, units, per_package)

    @classmethod
    def for_queued(cls, service: PricedService, order: OrderToSend) -> RoutePlan:
        """The plan of an order placed earlier (its units as its charge counted them)."""
        per_package = SERVICE_TYPES[service.type].per_package if service.type in SERVICE_TYPES else False
        units = 1 if per_package else order.quantity
        return cls.for_order(service, units=units, per_package=per_package, params=order.params)

    def cost(self, route: Route) -> Decimal:
        """What the order costs the operator when ``route`` serves it."""
        return cost_for(route.cost_rate, self.units, per_package=self.per_package)

    def first(self, reachable: Reachable) -> Route | None:
        """The route an order starts on: the first reachable one (else the first: its send will
        say why it cannot go, and the order waits like any other)."""
        return next((r for r in self.routes if reachable(r.provider_id)), self.routes[0] if self.routes else None)

    def after(self, priority: int, reachable: Reachable) -> Route | None:
        """The next reachable route after the one of ``priority``."""
        return next((r for r in self.routes if r.priority > priority and reachable(r.provider_id)), None)


def reroutable(outcome: Outcome) -> bool:
    """Whether the send definitely placed nothing for a reason another route may not have."""
    return isinstance(outcome, Retry) or (isinstance(outcome, Failed) and outcome.service_gone)


def why(outcome: Outcome) -> str:
    """What a route answered, for the order's ``routes_tried``."""
    if isinstance(outcome, Retry):
        return outcome.error
    if isinstance(outcome, Failed):
        return f"service gone upstream: {outcome.message}"
    return str(outcome)
