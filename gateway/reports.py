"""Reports for the operator, computed in SQL: orders, revenue, cost, profit, refunds.

Revenue, cost and profit are the sums of each order's, as :mod:`gateway.orders.profit` defines
them (the SQL comes from there too); refunds = the sum refunded to customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.orders.drift import expected_cost_sql, reported_cost_sql
from gateway.orders.profit import cost_sql, revenue_sql

_MEASURES = f"""
    count(*) AS orders,
    coalesce(sum({revenue_sql("o")}), 0) AS revenue,
    coalesce(sum({cost_sql("o")}), 0) AS cost,
    coalesce(sum(o.refunded), 0) AS refunds
"""

GROUPS = {
    "daily": ("date_trunc('day', o.created_at AT TIME ZONE 'UTC')::date", "day"),
    "customers": ("o.customer_id", "customer_id"),
    "services": ("o.service_id", "service_id"),
    "providers": ("o.provider_id", "provider_id"),
}


@dataclass(frozen=True, slots=True)
class Totals:
    orders: int
    revenue: Decimal
    cost: Decimal
    refunds: Decimal

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost


def _window(start: datetime | None, end: datetime | None) -> tuple[str, dict[str, Any]]:
    if start is not None and end is not None and end <= start:
        raise InvalidInput("'to' must be after 'from'", field="to")
    return (
        "WHERE (CAST(:start AS timestamptz) IS NULL OR o.created_at >= :start)"
        " AND (CAST(:end AS timestamptz) IS NULL OR o.created_at < :end)",
        {"start": start, "end": end},
    )


async def summary(session: AsyncSession, start: datetime | None, end: datetime | None) -> Totals:
    where, params = _window(start, end)
    row = (await session.execute(text(f"SELECT {_MEASURES} FROM orders o {where}"), params)).one()  # noqa: S608
    return Totals(row.orders, row.revenue, row.cost, row.refunds)


async def grouped(
    session: AsyncSession, group: str, start: datetime | None, end: datetime | None
) -> list[tuple[Any, Totals]]:
    """Totals per day, customer, service or provider (``group`` is one of GROUPS)."""
    expression, _ = GROUPS[group]
    where, params = _window(start, end)
    rows = await session.execute(
        text(f"SELECT {expression} AS key, {_MEASURES} FROM orders o {where} GROUP BY 1 ORDER BY 1"),  # noqa: S608
        params,
    )
    return [(row.key, Totals(row.orders, row.revenue, row.cost, row.refunds)) for row in rows]


@dataclass(frozen=True, slots=True)
class ChargeDrift:
    """A provider's orders with a reported charge: what they should have cost (expected) and what
    the upstream billed (reported), as :mod:`gateway.orders.drift` defines them."""

    orders: int
    expected: Decimal
    reported: Decimal

    @property
    def drift(self) -> Decimal:
        return self.reported - self.expected


async def charge_drift(session: AsyncSession, start: datetime | None, end: datetime | None) -> dict[int, ChargeDrift]:
    """Per provider id, over the orders created in the period that the upstream reported a charge for."""
    where, params = _window(start, end)
    rows = await session.execute(
        text(
            f"""
            SELECT o.provider_id, count(*) AS orders,
                   coalesce(sum({expected_cost_sql("o")}), 0) AS expected,
                   round(coalesce(sum({reported_cost_sql("o", "p")}), 0), 5) AS reported
            FROM orders o JOIN providers p ON p.id = o.provider_id
            {where} AND o.upstream_charge IS NOT NULL AND o.state = 'placed'
            GROUP BY o.provider_id
            """  # noqa: S608 - composed of constants only
        ),
        params,
    )
    return {int(r.provider_id): ChargeDrift(int(r.orders), r.expected, r.reported) for r in rows}
