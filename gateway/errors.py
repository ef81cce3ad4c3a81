"""One error hierarchy for the domain.

Each error carries the message a client may see. The v2 layer answers every :class:`ProtocolError`
as HTTP 200 ``{"error": message}`` (the exact strings of PROTOCOL.md); the admin layer maps the
classes below to 4xx JSON answers.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected, client-visible failure."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ProtocolError(DomainError):
    """A v2 protocol error; ``message`` is one of PROTOCOL.md's exact strings."""


class InvalidInput(DomainError):
    """A request body or parameter is malformed (admin: 400 naming the field)."""


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


# The exact protocol strings (PROTOCOL.md section 2), named once.
INVALID_API_KEY = "Invalid API key"
INCORRECT_REQUEST = "Incorrect request"
INCORRECT_SERVICE = "Incorrect service ID"
INCORRECT_ORDER = "Incorrect order ID"
REFILL_NOT_FOUND = "Refill not found"
NOT_ENOUGH_FUNDS = "Not enough funds on balance"
INCORRECT_LINK = "Incorrect link"
TOO_MANY_IDS = "Too many ids (max 100)"
REFILL_NOT_AVAILABLE = "Refill is not available for this order"
ACTIVE_ORDER_EXISTS = "You have active order with this link. Please wait until order being completed."
TOO_MANY_REQUESTS = "Too many requests, try again later"
SERVICE_UNAVAILABLE = "Service temporarily unavailable, try again later"
# Not in PROTOCOL.md's table: a cancel the gateway cannot do (service without cancel, order
# finished, or still being sent / its outcome unknown).
CANCEL_NOT_AVAILABLE = "Cancel is not available for this order"
# A customer's daily spend limit (set by the operator) would be passed by this add.
DAILY_SPEND_LIMIT_REACHED = "Daily spend limit reached"
# The idempotency extension (README, "Idempotent requests").
INCORRECT_IDEMPOTENCY_KEY = "Incorrect idempotency key"
IDEMPOTENCY_KEY_REUSED = "Idempotency key reused with different parameters"
IDEMPOTENCY_IN_PROGRESS = "A request with this idempotency key is still in progress, try again later"


def incorrect(field: str) -> str:
    """A required type-specific field missing or malformed: ``Incorrect comments``."""
    return f"Incorrect {field}"


def quantity_less_than(minimum: int) -> str:
    return f"Quantity less than minimal {minimum}"


def quantity_more_than(maximum: int) -> str:
    return f"Quantity more than maximal {maximum}"
