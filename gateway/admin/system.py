"""``GET /admin/system``: what this gateway is running, for the operator's scripts."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from gateway import __version__
from gateway.admin.common import ERRORS, actor
from gateway.admin.deps import DbSession, SettingsDep
from gateway.db import head_revision, revision_of


@get("/system", summary="Version, schema revision, the non-secret settings, and the caller's scope", responses=ERRORS)
async def system_info(request: Request[Any, Any, Any], db: DbSession, settings: SettingsDep) -> dict[str, object]:
    revision = await revision_of(await db.connection())
    caller = actor(request)
    return {
        # Who is asking, and what the token may do (the console shows only those actions).
        "actor": str(caller),
        "scope": caller.scope,
        "version": __version__,
        "schema_revision": revision,
        "schema_head": head_revision(),
        "currency": settings.currency,
        "v2_dialect": settings.v2_dialect,
        # The pricing floor (a decimal string): the console's markup preview applies it too.
        "min_margin_percent": format(settings.min_margin_percent.normalize(), "f"),
        # What a price rise under that floor does, and when billing drift alerts (README: Margins and alerts).
        "margin_policy": settings.margin_policy,
        "drift_alert_percent": format(settings.drift_alert_percent.normalize(), "f"),
    }
