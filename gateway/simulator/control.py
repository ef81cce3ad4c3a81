"""The control plane: steer the simulated panel from tests, benchmarks and the demo.

Everything lives under ``/control`` and needs no key (the simulator listens on loopback). Unknown
orders and refills are 404; bad input is 400.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from litestar import Router, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.simulator.catalog import generate_catalog, service_from_mapping, service_to_mapping
from gateway.simulator.engine import Order, OrderView
from gateway.simulator.errors import PanelError
from gateway.simulator.faults import FaultRule
from gateway.simulator.lifecycle import OrderStatus, RefillStatus
from gateway.simulator.money import format_fixed
from gateway.simulator.simulation import Simulation


class BalanceChange(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /control/balance``."""

    balance: Decimal


class BillingChange(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /control/billing``: charge new orders this much more than the catalog rate (%)."""

    overcharge_percent: Decimal


class OrderOverride(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /control/orders/{id}/status``."""

    status: OrderStatus
    remains: int | None = None
    start_count: int | None = None


class StatusFieldsOverride(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /control/orders/{id}/fields``: raw values written over ``status`` answers, names dropped."""

    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    omit: list[str] = msgspec.field(default_factory=list)


class RefillOverride(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /control/refills/{id}/status``."""

    status: RefillStatus


class ClockChange(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /control/clock``: jump ahead by ``advance`` seconds and/or change ``speed``."""

    advance: float = 0.0
    speed: float | None = None


class CatalogChange(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /control/catalog``: explicit ``services`` (``services`` shape) or ``generate`` N."""

    services: list[dict[str, Any]] | None = None
    generate: int | None = None
    seed: int = 0
    first_id: int = 1


def order_json(view: OrderView, order: Order, simulation: Simulation) -> dict[str, Any]:
    """Everything about one order, for tests and operators."""
    plan, request = order.plan, order.request
    return {
        "order": view.order_id,
        "service": view.service_id,
        "status": view.status.value,
        "charge": format_fixed(view.charge),
        "price": format_fixed(request.charge),
        "refunded": format_fixed(order.refunded),
        "start_count": view.start_count,
        "remains": view.remains,
        "link": view.link,
        "quantity": request.quantity,
        "units": request.units,
        "runs": request.runs,
        "interval": request.interval_minutes,
        "params": order.params,
        "created_at": view.created_at,
        "forced": order.forced is not None,
        "sloppy_status": {"fields": dict(view.status_fields), "omit": list(view.status_omit)}
        if view.status_fields or view.status_omit
        else None,
        "plan": {
            "outcome": plan.outcome.value,
            "start_count": plan.start_count,
            "delivered": plan.delivered,
            "processing_at": plan.processing_at,
            "started_at": plan.started_at,
            "finished_at": plan.finished_at,
        },
        "refills": [
            {"refill": r.refill_id, "status": r.status_at(simulation.panel.clock.now()).value}
            for r in simulation.panel.refills_of(view.order_id)
        ],
    }


def _order_or_404(simulation: Simulation, order_id: int) -> dict[str, Any]:
    try:
        return order_json(simulation.panel.order(order_id), simulation.panel.get_order(order_id), simulation)
    except PanelError as missing:
        raise NotFoundException(missing.message) from None


@get("/state")
async def state(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """A summary: dialect, balance, clock, sizes."""
    panel = simulation.panel
    return {
        "dialect": simulation.config.dialect.value,
        "currency": simulation.config.currency,
        "balance": format_fixed(panel.balance()),
        "clock": panel.clock.now(),
        "speed": panel.clock.speed,
        "services": len(panel.services()),
        "orders": len(panel.orders()),
        "requests": simulation.requests.count(),
        "faults": len(simulation.faults.armed()),
    }


@post("/reset", status_code=200)
async def reset(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Back to the configured start (orders, balance, catalog, clock, faults, request log)."""
    simulation.reset()
    return {"reset": True}


@get("/balance")
async def get_balance(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """The reseller balance at full precision."""
    return {"balance": format_fixed(simulation.panel.balance())}


@post("/balance", status_code=200)
async def set_balance(data: JSONBody[BalanceChange], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Set the reseller balance."""
    return {"balance": format_fixed(simulation.panel.set_balance(data.balance))}


@get("/billing")
async def get_billing(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """How the panel bills new orders."""
    return {"overcharge_percent": format_fixed(simulation.panel.overcharge_percent)}


@put("/billing", status_code=200)
async def set_billing(data: JSONBody[BillingChange], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Bill new orders more than the catalog says (the status answer's ``charge`` shows it)."""
    try:
        simulation.panel.set_overcharge(data.overcharge_percent)
    except ValueError as bad:
        raise ValidationException(str(bad)) from None
    return {"overcharge_percent": format_fixed(simulation.panel.overcharge_percent)}


@get("/catalog")
async def get_catalog(simulation: NamedDependency[Simulation]) -> list[dict[str, Any]]:
    """The catalog on sale, in the documented ``services`` shape plus ``desc``."""
    return [service_to_mapping(s) for s in simulation.panel.services()]


@put("/catalog", status_code=200)
async def replace_catalog(data: JSONBody[CatalogChange], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Replace the catalog: re-priced, added and removed services show in the next ``services``."""
    try:
        if data.generate is not None:
            services = generate_catalog(data.generate, seed=data.seed, first_id=data.first_id)
        elif data.services is not None:
            services = tuple(service_from_mapping(raw) for raw in data.services)
        else:
            raise ValueError("give services or generate")
        return {"services": simulation.panel.replace_catalog(services)}
    except ValueError as bad:
        raise ValidationException(str(bad)) from None


@get("/orders")
async def list_orders(simulation: NamedDependency[Simulation]) -> list[dict[str, Any]]:
    """Every order (status view), oldest first."""
    return [
        {"order": v.order_id, "service": v.service_id, "status": v.status.value, "remains": v.remains}
        for v in simulation.panel.orders()
    ]


@get("/orders/{order_id:int}")
async def get_order(order_id: FromPath[int], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """One order in full: params as sent, plan, refunds, refills."""
    return _order_or_404(simulation, order_id)


@post("/orders/{order_id:int}/status", status_code=200)
async def force_order(
    order_id: FromPath[int], data: JSONBody[OrderOverride], simulation: NamedDependency[Simulation]
) -> dict[str, Any]:
    """Pin an order's status, e.g. Partial with remains N; the balance moves like the panel's would."""
    try:
        simulation.panel.force_order(order_id, data.status, remains=data.remains, start_count=data.start_count)
    except PanelError as missing:
        raise NotFoundException(missing.message) from None
    except ValueError as bad:
        raise ValidationException(str(bad)) from None
    return _order_or_404(simulation, order_id)


@post("/orders/{order_id:int}/fields", status_code=200)
async def sloppy_status(
    order_id: FromPath[int], data: JSONBody[StatusFieldsOverride], simulation: NamedDependency[Simulation]
) -> dict[str, Any]:
    """Answer ``status`` for the order with ``fields`` written over and ``omit`` removed, until cleared."""
    try:
        simulation.panel.sloppy_status(order_id, data.fields, omit=data.omit)
    except PanelError as missing:
        raise NotFoundException(missing.message) from None
    return _order_or_404(simulation, order_id)


@delete("/orders/{order_id:int}/fields", status_code=200)
async def clear_sloppy_status(order_id: FromPath[int], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Answer ``status`` for the order normally again."""
    try:
        simulation.panel.clear_sloppy_status(order_id)
    except PanelError as missing:
        raise NotFoundException(missing.message) from None
    return _order_or_404(simulation, order_id)


@get("/refills/{refill_id:int}")
async def get_refill(refill_id: FromPath[int], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """One refill's status."""
    try:
        return {"refill": refill_id, "status": simulation.panel.refill_status(refill_id).value}
    except PanelError as missing:
        raise NotFoundException(missing.message) from None


@post("/refills/{refill_id:int}/status", status_code=200)
async def force_refill(
    refill_id: FromPath[int], data: JSONBody[RefillOverride], simulation: NamedDependency[Simulation]
) -> dict[str, Any]:
    """Pin a refill's status."""
    try:
        return {"refill": refill_id, "status": simulation.panel.force_refill(refill_id, data.status).value}
    except PanelError as missing:
        raise NotFoundException(missing.message) from None


@get("/clock")
async def get_clock(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Simulated time and pace."""
    return {"now": simulation.panel.clock.now(), "speed": simulation.panel.clock.speed}


@post("/clock", status_code=200)
async def change_clock(data: JSONBody[ClockChange], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Advance simulated time and/or change its pace."""
    try:
        if data.speed is not None:
            simulation.panel.clock.set_speed(data.speed)
        simulation.panel.advance(data.advance)
    except ValueError as bad:
        raise ValidationException(str(bad)) from None
    return {"now": simulation.panel.clock.now(), "speed": simulation.panel.clock.speed}


@get("/faults")
async def list_faults(simulation: NamedDependency[Simulation]) -> list[dict[str, Any]]:
    """Armed fault rules with ids and remaining firings."""
    return simulation.faults.armed()


@post("/faults", status_code=200)
async def add_faults(
    data: JSONBody[FaultRule | list[FaultRule]], simulation: NamedDependency[Simulation]
) -> dict[str, Any]:
    """Arm one rule or a list of rules, after those already armed."""
    rules = data if isinstance(data, list) else [data]
    return {"ids": [simulation.faults.add(rule) for rule in rules]}


@put("/faults", status_code=200)
async def replace_faults(data: JSONBody[list[FaultRule]], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Disarm everything, then arm ``data``."""
    return {"ids": simulation.faults.replace(data)}


@delete("/faults", status_code=200)
async def clear_faults(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Disarm every rule."""
    simulation.faults.clear()
    return {"cleared": True}


@delete("/faults/{rule_id:int}", status_code=200)
async def remove_fault(rule_id: FromPath[int], simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Disarm one rule."""
    if not simulation.faults.remove(rule_id):
        raise NotFoundException(f"no fault rule {rule_id}")
    return {"removed": rule_id}


@get("/requests")
async def list_requests(
    simulation: NamedDependency[Simulation], action: FromQuery[str | None] = None, since: FromQuery[int] = 0
) -> dict[str, Any]:
    """Recorded requests (optionally one ``action``, after sequence ``since``) and counts per action."""
    log = simulation.requests
    return {
        "total": log.count(),
        "counts": log.counts(),
        "requests": [r.to_json() for r in log.records(action, since=since)],
    }


@delete("/requests", status_code=200)
async def clear_requests(simulation: NamedDependency[Simulation]) -> dict[str, Any]:
    """Forget recorded requests."""
    simulation.requests.clear()
    return {"cleared": True}


def control_router() -> Router:
    """All control endpoints under ``/control``."""
    return Router(
        path="/control",
        route_handlers=[
            state, reset, get_balance, set_balance, get_billing, set_billing, get_catalog, replace_catalog, list_orders, get_order,
            force_order, sloppy_status, clear_sloppy_status, get_refill, force_refill, get_clock, change_clock,
            list_faults, add_faults, replace_faults, clear_faults, remove_fault, list_requests, clear_requests,
        ],
    )  # fmt: skip
