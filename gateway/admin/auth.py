"""The admin guard: ``Authorization: Bearer <token>`` against ``GATEWAY_ADMIN_TOKEN``.

Compared in constant time. With no token configured, every admin route refuses with a message
that says how to enable the admin API.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import Unauthorized
from gateway.runtime import Runtime

ADMIN_DISABLED = "admin API disabled: set GATEWAY_ADMIN_TOKEN"
BAD_TOKEN = "missing or invalid admin token"  # noqa: S105 - a message, not a secret


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Let the request through only with the operator's token; record who it was."""
    runtime: Runtime = connection.app.state.runtime
    configured = runtime.settings.admin_token
    if configured is None or not configured.get_secret_value():
        raise Unauthorized(ADMIN_DISABLED)
    given = bearer_token(connection.headers.get("authorization"))
    expected = configured.get_secret_value().encode()
    if given is None or not hmac.compare_digest(given.encode(), expected):
        raise Unauthorized(BAD_TOKEN)
    connection.scope.setdefault("state", {})["admin_actor"] = "admin"
