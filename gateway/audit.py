"""The admin audit log: who changed what, before and after, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import AuditLog

_SECRET_FIELDS = frozenset({"api_key", "api_key_hash", "token", "token_hash"})


def snapshot(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy of an entity's fields without secrets (Decimals as strings)."""
    if values is None:
        return None
    result: dict[str, Any] = {}
    for name, value in values.items():
        if name in _SECRET_FIELDS or name.startswith("_"):
            continue
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bytes):
            continue
        result[name] = value
    return result


class Actor(str):
    """Who made a change (a str: the token's name, ``admin``, or ``cli``) and with which scope."""

    scope: str | None = None

    def __new__(cls, name: str, scope: str | None = None) -> Actor:
        actor = super().__new__(cls, name)
        actor.scope = scope
        return actor


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry inside the caller's transaction (so it commits with the change)."""
    await session.execute(
        insert(AuditLog).values(
            actor=actor[:100],
            scope=actor.scope if isinstance(actor, Actor) else None,
            action=action[:60],
            entity=entity[:40],
            entity_id=None if entity_id is None else str(entity_id)[:64],
            before=snapshot(before),
            after=snapshot(after),
        )
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to list (None: any), newest first, ``limit`` of them, ids below ``before``."""

    entity: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    limit: int = 100
    before: int | None = None


async def entries(session: AsyncSession, flt: AuditFilter) -> list[AuditLog]:
    """The audit entries matching ``flt``, newest first."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(flt.limit)
    for column, value in (
        (AuditLog.entity, flt.entity),
        (AuditLog.entity_id, flt.entity_id),
        (AuditLog.actor, flt.actor),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.before is not None:
        query = query.where(AuditLog.id < flt.before)
    return list((await session.scalars(query)).all())
