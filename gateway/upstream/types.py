"""The normalized, typed form every upstream dialect is parsed into.

Nothing outside ``gateway.upstream`` should ever see how a particular panel spells a status or
a number: it sees these types. Money is ``Decimal``, ids are ``int``, statuses are the canonical
names of PROTOCOL.md section 2 (:class:`gateway.lifecycle.OrderStatus`, ``RefillStatus``) or
``None`` with the raw spelling kept (never guessed). :class:`StatusAnswer` is what one answer
said about one order, :class:`RefillStatusAnswer` about one refill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

# The status names are the gateway's one list (gateway/lifecycle.py); re-exported for callers.
from gateway.lifecycle import OrderStatus, RefillStatus

__all__ = [
    "AttemptOutcome",
    "AttemptRecord",
    "Balance",
    "CancelAccepted",
    "ItemError",
    "OrderStatus",
    "RefillStatus",
    "RefillStatusAnswer",
    "Service",
    "StatusAnswer",
]


class ItemError(msgspec.Struct, frozen=True):
    """A per-id failure inside a multi answer (e.g. ``Incorrect order ID`` for one of the ids)."""

    message: str


class CancelAccepted(msgspec.Struct, frozen=True):
    """The upstream accepted the cancel request for this id (the order is not canceled yet:
    the status sync sees ``Canceled`` later and refunds then)."""


class StatusAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """One order's status.

    ``status`` is ``None`` when the upstream used a spelling the adapter does not know; the raw
    text is always in ``raw_status`` so an operator can see it. Numeric fields the upstream left
    out, sent empty or as ``"Unknown"`` are ``None``; so are unreadable ones, which are also
    named in ``unreadable``. Values are only parsed here, never judged: a negative or huge count
    comes through as sent, and the orders domain decides what it means.
    """

    status: OrderStatus | None
    raw_status: str
    charge: Decimal | None = None
    start_count: int | None = None
    remains: int | None = None
    currency: str | None = None
    # Fields that were present but unreadable ("abc", "12.5" for a count, 1e40): each a short,
    # key-free note. Their value above is None, like an absent one; the note lets the caller tell
    # "the panel did not say" from "the panel said something that makes no sense".
    unreadable: tuple[str, ...] = ()

    @property
    def is_known(self) -> bool:
        """True when the status mapped onto a canonical name."""
        return self.status is not None


class RefillStatusAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """One refill's status; ``status`` is ``None`` for an unknown spelling (kept in ``raw_status``)."""

    status: RefillStatus | None
    raw_status: str

    @property
    def is_known(self) -> bool:
        """True when the status mapped onto a canonical name."""
        return self.status is not None


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream service. ``rate`` is the upstream's price per 1000, in its currency."""

    service: int
    name: str
    type: str = "Default"
    category: str = ""
    rate: Decimal
    min: int
    max: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False
    desc: str | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's balance on the upstream account."""

    balance: Decimal
    currency: str | None = None


AttemptOutcome = Literal["ok", "rejected", "not_sent", "unknown"]


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the observer hook receives for every attempt (one HTTP request, or one call refused
    before the network: ``short_circuited`` is then true).

    ``error`` is short and key-free; ``excerpt`` is a short, key-free excerpt of an answer that
    could not be read (HTML page, 5xx body, malformed JSON). ``request_id`` is the caller's,
    never sent upstream.
    """

    provider_id: int | str
    action: str
    outcome: AttemptOutcome
    http_status: int | None
    duration: float
    error: str | None = None
    excerpt: str | None = None
    request_id: str | None = None
    attempt: int = 1
    short_circuited: bool = False
