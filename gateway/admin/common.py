"""Shared pieces of the admin layer: the caller's name, id parsing, wire conversions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec

from gateway.audit import Actor
from gateway.errors import DomainError
from gateway.money import format_money


class UpstreamFailed(DomainError):
    """The upstream did not give a usable answer to an operator's live request."""

    status_code = 502


def actor(request: Request[Any, Any, Any]) -> Actor:
    """Who is calling, as the admin guard recorded it (the token's name and scope)."""
    state = request.scope.get("state", {})
    return Actor(str(state.get("admin_actor", "admin")), state.get("admin_scope"))


def money(value: Decimal | None) -> str | None:
    return None if value is None else format_money(value)


class ErrorBody(msgspec.Struct):
    """Every admin error: a message, the HTTP status, and the offending field when there is one."""

    error: str
    status_code: int
    field: str | None = None


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


# The errors any admin route may answer, for the OpenAPI schema.
ERRORS: dict[int, ResponseSpec] = {
    400: _error("Invalid input; `field` names the offending field"),
    401: _error("Missing or invalid admin token, or the admin API is disabled"),
    404: _error("Not found"),
    409: _error("Conflicts with the current state"),
}
UPSTREAM_ERRORS: dict[int, ResponseSpec] = {**ERRORS, 502: _error("The upstream did not give a usable answer")}
