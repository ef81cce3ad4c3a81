"""Admin: alerts — the conditions the gateway opened (and closes) by itself, and acknowledging one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import PathParameter, QueryParameter

from gateway import alerts as domain
from gateway import audit
from gateway.admin.common import ERRORS, actor
from gateway.admin.deps import DbSession
from gateway.errors import InvalidInput, NotFound
from gateway.models import Alert

Id = Annotated[int, PathParameter(gt=0, le=2**62)]


class AlertOut(msgspec.Struct):
    id: int
    kind: str
    subject: str
    details: dict[str, Any]
    open: bool
    opened_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(
        id=alert.id,
        kind=alert.kind,
        subject=alert.subject,
        details=alert.details,
        open=alert.closed_at is None,
        opened_at=alert.opened_at,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        closed_at=alert.closed_at,
    )


class AlertController(Controller):
    path = "/alerts"
    tags = ["alerts"]

    @get("/", summary="Alerts, newest first: open or closed, of one kind", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        is_open: Annotated[
            bool | None, QueryParameter(name="open", description="true: open alerts only; false: closed ones only")
        ] = None,
        kind: Annotated[str | None, QueryParameter(max_length=40, description="one of the alert kinds")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before: Annotated[int | None, QueryParameter(gt=0, le=2**62)] = None,
    ) -> list[AlertOut]:
        if kind is not None and kind not in domain.ALERT_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(domain.ALERT_KINDS)}", field="kind")
        flt = domain.AlertFilter(open=is_open, kind=kind, limit=limit, before=before)
        return [alert_out(a) for a in await domain.list_alerts(db, flt)]

    @post(
        "/{alert_id:int}/ack",
        summary="Acknowledge an alert (audited); it stays open until its condition ends",
        status_code=200,
        responses=ERRORS,
    )
    async def acknowledge(self, request: Request[Any, Any, Any], alert_id: Id, db: DbSession) -> AlertOut:
        who = actor(request)
        alert = await domain.get_alert(db, alert_id)
        if alert is None:
            raise NotFound("alert not found")
        # The first acknowledgement stays; a second one changes nothing and writes no audit entry.
        if await domain.acknowledge(db, alert_id, who, datetime.now(UTC)):
            await audit.record(db, who, "alert.ack", "alert", alert_id, None, {"acknowledged_by": who})
            await db.refresh(alert)
        return alert_out(alert)
