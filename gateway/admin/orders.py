"""Admin: orders — list and filter, one order with its ledger entries, upstream calls and anomalies,
resolve an unknown one, settle one whose refund waits for a decision, retry a queued one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from gateway import audit
from gateway.admin.common import ERRORS, actor, money
from gateway.admin.customers import LedgerEntryOut, entry_out
from gateway.admin.deps import DbSession
from gateway.errors import InvalidInput
from gateway.models import Order, OrderAnomaly, UpstreamCall
from gateway.money import MoneyError, parse_amount
from gateway.orders import operator as domain

Id = Annotated[int, PathParameter(gt=0, le=2**62)]
OptionalId = Annotated[int | None, QueryParameter(gt=0, le=2**62)]


class OrderOut(msgspec.Struct):
    id: int
    customer_id: int
    service_id: int
    provider_id: int
    upstream_service_id: int
    # The route that serves the order (0: the service's own provider service; 1, 2...: failover
    # routes), and the routes that did not take it before, with why.
    route_priority: int
    routes_tried: list[dict[str, Any]]
    upstream_order_id: int | None
    link: str | None
    quantity: int
    params: dict[str, Any]
    rate: str
    charge: str
    cost: str
    profit: str
    refunded: str
    currency: str
    status: str
    status_raw: str | None
    state: str
    remains: int | None
    start_count: int | None
    attempts: int
    last_error: str | None
    # The upstream's final status (Partial/Canceled) held back until its refund is known.
    held_status: str | None
    created_at: datetime
    # When the (last) send upstream began: the time to look for in the upstream panel.
    submitted_at: datetime | None
    placed_at: datetime | None
    completed_at: datetime | None
    last_checked_at: datetime | None
    # How many distinct anomalies the upstream's answers about this order showed.
    anomalies: int = 0


class AnomalyOut(msgspec.Struct):
    kind: str
    detail: str
    times: int
    first_seen_at: datetime
    last_seen_at: datetime


class UpstreamCallOut(msgspec.Struct):
    id: int
    action: str
    outcome: str
    http_status: int | None
    duration_ms: int
    error: str | None
    request_id: str | None
    created_at: datetime


class ChargeDriftOut(msgspec.Struct):
    """What the upstream billed for the order (its last reported ``charge``, in its currency, and
    converted) against the order's expected cost; ``drift`` = reported - expected."""

    upstream_charge: str | None
    expected_cost: str
    reported_cost: str | None
    drift: str | None


class OrderDetailOut(msgspec.Struct):
    order: OrderOut
    ledger: list[LedgerEntryOut]
    upstream_calls: list[UpstreamCallOut]
    anomalies: list[AnomalyOut]
    charge_drift: ChargeDriftOut | None = None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Literal["placed", "failed"]
    upstream_order_id: int | None = None


class SettleIn(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of ``remains`` (units not delivered) or ``refund`` (a decimal string)."""

    remains: int | None = None
    refund: str | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None


def order_out(order: Order, anomalies: int = 0) -> OrderOut:
    fields = domain.order_fields(order)
    for name in ("rate", "charge", "cost", "profit", "refunded"):
        value: Decimal = fields[name]
        fields[name] = money(value) or "0.00"
    return OrderOut(**fields, anomalies=anomalies)


def anomaly_out(anomaly: OrderAnomaly) -> AnomalyOut:
    return AnomalyOut(
        kind=anomaly.kind,
        detail=anomaly.detail,
        times=anomaly.times,
        first_seen_at=anomaly.first_seen_at,
        last_seen_at=anomaly.last_seen_at,
    )


async def orders_out(db: DbSession, orders: list[Order]) -> list[OrderOut]:
    counts = await domain.anomaly_counts(db, [o.id for o in orders])
    return [order_out(o, counts.get(o.id, 0)) for o in orders]


def drift_out(drift: domain.OrderChargeDrift) -> ChargeDriftOut:
    return ChargeDriftOut(
        upstream_charge=money(drift.upstream_charge),
        expected_cost=money(drift.expected) or "0.00",
        reported_cost=money(drift.reported),
        drift=money(drift.drift),
    )


def call_out(call: UpstreamCall) -> UpstreamCallOut:
    return UpstreamCallOut(
        id=call.id,
        action=call.action,
        outcome=call.outcome,
        http_status=call.http_status,
        duration_ms=call.duration_ms,
        error=call.error,
        request_id=call.request_id,
        created_at=call.created_at,
    )


class OrderController(Controller):
    path = "/orders"
    tags = ["orders"]

    @get("/", summary="Orders, newest first, filtered", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        customer_id: OptionalId = None,
        provider_id: OptionalId = None,
        service_id: OptionalId = None,
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        order_state: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before: OptionalId = None,
        held: Annotated[
            bool | None, QueryParameter(description="only orders whose final status waits for a refund decision")
        ] = None,
        anomalies: Annotated[bool | None, QueryParameter(description="only orders with (or without) anomalies")] = None,
    ) -> list[OrderOut]:
        flt = domain.OrderFilter(
            customer_id, status, order_state, provider_id, service_id, limit, before, held=held, anomalies=anomalies
        )
        return await orders_out(db, await domain.list_orders(db, flt))

    @get("/stuck", summary="Unfinished orders older than a threshold (seconds)", responses=ERRORS)
    async def stuck(
        self,
        db: DbSession,
        older_than: Annotated[int, QueryParameter(ge=0, le=365 * 86400)] = 3600,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[OrderOut]:
        return await orders_out(db, await domain.stuck_orders(db, older_than, limit))

    @get("/{order_id:int}", summary="One order with its ledger entries, upstream calls and anomalies", responses=ERRORS)
    async def show(self, order_id: Id, db: DbSession) -> OrderDetailOut:
        order = await domain.require_order(db, order_id)
        history = await domain.order_history(db, order_id)
        return OrderDetailOut(
            order_out(order, len(history.anomalies)),
            [entry_out(e) for e in history.ledger],
            [call_out(c) for c in history.calls],
            [anomaly_out(a) for a in history.anomalies],
            drift_out(await domain.order_charge_drift(db, order)),
        )

    @post(
        "/{order_id:int}/resolve",
        summary="Settle an order whose upstream outcome is unknown",
        status_code=200,
        responses=ERRORS,
    )
    async def resolve(
        self, request: Request[Any, Any, Any], order_id: Id, data: JSONBody[ResolveIn], db: DbSession
    ) -> OrderOut:
        order = await domain.resolve_unknown(db, order_id, data.outcome, data.upstream_order_id)
        await audit.record(
            db,
            actor(request),
            "order.resolve",
            "order",
            order_id,
            {"state": "unknown"},
            {"state": order.state, "upstream_order_id": order.upstream_order_id},
        )
        return order_out(order)

    @post(
        "/{order_id:int}/settle",
        summary="End a placed, unfinished order with the operator's refund (held final statuses, lost orders)",
        status_code=200,
        responses=ERRORS,
    )
    async def settle(
        self, request: Request[Any, Any, Any], order_id: Id, data: JSONBody[SettleIn], db: DbSession
    ) -> OrderOut:
        refund = None
        if data.refund is not None:
            try:
                refund = parse_amount(data.refund, field="refund")
            except MoneyError as exc:
                raise InvalidInput(str(exc), field="refund") from None
        before = await domain.require_order(db, order_id)
        snapshot = {"status": before.status, "held_status": before.held_status, "remains": before.remains}
        order = await domain.settle(db, order_id, data.remains, refund, data.note)
        await audit.record(
            db,
            actor(request),
            "order.settle",
            "order",
            order_id,
            snapshot,
            {"status": order.status, "refunded": str(order.refunded), "remains": order.remains, "note": data.note},
        )
        return order_out(order)

    @post(
        "/{order_id:int}/retry",
        summary="Dispatch a queued order at the next worker pass",
        status_code=200,
        responses=ERRORS,
    )
    async def retry(self, request: Request[Any, Any, Any], order_id: Id, db: DbSession) -> OrderOut:
        order = await domain.retry_now(db, order_id)
        await audit.record(db, actor(request), "order.retry", "order", order_id)
        return order_out(order)
