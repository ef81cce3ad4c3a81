"""Admin: refills — list and filter, one refill with its upstream calls, resolve an unknown one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from gateway import audit
from gateway.admin.common import ERRORS, actor
from gateway.admin.deps import DbSession
from gateway.admin.orders import UpstreamCallOut, call_out
from gateway.models import Refill
from gateway.orders import refill_operator as domain

Id = Annotated[int, PathParameter(gt=0, le=2**62)]
OptionalId = Annotated[int | None, QueryParameter(gt=0, le=2**62)]


class RefillOut(msgspec.Struct):
    id: int
    order_id: int
    customer_id: int
    provider_id: int
    upstream_refill_id: int | None
    status: str
    status_raw: str | None
    state: str
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None


class RefillDetailOut(msgspec.Struct):
    refill: RefillOut
    upstream_calls: list[UpstreamCallOut]


class RefillResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Literal["placed", "failed"]
    upstream_refill_id: int | None = None


def refill_out(refill: Refill) -> RefillOut:
    return RefillOut(**domain.refill_fields(refill))


class RefillController(Controller):
    path = "/refills"
    tags = ["refills"]

    @get("/", summary="Refills, newest first, filtered", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        # Checked against the states by the domain, which names the field ``state`` when it is not one.
        refill_state: Annotated[str | None, QueryParameter(name="state")] = None,
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        customer_id: OptionalId = None,
        order_id: OptionalId = None,
        provider_id: OptionalId = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before: OptionalId = None,
    ) -> list[RefillOut]:
        flt = domain.RefillFilter(refill_state, status, customer_id, order_id, provider_id, limit, before)
        return [refill_out(r) for r in await domain.list_refills(db, flt)]

    @get("/{refill_id:int}", summary="One refill with its upstream calls", responses=ERRORS)
    async def show(self, refill_id: Id, db: DbSession) -> RefillDetailOut:
        refill = await domain.require_refill(db, refill_id)
        calls = await domain.refill_calls(db, refill_id)
        return RefillDetailOut(refill_out(refill), [call_out(c) for c in calls])

    @post(
        "/{refill_id:int}/resolve",
        summary="Settle a refill whose upstream outcome is unknown",
        status_code=200,
        responses=ERRORS,
    )
    async def resolve(
        self, request: Request[Any, Any, Any], refill_id: Id, data: JSONBody[RefillResolveIn], db: DbSession
    ) -> RefillOut:
        refill = await domain.resolve_unknown_refill(db, refill_id, data.outcome, data.upstream_refill_id)
        await audit.record(
            db,
            actor(request),
            "refill.resolve",
            "refill",
            refill_id,
            {"state": "unknown"},
            {"state": refill.state, "status": refill.status, "upstream_refill_id": refill.upstream_refill_id},
        )
        return refill_out(refill)
