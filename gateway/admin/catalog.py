"""Admin: services (cost and resale rate side by side), markup rules, customers' own rates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from gateway import audit
from gateway.admin.common import ERRORS, actor, money
from gateway.admin.deps import DbSession, SettingsDep
from gateway.catalog import routes as routing
from gateway.catalog import services as domain
from gateway.catalog.pricebook import PricedService, price_services
from gateway.catalog.queries import average_times
from gateway.errors import InvalidInput
from gateway.models import MarkupRule, Service

Id = Annotated[int, PathParameter(gt=0, le=2**62)]


class ServiceOut(msgspec.Struct):
    id: int
    provider_id: int
    upstream_service: int
    name: str
    type: str
    category: str
    cost_rate: str
    rate: str
    rate_source: str
    below_cost: bool
    margin_protected: bool
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool
    enabled: bool
    upstream_present: bool
    for_sale: bool
    fixed_rate: str | None
    upstream_name: str
    upstream_category: str
    upstream_rate: str
    upstream_type: str
    # Off sale by the margin guard since then (an upstream price rise took a customer price under the
    # margin floor; GATEWAY_MARGIN_POLICY), until a sync finds the price back above it.
    margin_hold_since: datetime | None = None
    # What customers read in ``services`` (the operator's text, else the upstream's), the upstream's
    # own, and the average delivery time (minutes per 1,000 of the last 10 completed orders).
    desc: str | None = None
    upstream_desc: str | None = None
    average_time: int | None = None


class ServicePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType | None = msgspec.UNSET
    category: str | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    min: int | msgspec.UnsetType | None = msgspec.UNSET
    max: int | msgspec.UnsetType | None = msgspec.UNSET
    rate: str | int | msgspec.UnsetType | None = msgspec.UNSET
    # The description customers read in ``services`` (null: the upstream's).
    desc: str | msgspec.UnsetType | None = msgspec.UNSET


class RouteIn(msgspec.Struct, forbid_unknown_fields=True):
    provider_id: int
    upstream_service_id: int | str
    priority: int


class RouteOut(msgspec.Struct):
    """One route of a service: priority 0 is its own provider service."""

    priority: int
    provider_id: int
    upstream_service_id: str
    service_id: int
    name: str
    cost_rate: str
    min: int
    max: int
    dripfeed: bool
    usable: bool
    problem: str | None


class MarkupRuleIn(msgspec.Struct, forbid_unknown_fields=True):
    scope: str
    percent: str | int
    target: int | str | None = None
    fixed: str | int = "0"


class MarkupRuleOut(msgspec.Struct):
    id: int
    scope: str
    target: int | str | None
    percent: str
    fixed: str
    created_at: datetime


class CustomerRateIn(msgspec.Struct, forbid_unknown_fields=True):
    rate: str | int


class CustomerRateOut(msgspec.Struct):
    customer_id: int
    service_id: int
    rate: str


def service_out(service: Service, priced: PricedService, average_time: int | None = None) -> ServiceOut:
    quote = priced.quote
    return ServiceOut(
        id=service.id,
        provider_id=service.provider_id,
        upstream_service=service.upstream_service_id,
        name=priced.name,
        type=service.type,
        category=priced.category,
        cost_rate=money(quote.cost_rate) or "0.00",
        rate=money(quote.rate) or "0.00",
        rate_source=quote.source,
        below_cost=quote.below_cost,
        margin_protected=quote.margin_protected,
        min=priced.min,
        max=priced.max,
        refill=service.refill,
        cancel=service.cancel,
        dripfeed=service.dripfeed,
        enabled=service.enabled,
        upstream_present=service.upstream_present,
        for_sale=priced.for_sale,
        fixed_rate=money(service.fixed_rate),
        upstream_name=service.upstream_name,
        upstream_category=service.upstream_category,
        upstream_rate=money(service.upstream_rate) or "0.00",
        upstream_type=service.upstream_type,
        margin_hold_since=service.margin_hold_since,
        desc=priced.desc,
        upstream_desc=service.description,
        average_time=average_time,
    )


def rule_out(rule: MarkupRule) -> MarkupRuleOut:
    target: int | str | None = rule.provider_id or rule.service_id or rule.category
    return MarkupRuleOut(
        id=rule.id,
        scope=rule.scope,
        target=target,
        percent=format(rule.percent.normalize(), "f"),
        fixed=money(rule.fixed) or "0.00",
        created_at=rule.created_at,
    )


def _service_fields(service: Service) -> dict[str, Any]:
    return {
        "enabled": service.enabled,
        "name_override": service.name_override,
        "category_override": service.category_override,
        "min_override": service.min_override,
        "max_override": service.max_override,
        "fixed_rate": service.fixed_rate,
    }


class ServiceController(Controller):
    path = "/services"
    tags = ["catalog"]

    @get("/", summary="Services with cost and default resale rate side by side", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        settings: SettingsDep,
        provider_id: Annotated[int | None, QueryParameter(gt=0, le=2**62)] = None,
        category: Annotated[str | None, QueryParameter(max_length=200)] = None,
        enabled: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 10_000,
        before: Annotated[int | None, QueryParameter(gt=0, le=2**62)] = None,
    ) -> list[ServiceOut]:
        services = await domain.list_services(db, provider_id, category, enabled, limit, before)
        priced = {p.id: p for p in await price_services(db, [s.id for s in services], settings.min_margin_percent)}
        times = await average_times(db)
        return [service_out(s, priced[s.id], times.get(s.id)) for s in services]

    @get("/{service_id:int}", summary="One service", responses=ERRORS)
    async def show(self, service_id: Id, db: DbSession, settings: SettingsDep) -> ServiceOut:
        service = await domain.require_service(db, service_id)
        (priced,) = await price_services(db, [service.id], settings.min_margin_percent)
        return service_out(service, priced, (await average_times(db)).get(service.id))

    @patch("/{service_id:int}", summary="Local edits that survive every sync", responses=ERRORS)
    async def update(
        self,
        request: Request[Any, Any, Any],
        service_id: Id,
        data: JSONBody[ServicePatch],
        db: DbSession,
        settings: SettingsDep,
    ) -> ServiceOut:
        service = await domain.require_service(db, service_id)
        fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        edit = domain.service_edit(service, fields)
        before = _service_fields(service)
        service = await domain.apply_service_edit(db, service, edit)
        await audit.record(
            db, actor(request), "service.update", "service", service.id, before, _service_fields(service)
        )
        (priced,) = await price_services(db, [service.id], settings.min_margin_percent)
        return service_out(service, priced)

    @get("/{service_id:int}/routes", summary="The service's routes, own first (failover order)", responses=ERRORS)
    async def routes(self, service_id: Id, db: DbSession) -> list[RouteOut]:
        service = await domain.require_service(db, service_id)
        return routes_out(await routing.routes_of(db, service))

    @put(
        "/{service_id:int}/routes",
        summary="Replace the service's failover routes (same type, overlapping limits)",
        responses=ERRORS,
    )
    async def set_routes(
        self, request: Request[Any, Any, Any], service_id: Id, data: JSONBody[list[RouteIn]], db: DbSession
    ) -> list[RouteOut]:
        service = await domain.require_service(db, service_id)
        before = routes_out(await routing.routes_of(db, service))
        wanted = [
            routing.RouteIn(
                provider_id=_positive(route.provider_id, f"routes[{index}].provider_id"),
                upstream_service_id=routing.upstream_id_input(
                    route.upstream_service_id, f"routes[{index}].upstream_service_id"
                ),
                priority=route.priority,
            )
            for index, route in enumerate(data)
        ]
        after = routes_out(await routing.set_routes(db, service, wanted))
        await audit.record(
            db,
            actor(request),
            "service.routes",
            "service",
            service.id,
            {"routes": [msgspec.structs.asdict(r) for r in before[1:]]},
            {"routes": [msgspec.structs.asdict(r) for r in after[1:]]},
        )
        return after


def _positive(value: int, field: str) -> int:
    if not 0 < value < 2**62:
        raise InvalidInput(f"{field} must be a positive id", field=field)
    return value


def routes_out(routes: routing.ServiceRoutes) -> list[RouteOut]:
    return [
        RouteOut(
            priority=check.route.priority,
            provider_id=check.route.provider_id,
            upstream_service_id=str(check.route.upstream_service_id),
            service_id=check.route.service_id,
            name=routes.names.get(check.route.service_id, ""),
            cost_rate=money(check.route.cost_rate) or "0.00",
            min=check.route.min,
            max=check.route.max,
            dripfeed=check.route.dripfeed,
            usable=check.problem is None,
            problem=check.problem,
        )
        for check in routes.checks
    ]


class MarkupRuleController(Controller):
    path = "/markup-rules"
    tags = ["catalog"]

    @post("/", summary="Add a markup rule (the most specific scope wins)", status_code=201, responses=ERRORS)
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[MarkupRuleIn], db: DbSession
    ) -> MarkupRuleOut:
        rule = await domain.create_markup_rule(db, data.scope, data.target, data.percent, data.fixed)
        out = rule_out(rule)
        await audit.record(
            db, actor(request), "markup_rule.create", "markup_rule", rule.id, None, msgspec.structs.asdict(out)
        )
        return out

    @get("/", summary="Every markup rule", responses=ERRORS)
    async def list_all(self, db: DbSession) -> list[MarkupRuleOut]:
        return [rule_out(r) for r in await domain.list_markup_rules(db)]

    @delete("/{rule_id:int}", summary="Remove a markup rule", status_code=204, responses=ERRORS)
    async def remove(self, request: Request[Any, Any, Any], rule_id: Id, db: DbSession) -> None:
        rule = await domain.delete_markup_rule(db, rule_id)
        await audit.record(
            db, actor(request), "markup_rule.delete", "markup_rule", rule_id, msgspec.structs.asdict(rule_out(rule))
        )


class CustomerRateController(Controller):
    path = "/customers/{customer_id:int}/rates"
    tags = ["customers"]

    @get("/", summary="A customer's own rates", responses=ERRORS)
    async def list_all(self, customer_id: Id, db: DbSession) -> list[CustomerRateOut]:
        rates = await domain.list_customer_rates(db, customer_id)
        return [CustomerRateOut(r.customer_id, r.service_id, money(r.rate) or "0.00") for r in rates]

    @put("/{service_id:int}", summary="Set a customer's own rate for one service", responses=ERRORS)
    async def put_rate(
        self,
        request: Request[Any, Any, Any],
        customer_id: Id,
        service_id: Id,
        data: JSONBody[CustomerRateIn],
        db: DbSession,
    ) -> CustomerRateOut:
        rate = await domain.set_customer_rate(db, customer_id, service_id, data.rate)
        await audit.record(
            db,
            actor(request),
            "customer_rate.set",
            "customer",
            customer_id,
            None,
            {"service_id": service_id, "rate": rate},
        )
        return CustomerRateOut(customer_id, service_id, money(rate) or "0.00")

    @delete("/{service_id:int}", summary="Remove a customer's own rate", status_code=204, responses=ERRORS)
    async def remove(self, request: Request[Any, Any, Any], customer_id: Id, service_id: Id, db: DbSession) -> None:
        await domain.delete_customer_rate(db, customer_id, service_id)
        await audit.record(
            db, actor(request), "customer_rate.delete", "customer", customer_id, {"service_id": service_id}
        )
