"""The operator's edits to services, markup rules and customer rates (validated here, not in handlers)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.models import MARKUP_SCOPES, Customer, CustomerRate, MarkupRule, Provider, Service
from gateway.money import MoneyError, parse_decimal, parse_rate

MAX_PERCENT = Decimal("1000")
MAX_LIMIT = 10**12


def rate_input(value: object, field: str) -> Decimal:
    try:
        return parse_rate(value, field=field)
    except MoneyError as exc:
        raise InvalidInput(str(exc), field=field) from None


def percent_input(value: object, field: str, *, low: Decimal, high: Decimal) -> Decimal:
    try:
        percent = parse_decimal(value, field=field)
    except MoneyError as exc:
        raise InvalidInput(str(exc), field=field) from None
    if not low <= percent <= high or percent != round(percent, 4):
        raise InvalidInput(f"{field} must be between {low} and {high} with at most 4 decimals", field=field)
    return percent


async def require_service(session: AsyncSession, service_id: int) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound(f"service {service_id} not found")
    return service


@dataclass(frozen=True, slots=True)
class ServiceEdit:
    """The operator's edit of one service; ``clear`` names fields set back to the upstream's."""

    values: dict[str, Any]


def service_edit(service: Service, fields: dict[str, Any]) -> ServiceEdit:
    """Validate a PATCH of a service: only narrower limits, sane names, a non-negative fixed rate."""
    values: dict[str, Any] = {}
    if "name" in fields:
        name = fields["name"]
        if name is not None and not 1 <= len(name.strip()) <= 500:
            raise InvalidInput("name must be 1 to 500 characters", field="name")
        values["name_override"] = name.strip() if name is not None else None
    if "category" in fields:
        category = fields["category"]
        if category is not None and not 1 <= len(category.strip()) <= 200:
            raise InvalidInput("category must be 1 to 200 characters", field="category")
        values["category_override"] = category.strip() if category is not None else None
    if "enabled" in fields:
        if fields["enabled"] is None:
            raise InvalidInput("enabled must be true or false", field="enabled")
        values["enabled"] = fields["enabled"]
    low = fields.get("min", service.min_override)
    high = fields.get("max", service.max_override)
    for name, value in (("min", low), ("max", high)):
        if value is not None and not 0 <= value <= MAX_LIMIT:
            raise InvalidInput(f"{name} out of range", field=name)
    if "min" in fields:
        if low is not None and low < service.upstream_min:
            raise InvalidInput(f"min may only narrow the upstream minimum {service.upstream_min}", field="min")
        values["min_override"] = low
    if "max" in fields:
        if high is not None and high > service.upstream_max:
            raise InvalidInput(f"max may only narrow the upstream maximum {service.upstream_max}", field="max")
        values["max_override"] = high
    if low is not None and high is not None and high < low:
        raise InvalidInput("max must not be below min", field="max")
    if "rate" in fields:
        values["fixed_rate"] = None if fields["rate"] is None else rate_input(fields["rate"], "rate")
    if "desc" in fields:
        values["description_override"] = _description(fields["desc"])
    return ServiceEdit(values)


def _description(value: str | None) -> str | None:
    """The operator's description: up to 5,000 characters, line breaks and tabs the only control
    characters; empty or null: the upstream's again."""
    if value is None or not value.strip():
        return None
    if len(value) > 5000 or any(not ch.isprintable() and ch not in "\n\r\t" for ch in value):
        raise InvalidInput("desc must be at most 5000 printable characters (line breaks allowed)", field="desc")
    return value.strip()


async def apply_service_edit(session: AsyncSession, service: Service, edit: ServiceEdit) -> Service:
    for name, value in edit.values.items():
        setattr(service, name, value)
    service.updated_at = func.now()
    await session.flush()
    await session.refresh(service)
    return service


async def list_services(
    session: AsyncSession,
    provider_id: int | None,
    category: str | None,
    enabled: bool | None,
    limit: int = 10_000,
    before: int | None = None,
) -> list[Service]:
    """Services, newest first, filtered; ``before`` pages by id."""
    query = select(Service).order_by(Service.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Service.id < before)
    if provider_id is not None:
        query = query.where(Service.provider_id == provider_id)
    if category is not None:
        query = query.where(func.coalesce(Service.category_override, Service.upstream_category) == category)
    if enabled is not None:
        query = query.where(Service.enabled.is_(enabled))
    return list((await session.scalars(query)).all())


# --- markup rules -----------------------------------------------------------------------------


async def create_markup_rule(
    session: AsyncSession, scope: str, target: object, percent: object, fixed: object
) -> MarkupRule:
    if scope not in MARKUP_SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(MARKUP_SCOPES)}", field="scope")
    rule = MarkupRule(
        scope=scope,
        percent=percent_input(percent, "percent", low=Decimal(0), high=MAX_PERCENT),
        fixed=rate_input(fixed, "fixed"),
    )
    if scope == "global":
        if target is not None:
            raise InvalidInput("a global rule has no target", field="target")
    elif scope == "category":
        if not isinstance(target, str) or not 1 <= len(target.strip()) <= 200:
            raise InvalidInput("target must be a category name", field="target")
        rule.category = target.strip()
    else:
        target_id = _target_id(target)
        model = Provider if scope == "provider" else Service
        if await session.get(model, target_id) is None:
            raise InvalidInput(f"target {scope} {target_id} does not exist", field="target")
        if scope == "provider":
            rule.provider_id = target_id
        else:
            rule.service_id = target_id
    session.add(rule)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a {scope} rule for this target exists; delete it first", field="target") from None
    await session.refresh(rule)
    return rule


def _target_id(target: object) -> int:
    if isinstance(target, bool):
        raise InvalidInput("target must be an id", field="target")
    if isinstance(target, int):
        value = target
    elif isinstance(target, str) and target.strip().isdigit() and len(target.strip()) < 19:
        value = int(target.strip())
    else:
        raise InvalidInput("target must be an id", field="target")
    if not 0 < value < 2**62:
        raise InvalidInput("target must be an id", field="target")
    return value


async def list_markup_rules(session: AsyncSession) -> list[MarkupRule]:
    return list((await session.scalars(select(MarkupRule).order_by(MarkupRule.id))).all())


async def delete_markup_rule(session: AsyncSession, rule_id: int) -> MarkupRule:
    rule = await session.get(MarkupRule, rule_id)
    if rule is None:
        raise NotFound(f"markup rule {rule_id} not found")
    await session.delete(rule)
    await session.flush()
    return rule


# --- customer rates ---------------------------------------------------------------------------


async def set_customer_rate(session: AsyncSession, customer_id: int, service_id: int, rate: object) -> Decimal:
    value = rate_input(rate, "rate")
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} not found")
    await require_service(session, service_id)
    stmt = insert(CustomerRate).values(customer_id=customer_id, service_id=service_id, rate=value)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CustomerRate.customer_id, CustomerRate.service_id], set_={"rate": value}
        )
    )
    return value


async def delete_customer_rate(session: AsyncSession, customer_id: int, service_id: int) -> None:
    result = await session.execute(
        delete(CustomerRate)
        .where(CustomerRate.customer_id == customer_id, CustomerRate.service_id == service_id)
        .returning(CustomerRate.rate)
    )
    if result.first() is None:
        raise NotFound(f"customer {customer_id} has no own rate for service {service_id}")


async def list_customer_rates(session: AsyncSession, customer_id: int) -> list[CustomerRate]:
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} not found")
    return list(
        (
            await session.scalars(
                select(CustomerRate).where(CustomerRate.customer_id == customer_id).order_by(CustomerRate.service_id)
            )
        ).all()
    )
