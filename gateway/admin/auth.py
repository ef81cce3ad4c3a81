"""The admin guard: ``Authorization: Bearer <token>``.

The operator's token is ``GATEWAY_ADMIN_TOKEN`` (compared in constant time); extra named tokens
can be issued through ``/admin/tokens`` and are stored hashed and revocable. Without
``GATEWAY_ADMIN_TOKEN`` the admin API is off: every route refuses, named tokens included.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.access import active_token_name
from gateway.admin.deps import AdminAccess
from gateway.errors import Unauthorized

ADMIN_DISABLED = "admin API disabled: set GATEWAY_ADMIN_TOKEN"
BAD_TOKEN = "missing or invalid admin token"  # noqa: S105 - a message, not a secret
MAX_TOKEN_LENGTH = 500


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Let the request through only with a valid admin token; record whose it was."""
    access: AdminAccess = connection.app.state.admin
    configured = access.token
    if configured is None or not configured.get_secret_value():
        raise Unauthorized(ADMIN_DISABLED)
    given = bearer_token(connection.headers.get("authorization"))
    if given is None or len(given) > MAX_TOKEN_LENGTH:
        raise Unauthorized(BAD_TOKEN)
    if hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        actor = "admin"
    else:
        async with access.engine.connect() as conn:
            name = await active_token_name(conn, given)
        if name is None:
            raise Unauthorized(BAD_TOKEN)
        actor = f"token:{name}"
    connection.scope.setdefault("state", {})["admin_actor"] = actor
