"""The adapter's one error hierarchy (PROTOCOL.md section 5).

Three ways a call can fail, and they decide what the orders code may do next:

- ``UpstreamRejected``: the upstream answered, with a top-level ``{"error": ...}``. The request
  definitely arrived and definitely did nothing. ``.reason`` says whose fault it was.
- ``UpstreamNotSent``: the request definitely never left (refused, connect timeout, no free pooled
  connection, circuit open, unsafe address). Safe to send again.
- ``UpstreamUnknown``: the request may have arrived (anything after the connection was
  established). A write that ends here must never be re-sent automatically.

Every message here is built from text the adapter has already scrubbed of the API key.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "RejectReason",
    "UpstreamAddressRefused",
    "UpstreamCircuitOpen",
    "UpstreamError",
    "UpstreamNotSent",
    "UpstreamRejected",
    "UpstreamUnknown",
    "classify_rejection",
]


class RejectReason(enum.StrEnum):
    """Whose fault an upstream rejection is.

    ``INPUT``: the customer's order itself is wrong (bad link, quantity limits, unknown service,
    an active order on the link): the customer gets the error and a refund.
    ``PROVIDER``: the upstream account or the gateway is the problem (funds, key, rate limits, a
    request the upstream did not understand): the order stays queued and is retried later.
    ``SERVICE``: the upstream no longer sells the service the gateway asked for (unknown or
    disabled service id): not the customer's fault, and another route may still serve the order.
    ``OTHER``: an unrecognised message; the orders code decides (it should treat it like PROVIDER
    until an operator looks, since refunding is irreversible and retrying is not).
    """

    INPUT = "input"
    PROVIDER = "provider"
    SERVICE = "service"
    OTHER = "other"


# Checked before the INPUT patterns: "Incorrect API key" and "Incorrect request" would otherwise
# be caught by the generic "incorrect <field>" input rule.
_PROVIDER_PATTERNS = re.compile(
    r"not enough funds|insufficient (funds|balance)|low balance"
    r"|(invalid|incorrect|wrong|missing) (api )?key|api key"
    r"|spam protection|too many requests|rate limit|try again later|temporarily unavailable"
    r"|incorrect request|invalid request|incorrect action|invalid action"
    r"|maintenance|account (is )?(disabled|suspended|banned)",
    re.IGNORECASE,
)

# The upstream's service itself: checked before INPUT ("incorrect service" is not the customer's
# input, which named the gateway's own service) and after PROVIDER ("service temporarily unavailable").
_SERVICE_PATTERNS = re.compile(
    r"(incorrect|invalid|unknown|wrong) service|service (id )?(not found|is disabled|disabled|does not exist)",
    re.IGNORECASE,
)

_INPUT_PATTERNS = re.compile(
    r"\blink\b|quantity|minimal|maximal|\bminimum\b|\bmaximum\b"
    r"|active order|incorrect order id|order not found|refill is not available|not available for"
    r"|(incorrect|invalid|wrong|missing) (comments|usernames?|hashtags?|media|answer[_ ]number"
    r"|groups|runs|interval|posts|old[_ ]posts|delay|expiry|min|max)\b",
    re.IGNORECASE,
)


def classify_rejection(message: str) -> RejectReason:
    """Classify an upstream error message (case-insensitive) into a :class:`RejectReason`.

    "Incorrect request" is deliberately PROVIDER: it means the upstream did not understand the
    gateway's request, which is a gateway/upstream mismatch, not something the customer can fix,
    and refunding on a misclassification is the irreversible mistake.
    """
    if _PROVIDER_PATTERNS.search(message):
        return RejectReason.PROVIDER
    if _SERVICE_PATTERNS.search(message):
        return RejectReason.SERVICE
    if _INPUT_PATTERNS.search(message):
        return RejectReason.INPUT
    return RejectReason.OTHER


class UpstreamError(Exception):
    """Base of every failure the adapter raises. ``message`` is key-free and short."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UpstreamRejected(UpstreamError):
    """The upstream answered with a top-level error: the request arrived and did nothing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = classify_rejection(message)


class UpstreamNotSent(UpstreamError):
    """The request definitely never left the gateway: safe to send again."""


class UpstreamCircuitOpen(UpstreamNotSent):
    """The provider's circuit breaker is open: failed fast without touching the network."""


class UpstreamAddressRefused(UpstreamNotSent):
    """The upstream host resolved to (or connected to) a private/loopback/reserved address."""


class UpstreamUnknown(UpstreamError):
    """The request may have reached the upstream; its outcome is unknown.

    ``excerpt`` is a short, key-free excerpt of what came back, when something did.
    """

    def __init__(self, message: str, *, excerpt: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.excerpt = excerpt
        self.http_status = http_status
