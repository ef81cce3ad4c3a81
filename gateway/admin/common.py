"""Shared pieces of the admin layer: the caller's name, id parsing, wire conversions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar import Request

from gateway.errors import DomainError
from gateway.money import format_money


class UpstreamFailed(DomainError):
    """The upstream did not give a usable answer to an operator's live request."""

    status_code = 502


def actor(request: Request[Any, Any, Any]) -> str:
    """Who is calling, as the admin guard recorded it (the token's name)."""
    return str(request.scope.get("state", {}).get("admin_actor", "admin"))


def money(value: Decimal | None) -> str | None:
    return None if value is None else format_money(value)
