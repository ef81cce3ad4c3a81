"""The admin guard: ``Authorization: Bearer <token>``, and the token's scope.

The operator's token is ``GATEWAY_ADMIN_TOKEN`` (compared in constant time; scope ``admin``); extra
named tokens can be issued through ``/admin/tokens`` with a scope and are stored hashed and
revocable. Without ``GATEWAY_ADMIN_TOKEN`` the admin API is off: every route refuses, named tokens
included.

What a route needs: ``read`` for GET; ``operator`` for every other method, unless the handler says
``opt=ADMIN_ONLY`` (providers' settings, tokens). A call beyond the token's scope: 403.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.access import active_token, scope_allows
from gateway.admin.deps import AdminAccess
from gateway.errors import Forbidden, Unauthorized

ADMIN_DISABLED = "admin API disabled: set GATEWAY_ADMIN_TOKEN"
BAD_TOKEN = "missing or invalid admin token"  # noqa: S105 - a message, not a secret
MAX_TOKEN_LENGTH = 500
# The handler option of the routes only an ``admin`` token may call.
ADMIN_ONLY = {"scope": "admin"}
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(method: str, handler: BaseRouteHandler) -> str:
    """The scope a call of ``handler`` with ``method`` needs."""
    declared = handler.opt.get("scope")
    if isinstance(declared, str):
        return declared
    return "read" if method.upper() in _READS else "operator"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Let the request through only with a valid admin token; record whose it was."""
    access: AdminAccess = connection.app.state.admin
    configured = access.token
    if configured is None or not configured.get_secret_value():
        raise Unauthorized(ADMIN_DISABLED)
    given = bearer_token(connection.headers.get("authorization"))
    if given is None or len(given) > MAX_TOKEN_LENGTH:
        raise Unauthorized(BAD_TOKEN)
    if hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        actor, scope = "admin", "admin"
    else:
        async with access.engine.connect() as conn:
            holder = await active_token(conn, given)
        if holder is None:
            raise Unauthorized(BAD_TOKEN)
        actor, scope = f"token:{holder.name}", holder.scope
    state = connection.scope.setdefault("state", {})
    state["admin_actor"], state["admin_scope"] = actor, scope
    needed = required_scope(str(connection.scope.get("method", "GET")), handler)
    if not scope_allows(scope, needed):
        raise Forbidden(f"this token's scope is {scope}; this call needs {needed}")
