"""The upstream adapter: the httpx client side of the SMM API v2 (PROTOCOL.md sections 4-5).

Nothing outside this package knows how an upstream spells a status or a number, or how a
request failed on the wire: callers see the normalized types and the error classes below.
"""

from gateway.upstream.addresses import UnsafeUpstreamURL, check_upstream_url
from gateway.upstream.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from gateway.upstream.client import Observer, UpstreamClient
from gateway.upstream.config import UpstreamConfig
from gateway.upstream.errors import (
    RejectReason,
    UpstreamAddressRefused,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
    classify_rejection,
)
from gateway.upstream.registry import UpstreamRegistry
from gateway.upstream.types import (
    AttemptOutcome,
    AttemptRecord,
    Balance,
    CancelAccepted,
    ItemError,
    OrderStatus,
    RefillStatus,
    RefillStatusAnswer,
    Service,
    StatusAnswer,
)

__all__ = [
    "AttemptOutcome",
    "AttemptRecord",
    "Balance",
    "BreakerSnapshot",
    "BreakerState",
    "CancelAccepted",
    "CircuitBreaker",
    "ItemError",
    "Observer",
    "OrderStatus",
    "RefillStatus",
    "RefillStatusAnswer",
    "RejectReason",
    "Service",
    "StatusAnswer",
    "UnsafeUpstreamURL",
    "UpstreamAddressRefused",
    "UpstreamCircuitOpen",
    "UpstreamClient",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamNotSent",
    "UpstreamRegistry",
    "UpstreamRejected",
    "UpstreamUnknown",
    "check_upstream_url",
    "classify_rejection",
]
