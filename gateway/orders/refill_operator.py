"""What the operator does with refills: list and inspect them, settle the unknown ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.lifecycle import RefillState, RefillStatus
from gateway.models import Refill, UpstreamCall
from gateway.orders.store import OrderStore, RefillFilter

__all__ = ["RefillFilter", "list_refills", "refill_calls", "refill_fields", "require_refill", "resolve_unknown_refill"]

RESOLVED_FAILED = "resolved as failed by the operator"
MAX_UPSTREAM_ID = 2**63 - 1  # a BIGINT column


async def list_refills(session: AsyncSession, flt: RefillFilter) -> list[Refill]:
    """Refills matching the filter, newest first; ``before`` pages by id."""
    if flt.state is not None and flt.state not in set(RefillState):
        raise InvalidInput(f"state must be one of {', '.join(RefillState)}", field="state")
    if flt.status is not None and flt.status not in set(RefillStatus):
        raise InvalidInput(f"status must be one of {', '.join(RefillStatus)}", field="status")
    return await OrderStore.bound(session).list_refills(flt)


async def require_refill(session: AsyncSession, refill_id: int) -> Refill:
    """The refill, or :class:`NotFound`."""
    refill = await OrderStore.bound(session).get_refill(refill_id)
    if refill is None:
        raise NotFound(f"refill {refill_id} not found")
    return refill


async def refill_calls(session: AsyncSession, refill_id: int) -> list[UpstreamCall]:
    """The upstream calls made about this refill alone, by when they started."""
    return await OrderStore.bound(session).refill_calls(refill_id)


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
    tx = OrderStore.bound(session)
    refill = await require_refill(session, refill_id)
    if refill.state != RefillState.UNKNOWN:
        raise Conflict(f"refill {refill_id} is {refill.state}, not unknown", field="outcome")
    if upstream_refill_id is not None:
        settled = await tx.resolve_refill_placed(refill_id, upstream_refill_id)
    else:
        settled = await tx.refill_ended(
            refill_id, RefillState.FAILED, RESOLVED_FAILED, rejected=True, only=[RefillState.UNKNOWN]
        )
    if not settled:
        raise Conflict(f"refill {refill_id} changed meanwhile", field="outcome")
    await tx.refresh(refill)
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
