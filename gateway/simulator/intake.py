"""Validation of ``add`` per service type, the way a real panel checks an order (PROTOCOL.md §3).

Checks run in the order panels run them: link, type-specific fields, then quantity limits; the
first failure is the answer. A missing ``quantity`` counts as 0 (panels cast it like PHP does), so
it is answered with the minimum; a present but non-numeric one is ``Incorrect quantity``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.simulator import errors
from gateway.simulator.catalog import Service, ServiceType
from gateway.simulator.errors import PanelError
from gateway.simulator.money import charge_for, to_money

_INTEGER = re.compile(r"\s*\d+\s*")
_LINK = re.compile(r"\S{1,2048}")
# The delays (minutes) the common panel software offers for subscriptions.
SUBSCRIPTION_DELAYS = frozenset((0, 5, 10, 15, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420, 480))

T = ServiceType
_PACKAGES = frozenset((T.PACKAGE, T.CUSTOM_COMMENTS_PACKAGE))
# Types whose quantity is the number of lines of a text field, and that field's name.
_COUNTED_LINES = {
    T.CUSTOM_COMMENTS: "comments",
    T.CUSTOM_COMMENTS_PACKAGE: "comments",
    T.COMMENT_REPLIES: "comments",
    T.MENTIONS_CUSTOM_LIST: "usernames",
}
# Other required text fields, beyond link and quantity.
_REQUIRED_TEXT: dict[ServiceType, tuple[str, ...]] = {
    T.MENTIONS: ("usernames",),
    T.MENTIONS_WITH_HASHTAGS: ("usernames", "hashtags"),
    T.MENTIONS_HASHTAG: ("hashtag",),
    T.MENTIONS_USER_FOLLOWERS: ("username",),
    T.MENTIONS_MEDIA_LIKERS: ("media",),
    T.COMMENT_LIKES: ("username",),
    T.COMMENT_REPLIES: ("username",),
    T.INVITES_FROM_GROUPS: ("groups",),
    T.SUBSCRIPTIONS: ("username",),
}


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated ``add``: what to deliver, how much in total, and what it costs."""

    link: str
    quantity: int
    units: int
    charge: Decimal
    runs: int | None = None
    interval_minutes: int | None = None

    @property
    def drip_seconds(self) -> float:
        """How long drip-feed runs stretch delivery (0 for ordinary orders)."""
        if self.runs is None or self.interval_minutes is None:
            return 0.0
        return (self.runs - 1) * self.interval_minutes * 60.0


def read_order_request(service: Service, params: Mapping[str, str]) -> OrderRequest:
    """Validate ``add`` parameters for ``service``; raises ``PanelError`` with the panel's text."""
    if service.type is T.SUBSCRIPTIONS:
        return _read_subscription(service, params)
    link = params.get("link", "").strip()
    if not _LINK.fullmatch(link):
        raise PanelError(errors.INCORRECT_LINK)
    for field in _REQUIRED_TEXT.get(service.type, ()):
        if not params.get(field, "").strip():
            raise PanelError(errors.incorrect_field(field))
    if service.type is T.POLL:
        _positive_int(params, "answer_number")

    if service.type in _COUNTED_LINES:
        field = _COUNTED_LINES[service.type]
        quantity = len(_lines(params.get(field, ""), commas=field == "usernames"))
        if quantity == 0:
            raise PanelError(errors.incorrect_field(field))
    elif service.type is T.PACKAGE:
        quantity = 1
    else:
        quantity = _quantity(params)
    _check_limits(service, quantity)

    runs, interval = _drip_feed(service, params)
    units = quantity * (runs or 1)
    charge = to_money(service.rate) if service.type in _PACKAGES else charge_for(service.rate, units)
    return OrderRequest(link, quantity, units, charge, runs, interval)


def _read_subscription(service: Service, params: Mapping[str, str]) -> OrderRequest:
    username = params.get("username", "").strip()
    if not username:
        raise PanelError(errors.incorrect_field("username"))
    minimum = _positive_int(params, "min")
    maximum = _positive_int(params, "max")
    if maximum < minimum:
        raise PanelError(errors.incorrect_field("max"))
    _check_limits(service, minimum)
    _check_limits(service, maximum)
    posts = _optional_int(params, "posts") + _optional_int(params, "old_posts")
    if posts < 1:
        raise PanelError(errors.incorrect_field("posts"))
    if _optional_int(params, "delay") not in SUBSCRIPTION_DELAYS:
        raise PanelError(errors.incorrect_field("delay"))
    expiry = params.get("expiry", "").strip()
    if expiry:
        try:
            datetime.strptime(expiry, "%d/%m/%Y")  # noqa: DTZ007 - a calendar date, no time zone involved
        except ValueError:
            raise PanelError(errors.incorrect_field("expiry")) from None
    # Charged up front for the most it could deliver; there is no link, the account is the target.
    units = maximum * posts
    return OrderRequest(username, maximum, units, charge_for(service.rate, units))


def _drip_feed(service: Service, params: Mapping[str, str]) -> tuple[int | None, int | None]:
    if not params.get("runs", "").strip():
        return None, None
    if not service.dripfeed:
        raise PanelError(errors.DRIPFEED_NOT_AVAILABLE)
    return _positive_int(params, "runs"), _positive_int(params, "interval")


def _check_limits(service: Service, quantity: int) -> None:
    if quantity < service.min_quantity:
        raise PanelError(errors.quantity_too_small(service.min_quantity))
    if quantity > service.max_quantity:
        raise PanelError(errors.quantity_too_large(service.max_quantity))


def _quantity(params: Mapping[str, str]) -> int:
    raw = params.get("quantity", "")
    if not raw.strip():
        return 0
    if not _INTEGER.fullmatch(raw):
        raise PanelError(errors.incorrect_field("quantity"))
    return int(raw)


def _positive_int(params: Mapping[str, str], field: str) -> int:
    raw = params.get(field, "")
    if not _INTEGER.fullmatch(raw) or int(raw) < 1:
        raise PanelError(errors.incorrect_field(field))
    return int(raw)


def _optional_int(params: Mapping[str, str], field: str) -> int:
    raw = params.get(field, "")
    if not raw.strip():
        return 0
    if not _INTEGER.fullmatch(raw):
        raise PanelError(errors.incorrect_field(field))
    return int(raw)


def _lines(text: str, *, commas: bool) -> list[str]:
    # One item per line; a username list also arrives comma-separated from some clients, while a
    # comment may itself contain commas.
    separators = r"[\r\n,]+" if commas else r"[\r\n]+"
    return [item.strip() for item in re.split(separators, text) if item.strip()]
