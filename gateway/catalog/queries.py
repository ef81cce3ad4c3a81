"""Every query of the catalog domain, named for what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.models import CatalogRevision, CustomerRate, MarkupRule, Provider, Service, ServiceRoute

Executor = AsyncConnection | AsyncSession


@dataclass(frozen=True, slots=True)
class ServiceRow:
    id: int
    provider_id: int
    upstream_service_id: int
    type: str
    upstream_name: str
    upstream_category: str
    upstream_rate: Decimal
    upstream_min: int
    upstream_max: int
    refill: bool
    cancel: bool
    dripfeed: bool
    upstream_present: bool
    enabled: bool
    name_override: str | None
    category_override: str | None
    min_override: int | None
    max_override: int | None
    fixed_rate: Decimal | None
    fx_rate: Decimal
    provider_enabled: bool
    # Off sale by the margin guard since then (None: not held).
    margin_hold_since: datetime | None = None
    description: str | None = None
    description_override: str | None = None


_service_columns = [
    Service.id,
    Service.provider_id,
    Service.upstream_service_id,
    Service.type,
    Service.upstream_name,
    Service.upstream_category,
    Service.upstream_rate,
    Service.upstream_min,
    Service.upstream_max,
    Service.refill,
    Service.cancel,
    Service.dripfeed,
    Service.upstream_present,
    Service.enabled,
    Service.name_override,
    Service.category_override,
    Service.min_override,
    Service.max_override,
    Service.fixed_rate,
    Provider.fx_rate,
    Provider.enabled.label("provider_enabled"),
    Service.margin_hold_since,
    Service.description,
    Service.description_override,
]

# Minutes from creation to completion of a service's last 10 completed orders, each scaled to
# 1,000 units, averaged (the rule Perfect Panel shows its customers); 10 index rows per service.
_AVERAGE_TIMES = text(
    """
    SELECT s.id AS service_id, a.minutes
    FROM services s
    CROSS JOIN LATERAL (
        SELECT round(avg(extract(epoch FROM o.completed_at - o.created_at) / 60.0
                         * 1000.0 / greatest(o.quantity, 1)))::bigint AS minutes
        FROM (
            SELECT created_at, completed_at, quantity FROM orders
            WHERE service_id = s.id AND status = 'Completed' AND completed_at IS NOT NULL
            ORDER BY completed_at DESC LIMIT 10
        ) o
    ) a
    WHERE a.minutes IS NOT NULL
    """
)


async def average_times(conn: Executor) -> dict[int, int]:
    """Each service's average delivery time in minutes per 1,000 (services with completed orders)."""
    return {int(r.service_id): max(0, int(r.minutes)) for r in (await conn.execute(_AVERAGE_TIMES)).all()}


async def catalog_revision(conn: Executor) -> int:
    return int((await conn.execute(select(CatalogRevision.revision).where(CatalogRevision.id == 1))).scalar_one())


async def services_for_pricing(conn: Executor, service_ids: Sequence[int] | None = None) -> list[ServiceRow]:
    """Every service (or the given ones) with what pricing needs, in id order."""
    query = select(*_service_columns).join(Provider, Provider.id == Service.provider_id).order_by(Service.id)
    if service_ids is not None:
        query = query.where(Service.id.in_(service_ids))
    return [ServiceRow(**row._mapping) for row in (await conn.execute(query)).all()]


async def service_routes(conn: Executor, service_ids: Sequence[int] | None = None) -> dict[int, list[tuple[int, int]]]:
    """Each service's failover routes (or the given services'): service id -> [(priority, route
    service id)], in priority order."""
    query = select(ServiceRoute.service_id, ServiceRoute.priority, ServiceRoute.route_service_id).order_by(
        ServiceRoute.service_id, ServiceRoute.priority
    )
    if service_ids is not None:
        query = query.where(ServiceRoute.service_id.in_(service_ids))
    routes: dict[int, list[tuple[int, int]]] = {}
    for service_id, priority, route_service_id in (await conn.execute(query)).all():
        routes.setdefault(service_id, []).append((priority, route_service_id))
    return routes


async def markup_rules(conn: Executor) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            select(
                MarkupRule.id,
                MarkupRule.scope,
                MarkupRule.percent,
                MarkupRule.fixed,
                MarkupRule.provider_id,
                MarkupRule.category,
                MarkupRule.service_id,
            ).order_by(MarkupRule.id)
        )
    ).all()
    return [dict(row._mapping) for row in rows]


async def all_customer_rates(conn: Executor) -> dict[int, dict[int, Decimal]]:
    result: dict[int, dict[int, Decimal]] = {}
    rows = await conn.execute(select(CustomerRate.customer_id, CustomerRate.service_id, CustomerRate.rate))
    for customer_id, service_id, rate in rows:
        result.setdefault(customer_id, {})[service_id] = rate
    return result


# --- the margin guard -------------------------------------------------------------------------


async def provider_service_costs(session: AsyncSession, provider_id: int) -> dict[int, tuple[Decimal, Decimal]]:
    """A provider's services as they are now: service id -> (upstream rate, the provider's fx rate)."""
    rows = await session.execute(
        select(Service.id, Service.upstream_rate, Provider.fx_rate)
        .join(Provider, Provider.id == Service.provider_id)
        .where(Service.provider_id == provider_id)
    )
    return {row.id: (row.upstream_rate, row.fx_rate) for row in rows}


async def customer_rates_for(session: AsyncSession, service_ids: Sequence[int]) -> dict[int, dict[int, Decimal]]:
    """Enabled customers' own rates for these services: service id -> {customer id: rate}."""
    if not service_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT r.service_id, r.customer_id, r.rate FROM customer_rates r"
            " JOIN customers c ON c.id = r.customer_id"
            " WHERE c.enabled AND r.service_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": list(service_ids)},
    )
    result: dict[int, dict[int, Decimal]] = {}
    for service_id, customer_id, rate in rows:
        result.setdefault(service_id, {})[customer_id] = rate
    return result


async def largest_discount(session: AsyncSession) -> tuple[Decimal, int | None]:
    """The largest discount an enabled customer has (the lowest discounted price) and one customer with it."""
    row = (
        await session.execute(
            text(
                "SELECT id, discount_percent FROM customers WHERE enabled AND discount_percent > 0"
                " ORDER BY discount_percent DESC, id LIMIT 1"
            )
        )
    ).first()
    return (Decimal(0), None) if row is None else (row.discount_percent, row.id)


async def set_margin_holds(session: AsyncSession, hold: Sequence[int], release: Sequence[int]) -> None:
    """Take services off sale for their margin (keeping an earlier hold's time) or put them back."""
    if hold:
        await session.execute(
            update(Service)
            .where(Service.id.in_(hold), Service.margin_hold_since.is_(None))
            .values(margin_hold_since=func.now())
        )
    if release:
        await session.execute(
            update(Service)
            .where(Service.id.in_(release), Service.margin_hold_since.is_not(None))
            .values(margin_hold_since=None)
        )


# --- sync -------------------------------------------------------------------------------------

SYNCED_FIELDS = (
    "type",
    "upstream_type",
    "upstream_name",
    "upstream_category",
    "upstream_rate",
    "upstream_min",
    "upstream_max",
    "refill",
    "cancel",
    "dripfeed",
    "description",
)


# Each synced column's array type: the rows go in as one array per column (unnest), so the
# statement is the same text whatever the catalog's size (a multi-row VALUES was compiled anew for
# every chunk: about 65,000 bound values for 5,000 services, most of a sync's time).
_SYNCED_ARRAY_TYPES = {
    "type": "text[]",
    "upstream_type": "text[]",
    "upstream_name": "text[]",
    "upstream_category": "text[]",
    "upstream_rate": "numeric[]",
    "upstream_min": "bigint[]",
    "upstream_max": "bigint[]",
    "refill": "boolean[]",
    "cancel": "boolean[]",
    "dripfeed": "boolean[]",
    "description": "text[]",
}
assert set(_SYNCED_ARRAY_TYPES) == set(SYNCED_FIELDS)

UPSERT_UPSTREAM_SERVICES = text(
    f"""
    INSERT INTO services (provider_id, upstream_service_id, {", ".join(SYNCED_FIELDS)})
    SELECT CAST(:provider_id AS bigint), * FROM unnest(
        CAST(:upstream_service_id AS bigint[]),
        {", ".join(f"CAST(:{name} AS {_SYNCED_ARRAY_TYPES[name]})" for name in SYNCED_FIELDS)}
    )
    ON CONFLICT (provider_id, upstream_service_id) DO UPDATE SET
        {", ".join(f"{name} = EXCLUDED.{name}" for name in SYNCED_FIELDS)},
        upstream_present = true,
        updated_at = now()
    WHERE {" OR ".join(f"services.{name} IS DISTINCT FROM EXCLUDED.{name}" for name in SYNCED_FIELDS)}
       OR services.upstream_present IS false
    RETURNING (xmax = 0) AS inserted
    """  # noqa: S608 - composed of constants only
)


async def upsert_upstream_services(
    session: AsyncSession, provider_id: int, rows: list[dict[str, Any]]
) -> tuple[int, int]:
    """Insert new services and update changed ones (upstream columns only: local edits stay), in
    one statement (``rows`` hold distinct upstream service ids).

    Returns (created, updated); rows that did not change are not touched at all.
    """
    if not rows:
        return 0, 0
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in ("upstream_service_id", *SYNCED_FIELDS)}
    created = updated = 0
    for (inserted,) in (await session.execute(UPSERT_UPSTREAM_SERVICES, {"provider_id": provider_id, **columns})).all():
        if inserted:
            created += 1
        else:
            updated += 1
    return created, updated


async def mark_vanished_services(session: AsyncSession, provider_id: int, present: Sequence[int]) -> int:
    """Services the upstream no longer lists: no longer for sale. Returns how many."""
    stmt = (
        update(Service)
        .where(
            Service.provider_id == provider_id,
            Service.upstream_present.is_(True),
            Service.upstream_service_id.not_in(present) if present else text("true"),
        )
        .values(upstream_present=False, updated_at=func.now())
        .returning(Service.id)
    )
    return len((await session.execute(stmt)).all())


async def record_sync(session: AsyncSession, provider_id: int, at: datetime, error: str | None) -> None:
    values: dict[str, Any] = {"last_sync_error": error}
    if error is None:
        values["last_sync_at"] = at
    await session.execute(update(Provider).where(Provider.id == provider_id).values(**values))


async def provider_for_update(session: AsyncSession, provider_id: int) -> Provider | None:
    """The provider, its row locked until the transaction ends (None: no such provider)."""
    return await session.get(Provider, provider_id, with_for_update=True, populate_existing=True)


async def providers_due_for_sync(session: AsyncSession, interval_seconds: float) -> list[Provider]:
    """Enabled providers never synced or last synced more than ``interval_seconds`` ago."""
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, interval_seconds)
    query = (
        select(Provider)
        .where(Provider.enabled.is_(True), or_(Provider.last_sync_at.is_(None), Provider.last_sync_at < cutoff))
        .order_by(Provider.last_sync_at.asc().nulls_first())
    )
    return list((await session.scalars(query)).all())
