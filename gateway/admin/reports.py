"""Admin: reports (summary and per day, customer, service, provider) and upstream balances."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import PathParameter, QueryParameter

from gateway import reports
from gateway.admin.common import ERRORS, actor, money
from gateway.admin.deps import DbSession, ProvidersDep, SessionsDep
from gateway.catalog import balances as domain
from gateway.errors import InvalidInput
from gateway.orders.drift import drift_percent

From = Annotated[datetime | None, QueryParameter(name="from", description="ISO 8601, inclusive (UTC if no offset)")]
To = Annotated[datetime | None, QueryParameter(name="to", description="ISO 8601, exclusive (UTC if no offset)")]


class TotalsOut(msgspec.Struct):
    orders: int
    revenue: str
    cost: str
    profit: str
    refunds: str


class GroupOut(msgspec.Struct, omit_defaults=True):
    key: str
    orders: int
    revenue: str
    cost: str
    profit: str
    refunds: str
    # Per provider only (gateway/orders/drift.py), over the orders the upstream reported a charge
    # for: what they should have cost, what the upstream billed, the difference and its percent.
    charged_orders: int | None = None
    expected_cost: str | None = None
    reported_cost: str | None = None
    drift: str | None = None
    drift_percent: str | None = None


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


def drift_out(drift: reports.ChargeDrift | None) -> dict[str, Any]:
    if drift is None:
        return {"charged_orders": 0, "expected_cost": "0.00", "reported_cost": "0.00", "drift": "0.00"}
    percent = drift_percent(drift.expected, drift.reported)
    return {
        "charged_orders": drift.orders,
        "expected_cost": money(drift.expected) or "0.00",
        "reported_cost": money(drift.reported) or "0.00",
        "drift": money(drift.drift) or "0.00",
        "drift_percent": None if percent is None else str(percent),
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
        if group != "providers":
            return [GroupOut(key=k.isoformat() if isinstance(k, date) else str(k), **totals_out(t)) for k, t in rows]
        drift = await reports.charge_drift(db, _aware(start), _aware(end))
        return [GroupOut(key=str(k), **totals_out(t), **drift_out(drift.get(int(k)))) for k, t in rows]

    @get(
        "/balances",
        summary="Upstream balances per provider as last recorded, with the low-balance flag",
        responses=ERRORS,
    )
    async def balances(self, request: Request[Any, Any, Any], db: DbSession) -> list[ProviderBalanceOut]:
        if "refresh" in request.query_params:
            # It used to ask the upstreams and write from a GET; say where that went, so scripts notice.
            raise InvalidInput("refresh moved: POST /admin/reports/balances/refresh", field="refresh")
        return [balance_out(b) for b in await domain.recorded_balances(db)]

    @post(
        "/balances/refresh",
        summary="Ask every enabled provider's upstream for its balance now and record the answers (audited)",
        status_code=200,
        responses=ERRORS,
    )
    async def refresh_balances(
        self, request: Request[Any, Any, Any], sessions: SessionsDep, providers: ProvidersDep
    ) -> list[ProviderBalanceOut]:
        # No request-wide session: the upstreams are asked with no transaction open.
        fresh = await domain.refresh_balances(sessions, providers, actor(request))
        return [balance_out(b) for b in fresh]


def balance_out(recorded: domain.RecordedBalance) -> ProviderBalanceOut:
    return ProviderBalanceOut(
        provider_id=recorded.provider_id,
        name=recorded.name,
        balance=money(recorded.balance),
        currency=recorded.currency,
        checked_at=recorded.checked_at,
        low_balance_threshold=money(recorded.low_balance_threshold),
        low_balance=recorded.low_balance,
        error=recorded.error,
    )
