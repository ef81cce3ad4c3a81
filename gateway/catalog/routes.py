"""A service's failover routes: which other provider services may serve its orders, in order.

The service's own provider service is always its first route (priority 0); the operator adds
others (priority 1, 2, ...) that must sell the same type and accept a common quantity range. The
price book turns them into the routes an order may take (:func:`gateway.catalog.pricebook.check_routes`):
a route whose upstream service vanished or whose provider is disabled is skipped, not deleted,
so it serves again once the next catalog sync lists it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import queries
from gateway.catalog.pricebook import RouteCheck, check_routes
from gateway.errors import InvalidInput
from gateway.models import Service, ServiceRoute

MAX_ROUTES = 10
MAX_PRIORITY = 1000


@dataclass(frozen=True, slots=True)
class RouteIn:
    """One failover route as the operator names it: a provider and its upstream service id."""

    provider_id: int
    upstream_service_id: int
    priority: int


@dataclass(frozen=True, slots=True)
class ServiceRoutes:
    """Every route of a service, own first, with what each costs and why it cannot serve now;
    ``min``/``max``: what every usable route accepts (the customer's limits)."""

    service_id: int
    checks: list[RouteCheck]
    names: dict[int, str]
    min: int
    max: int


def upstream_id_input(value: object, field: str) -> int:
    """An upstream service id as an int or a string of digits."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number", field=field)
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 18:
        text = int(text)
    if not isinstance(text, int) or not 0 < text < 2**63:
        raise InvalidInput(f"{field} must be a positive number", field=field)
    return text


async def routes_of(session: AsyncSession, service: Service) -> ServiceRoutes:
    """The service's routes as the price book sees them (the session's own view)."""
    (row,) = await queries.services_for_pricing(session, [service.id])
    entries = (await queries.service_routes(session, [service.id])).get(service.id, [])
    rows = {r.id: r for r in await queries.services_for_pricing(session, [route_id for _, route_id in entries])}
    alternates = [(priority, rows[route_id]) for priority, route_id in entries if route_id in rows]
    checks, low, high = check_routes(row, alternates)
    names = {r.id: r.name_override or r.upstream_name for r in [row, *rows.values()]}
    return ServiceRoutes(service.id, checks, names, low, high)


async def set_routes(session: AsyncSession, service: Service, routes: Sequence[RouteIn]) -> ServiceRoutes:
    """Replace the service's failover routes. An entry naming the service's own provider service
    is accepted only as priority 0 (what :func:`routes_of` lists first) and changes nothing.
    Refused: unknown upstream services, another type, duplicates, and limits that leave no
    quantity every route accepts."""
    if len(routes) > MAX_ROUTES + 1:
        raise InvalidInput(f"at most {MAX_ROUTES} failover routes", field="routes")
    wanted: list[tuple[int, int]] = []
    seen_priorities: set[int] = set()
    seen_services: set[int] = set()
    for index, route in enumerate(routes):
        field = f"routes[{index}]"
        own = route.provider_id == service.provider_id and route.upstream_service_id == service.upstream_service_id
        if route.priority == 0 and own:
            continue
        if own:
            raise InvalidInput("the service's own provider service is its first route (priority 0)", field=field)
        if not 1 <= route.priority <= MAX_PRIORITY:
            raise InvalidInput(f"priority must be 1 to {MAX_PRIORITY}", field=f"{field}.priority")
        if route.priority in seen_priorities:
            raise InvalidInput(f"priority {route.priority} is given twice", field=f"{field}.priority")
        target = await session.scalar(
            select(Service).where(
                Service.provider_id == route.provider_id, Service.upstream_service_id == route.upstream_service_id
            )
        )
        if target is None:
            raise InvalidInput(
                f"provider {route.provider_id} has no service {route.upstream_service_id} (sync its catalog first)",
                field=field,
            )
        if target.id in seen_services:
            raise InvalidInput("the same route is given twice", field=field)
        if target.type != service.type:
            raise InvalidInput(f"its type is {target.type}; this service sells {service.type}", field=field)
        seen_priorities.add(route.priority)
        seen_services.add(target.id)
        wanted.append((route.priority, target.id))
    if len(wanted) > MAX_ROUTES:
        raise InvalidInput(f"at most {MAX_ROUTES} failover routes", field="routes")
    await session.execute(delete(ServiceRoute).where(ServiceRoute.service_id == service.id))
    if wanted:
        session.add_all(
            ServiceRoute(service_id=service.id, priority=priority, route_service_id=target_id)
            for priority, target_id in sorted(wanted)
        )
    await session.flush()
    result = await routes_of(session, service)
    for check in result.checks[1:]:
        if check.kind in ("type", "limits"):
            raise InvalidInput(f"route {check.route.priority}: {check.problem}", field="routes")
    return result
