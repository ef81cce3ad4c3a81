"""Admin: reports (summary and per day, customer, service, provider) and upstream balances."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, PathParameter, QueryParameter
from sqlalchemy import select

from gateway import reports
from gateway.admin.common import ERRORS, UpstreamFailed, money
from gateway.admin.providers import is_low
from gateway.catalog.providers import provider_client
from gateway.deps import DbSession, RuntimeDep
from gateway.errors import InvalidInput
from gateway.models import Provider
from gateway.upstream import UpstreamError

From = Annotated[datetime | None, QueryParameter(name="from", description="ISO 8601, inclusive (UTC if no offset)")]
To = Annotated[datetime | None, QueryParameter(name="to", description="ISO 8601, exclusive (UTC if no offset)")]


class TotalsOut(msgspec.Struct):
    orders: int
    revenue: str
    cost: str
    profit: str
    refunds: str


class GroupOut(msgspec.Struct):
    key: str
    orders: int
    revenue: str
    cost: str
    profit: str
    refunds: str


class ProviderBalanceOut(msgspec.Struct):
    provider_id: int
    name: str
    balance: str | None
    currency: str | None
    checked_at: datetime | None
    low_balance_threshold: str | None
    low_balance: bool
    error: str | None = None


def totals_out(totals: reports.Totals) -> dict[str, Any]:
    return {
        "orders": totals.orders,
        "revenue": money(totals.revenue) or "0.00",
        "cost": money(totals.cost) or "0.00",
        "profit": money(totals.profit) or "0.00",
        "refunds": money(totals.refunds) or "0.00",
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class ReportController(Controller):
    path = "/reports"
    tags = ["reports"]

    @get("/summary", summary="Orders, revenue, cost, profit and refunds over a period", responses=ERRORS)
    async def summary(
        self,
        db: DbSession,
        start: From = None,
        end: To = None,
    ) -> TotalsOut:
        return TotalsOut(**totals_out(await reports.summary(db, _aware(start), _aware(end))))

    @get("/{group:str}", summary="The same, per day, customer, service or provider", responses=ERRORS)
    async def grouped(
        self,
        db: DbSession,
        group: Annotated[str, PathParameter(max_length=20)],
        start: From = None,
        end: To = None,
    ) -> list[GroupOut]:
        if group not in reports.GROUPS:
            raise InvalidInput(f"group must be one of {', '.join(reports.GROUPS)}", field="group")
        rows = await reports.grouped(db, group, _aware(start), _aware(end))
        return [GroupOut(key=k.isoformat() if isinstance(k, date) else str(k), **totals_out(t)) for k, t in rows]

    @get("/balances", summary="Upstream balances per provider with the low-balance flag", responses=ERRORS)
    async def balances(
        self, db: DbSession, runtime: RuntimeDep, refresh: FromQuery[bool] = False
    ) -> list[ProviderBalanceOut]:
        providers = (await db.scalars(select(Provider).order_by(Provider.id))).all()
        result = []
        for provider in providers:
            error = None
            if refresh and provider.enabled:
                try:
                    answer = await provider_client(runtime, provider).balance()
                except (UpstreamError, UpstreamFailed) as exc:
                    error = str(exc)[:300]
                else:
                    provider.last_balance = answer.balance
                    provider.last_balance_currency = answer.currency
                    provider.last_balance_at = datetime.now(UTC)
            result.append(
                ProviderBalanceOut(
                    provider_id=provider.id,
                    name=provider.name,
                    balance=money(provider.last_balance),
                    currency=provider.last_balance_currency,
                    checked_at=provider.last_balance_at,
                    low_balance_threshold=money(provider.low_balance_threshold),
                    low_balance=is_low(provider),
                    error=error,
                )
            )
        return result
