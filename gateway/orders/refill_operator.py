"""What the operator does with refills: list and inspect them, settle the unknown ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.models import REFILL_STATES, REFILL_STATUSES, Refill, UpstreamCall
from gateway.orders import refills

RESOLVED_FAILED = "resolved as failed by the operator"
MAX_UPSTREAM_ID = 2**63 - 1  # a BIGINT column


@dataclass(frozen=True, slots=True)
class RefillFilter:
    state: str | None = None
    status: str | None = None
    customer_id: int | None = None
    order_id: int | None = None
    provider_id: int | None = None
    limit: int = 100
    before: int | None = None


async def list_refills(session: AsyncSession, flt: RefillFilter) -> list[Refill]:
    """Refills matching the filter, newest first; ``before`` pages by id."""
    if flt.state is not None and flt.state not in REFILL_STATES:
        raise InvalidInput(f"state must be one of {', '.join(REFILL_STATES)}", field="state")
    if flt.status is not None and flt.status not in REFILL_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(REFILL_STATUSES)}", field="status")
    query = select(Refill).order_by(Refill.id.desc()).limit(flt.limit)
    for column, value in (
        (Refill.state, flt.state),
        (Refill.status, flt.status),
        (Refill.customer_id, flt.customer_id),
        (Refill.order_id, flt.order_id),
        (Refill.provider_id, flt.provider_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.before is not None:
        query = query.where(Refill.id < flt.before)
    return list((await session.scalars(query)).all())


async def require_refill(session: AsyncSession, refill_id: int) -> Refill:
    """The refill, or :class:`NotFound`."""
    refill = await session.get(Refill, refill_id)
    if refill is None:
        raise NotFound(f"refill {refill_id} not found")
    return refill


async def refill_calls(session: AsyncSession, refill_id: int) -> list[UpstreamCall]:
    """The upstream calls made about this refill alone, oldest first."""
    calls = await session.scalars(
        select(UpstreamCall).where(UpstreamCall.refill_id == refill_id).order_by(UpstreamCall.id)
    )
    return list(calls.all())


async def resolve_unknown_refill(
    session: AsyncSession, refill_id: int, outcome: str, upstream_refill_id: int | None
) -> Refill:
    """Settle a refill whose upstream outcome is unknown: ``placed`` (with the upstream's refill id;
    the refill sync follows it from its next pass) or ``failed`` (the customer sees Rejected)."""
    if outcome == "placed":
        if upstream_refill_id is None:
            raise InvalidInput("upstream_refill_id is required to resolve as placed", field="upstream_refill_id")
        if not 0 < upstream_refill_id <= MAX_UPSTREAM_ID:
            raise InvalidInput("upstream_refill_id must be a positive id", field="upstream_refill_id")
    elif outcome == "failed":
        if upstream_refill_id is not None:
            raise InvalidInput("upstream_refill_id only goes with outcome placed", field="upstream_refill_id")
    else:
        raise InvalidInput("outcome must be placed or failed", field="outcome")
    refill = await require_refill(session, refill_id)
    if refill.state != "unknown":
        raise Conflict(f"refill {refill_id} is {refill.state}, not unknown", field="outcome")
    if upstream_refill_id is not None:
        settled = await refills.mark_unknown_refill_placed(session, refill_id, upstream_refill_id)
    else:
        settled = await refills.mark_unknown_refill_failed(session, refill_id, RESOLVED_FAILED)
    if not settled:
        raise Conflict(f"refill {refill_id} changed meanwhile", field="outcome")
    await session.refresh(refill)
    return refill


def refill_fields(refill: Refill) -> dict[str, Any]:
    """What the operator sees of a refill."""
    return {
        "id": refill.id,
        "order_id": refill.order_id,
        "customer_id": refill.customer_id,
        "provider_id": refill.provider_id,
        "upstream_refill_id": refill.upstream_refill_id,
        "status": refill.status,
        "status_raw": refill.status_raw,
        "state": refill.state,
        "last_error": refill.last_error,
        "created_at": refill.created_at,
        "updated_at": refill.updated_at,
        "last_checked_at": refill.last_checked_at,
    }
