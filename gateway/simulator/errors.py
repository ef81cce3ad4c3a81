"""The panel's protocol errors: exact texts, because clients compare them (PROTOCOL.md §2)."""

from __future__ import annotations

INVALID_API_KEY = "Invalid API key"
INCORRECT_REQUEST = "Incorrect request"
INCORRECT_SERVICE = "Incorrect service ID"
INCORRECT_ORDER = "Incorrect order ID"
REFILL_NOT_FOUND = "Refill not found"
NOT_ENOUGH_FUNDS = "Not enough funds on balance"
INCORRECT_LINK = "Incorrect link"
TOO_MANY_IDS = "Too many ids (max {limit})"
REFILL_NOT_AVAILABLE = "Refill is not available for this order"
CANCEL_NOT_AVAILABLE = "Cancel is not available for this order"
DRIPFEED_NOT_AVAILABLE = "Drip-feed is not available for this service"
ACTIVE_ORDER_EXISTS = "You have active order with this link. Please wait until order being completed."


def quantity_too_small(minimum: int) -> str:
    """The text a panel answers when a quantity is under the service minimum."""
    return f"Quantity less than minimal {minimum}"


def quantity_too_large(maximum: int) -> str:
    """The text a panel answers when a quantity is over the service maximum."""
    return f"Quantity more than maximal {maximum}"


def incorrect_field(field: str) -> str:
    """The text for a missing or malformed type-specific field, e.g. ``Incorrect comments``."""
    return f"Incorrect {field}"


class PanelError(Exception):
    """A refusal the panel answers as HTTP 200 ``{"error": message}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
