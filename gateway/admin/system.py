"""``GET /admin/system``: what this gateway is running, for the operator's scripts."""

from __future__ import annotations

from litestar import get

from gateway import __version__
from gateway.admin.common import ERRORS
from gateway.db import current_revision, head_revision
from gateway.deps import RuntimeDep


@get("/system", summary="Version, schema revision and the non-secret settings", responses=ERRORS)
async def system_info(runtime: RuntimeDep) -> dict[str, object]:
    revision = await current_revision(runtime.engine)
    return {
        "version": __version__,
        "schema_revision": revision,
        "schema_head": head_revision(),
        "currency": runtime.settings.currency,
        "v2_dialect": runtime.settings.v2_dialect,
    }
