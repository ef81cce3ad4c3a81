"""Validating the parameters of a v2 ``add`` call before anything is charged.

One pure function, :func:`validate_add`, turns the customer's flat string parameters and the
service's type and limits into an :class:`OrderRequest`: how many units are charged, what count is
stored on the order, and exactly which parameters are forwarded upstream. Everything it refuses is a
:class:`~gateway.errors.ProtocolError` carrying one of PROTOCOL.md's exact strings, so the v2 layer
can answer it as is. No I/O, no clock, no database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import Enum
from types import MappingProxyType
from urllib.parse import urlsplit

from gateway.errors import (
    INCORRECT_LINK,
    INCORRECT_REQUEST,
    ProtocolError,
    incorrect,
    quantity_less_than,
    quantity_more_than,
)

__all__ = ["MAX_INT", "SERVICE_TYPES", "OrderRequest", "ServiceType", "validate_add"]

# Anything larger is a typo or an attack; it also keeps every product (quantity × runs, max × posts)
# far inside a BIGINT.
MAX_INT = 10**9
MAX_RUNS = 1000
MAX_INTERVAL = 10_000  # minutes
MAX_DELAY = 1440  # minutes: a subscription waits at most a day before it starts

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "١٢" and "²"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A bare handle: "@name", "name", "first.last", "name-1"; at least one letter or digit.
_HANDLE = re.compile(r"@?(?=[\w.\-]*[^\W_])[\w.\-]+")
_HOST_LABEL = re.compile(r"[\w\-]+")
_HASHTAG = re.compile(r"#?\w+")
_EXPIRY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
# Comments and lists are split on these; "\r\n" and a lone "\r" count as one line break.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_OR_COMMA = re.compile(r"\r\n|\r|\n|,")
# Line breaks and tabs are the only control characters free text may carry.
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")

# The fields only Subscriptions know (read by _subscription), and drip-feed's (read by _dripfeed).
_SUBSCRIPTION_REQUIRED = ("username", "min", "max", "delay")
_SUBSCRIPTION_OPTIONAL = ("posts", "old_posts", "expiry")
_DRIPFEED_FIELDS = ("runs", "interval")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated ``add``: what to charge, what to store, what to forward upstream."""

    link: str | None  # None only for Subscriptions
    quantity: int  # the count stored on the order and used for partial refunds
    units: int  # the charge is rate × units / 1000 (ignored when per_package)
    per_package: bool  # Package and Custom Comments Package: charged `rate` once
    params: dict[str, str]  # exactly the fields to forward upstream, without key/action/service


class _Kind(Enum):
    """How a type-specific text field is checked and forwarded."""

    ACCOUNT = "account"  # one username or profile/post link (username, media)
    HASHTAG = "hashtag"  # one hashtag, "#" optional
    LIST = "list"  # free list of names (usernames, hashtags, groups): forwarded as sent
    POSITIVE_INT = "positive_int"  # answer_number


@dataclass(frozen=True, slots=True)
class ServiceType:
    """What one service type needs besides ``link`` (PROTOCOL.md section 3).

    The table :data:`SERVICE_TYPES` is what :func:`validate_add` checks and what the customers' API
    page (``GET /api``) shows, so the two cannot disagree.
    """

    sent_quantity: bool = True  # False: the quantity is derived, a sent one is ignored
    fields: tuple[tuple[str, _Kind], ...] = ()
    counted: str | None = None  # the field whose lines (or names) make the quantity
    per_package: bool = False
    dripfeed: bool = False  # only Default knows runs/interval (PROTOCOL.md section 3)
    subscription: bool = False  # no link; username, min, max, delay (+ posts, expiry): _subscription

    @property
    def required(self) -> tuple[str, ...]:
        """The parameters ``add`` must carry for this type (besides ``key``, ``action``, ``service``)."""
        if self.subscription:
            return _SUBSCRIPTION_REQUIRED
        names = ["link", *(["quantity"] if self.sent_quantity else []), *(name for name, _ in self.fields)]
        if self.counted is not None and self.counted not in names:
            names.append(self.counted)
        return tuple(names)

    @property
    def optional(self) -> tuple[str, ...]:
        """The parameters this type also accepts (drip-feed: only on a service with ``dripfeed``)."""
        if self.subscription:
            return _SUBSCRIPTION_OPTIONAL
        return _DRIPFEED_FIELDS if self.dripfeed else ()


_DEFAULT = ServiceType(dripfeed=True)
# In PROTOCOL.md section 3's order; a type not listed is validated as Default.
SERVICE_TYPES: Mapping[str, ServiceType] = MappingProxyType(
    {
        "Default": _DEFAULT,
        "Package": ServiceType(sent_quantity=False, per_package=True),
        "Custom Comments": ServiceType(sent_quantity=False, counted="comments"),
        "Custom Comments Package": ServiceType(sent_quantity=False, counted="comments", per_package=True),
        "Mentions": ServiceType(fields=(("usernames", _Kind.LIST),)),
        "Mentions with Hashtags": ServiceType(fields=(("usernames", _Kind.LIST), ("hashtags", _Kind.LIST))),
        "Mentions Custom List": ServiceType(sent_quantity=False, counted="usernames"),
        "Mentions Hashtag": ServiceType(fields=(("hashtag", _Kind.HASHTAG),)),
        "Mentions User Followers": ServiceType(fields=(("username", _Kind.ACCOUNT),)),
        "Mentions Media Likers": ServiceType(fields=(("media", _Kind.ACCOUNT),)),
        "Comment Likes": ServiceType(fields=(("username", _Kind.ACCOUNT),)),
        "Comment Replies": ServiceType(sent_quantity=False, fields=(("username", _Kind.ACCOUNT),), counted="comments"),
        "Poll": ServiceType(fields=(("answer_number", _Kind.POSITIVE_INT),)),
        "Invites from Groups": ServiceType(fields=(("groups", _Kind.LIST),)),
        "Subscriptions": ServiceType(sent_quantity=False, subscription=True),
    }
)


def validate_add(
    service_type: str,
    params: Mapping[str, str],
    *,
    min_quantity: int,
    max_quantity: int,
    dripfeed: bool,
    max_link_length: int = 2000,
    max_comments_length: int = 100_000,
) -> OrderRequest:
    """Check an ``add`` call's parameters for one service and say what to charge and forward.

    ``params`` are the call's parameters as strings (``key``/``action``/``service`` may be present
    and are never forwarded). ``min_quantity``/``max_quantity`` are the limits the customer sees,
    ``dripfeed`` whether the service accepts ``runs``/``interval``. ``max_link_length`` caps single
    values (link, username, media, hashtag); ``max_comments_length`` caps multi-line values
    (comments, usernames, hashtags, groups). An unknown ``service_type`` is validated as Default.

    Raises :class:`ProtocolError` with the protocol's exact message on the first problem found,
    checking fields in PROTOCOL.md's table order (link, quantity, then the type's own fields).
    """
    spec = SERVICE_TYPES.get(service_type, _DEFAULT)
    if spec.subscription:
        return _subscription(params, min_quantity, max_quantity, max_link_length)

    link = _link(params.get("link"), max_link_length)
    forwarded = {"link": link}

    quantity = 1
    if spec.sent_quantity:
        quantity = _quantity(params.get("quantity"))
        _check_limits(quantity, min_quantity, max_quantity)
        forwarded["quantity"] = str(quantity)

    for name, kind in spec.fields:
        forwarded[name] = _field(name, kind, params.get(name), max_link_length, max_comments_length)

    if spec.counted is not None:
        splitter = _LINE_BREAK if spec.counted == "comments" else _LINE_OR_COMMA
        items = _items(spec.counted, params.get(spec.counted), splitter, max_comments_length)
        # Forwarded one per line, blank lines dropped, so the upstream counts what we charged.
        forwarded[spec.counted] = "\n".join(items)
        quantity = len(items)
        if not spec.per_package:
            _check_limits(quantity, min_quantity, max_quantity)

    if spec.per_package:
        # A package is one unit whatever it holds; its min/max describe the package, not the
        # number of comments in it, so they are not checked against that number.
        return OrderRequest(link=link, quantity=quantity, units=1, per_package=True, params=forwarded)

    units = quantity
    if spec.dripfeed:
        runs = _dripfeed(params, dripfeed, forwarded)
        units = quantity * runs
    return OrderRequest(link=link, quantity=units, units=units, per_package=False, params=forwarded)


# --- the pieces ---------------------------------------------------------------------------------


def _incorrect(field: str) -> ProtocolError:
    """The protocol's short field-naming message, e.g. ``Incorrect comments``."""
    return ProtocolError(incorrect(field), field=field)


def _parse_int(value: str | None) -> int | None:
    """A non-negative decimal integer parsed like an id (`` 12 ``, ``012``), or None if malformed.

    Signs, decimals, exponents, non-ASCII digits and values above :data:`MAX_INT` are malformed.
    """
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        return None
    # Bound the length before int(): a 10 MB digit string would be slow (and trips Python's limit).
    significant = text.lstrip("0")
    if len(significant) > len(str(MAX_INT)):
        return None
    number = int(significant or "0")
    return number if number <= MAX_INT else None


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _quantity(value: str | None) -> int:
    number = _parse_int(value)
    if number is None:
        raise ProtocolError(INCORRECT_REQUEST, field="quantity")
    return number


def _check_limits(quantity: int, min_quantity: int, max_quantity: int) -> None:
    # Nothing can be ordered zero times, even on a service whose minimum says 0.
    if quantity < max(min_quantity, 1):
        raise ProtocolError(quantity_less_than(max(min_quantity, 1)), field="quantity")
    if quantity > max_quantity:
        raise ProtocolError(quantity_more_than(max_quantity), field="quantity")


def _has_invisible(text: str) -> bool:
    """Whitespace, control, format (bidi overrides, zero-width), surrogate or private-use characters.

    Unassigned code points (``Cn``) pass: they may be characters newer than this Python's tables.
    """
    for c in text:
        category = unicodedata.category(c)
        if c.isspace() or category[0] == "Z" or category in ("Cc", "Cf", "Cs", "Co"):
            return True
    return False


def _bad_text(text: str) -> bool:
    """Characters free text must not carry: NUL and other controls, lone surrogates."""
    return any(
        (unicodedata.category(c) == "Cc" and c not in _TEXT_CONTROLS_ALLOWED) or unicodedata.category(c) == "Cs"
        for c in text
    )


def _plausible_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https"):
        return False
    host = parts.hostname or ""
    labels = host.split(".")
    return len(labels) >= 2 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _plausible_account(text: str) -> bool:
    """An http(s) link (scheme optional: ``instagram.com/name``) or a bare handle (``@name``)."""
    if _SCHEME.match(text):
        return _plausible_url(text)
    if "/" in text:
        return _plausible_url("http://" + text)
    return _HANDLE.fullmatch(text) is not None


def _single(field: str, value: str | None, max_length: int, plausible: Callable[[str], bool]) -> str:
    """A required one-token value, trimmed; refused with ``Incorrect <field>``."""
    if value is None:
        raise _incorrect(field)
    text = value.strip()
    if not text or len(text) > max_length or _has_invisible(text) or not plausible(text):
        raise _incorrect(field)
    return text


def _link(value: str | None, max_length: int) -> str:
    try:
        return _single("link", value, max_length, _plausible_account)
    except ProtocolError:
        raise ProtocolError(INCORRECT_LINK, field="link") from None


def _items(field: str, value: str | None, splitter: re.Pattern[str], max_length: int) -> list[str]:
    """The non-blank, trimmed lines (or names) of a multi-line field; at least one."""
    # The cap is checked on the raw value first: a 10 MB body is refused before it is scanned.
    if value is None or len(value) > max_length or _bad_text(value):
        raise _incorrect(field)
    items = [stripped for item in splitter.split(value) if (stripped := item.strip())]
    if not items:
        raise _incorrect(field)
    return items


def _field(field: str, kind: _Kind, value: str | None, max_link_length: int, max_comments_length: int) -> str:
    """One required type-specific field, as forwarded upstream."""
    if kind is _Kind.ACCOUNT:
        return _single(field, value, max_link_length, _plausible_account)
    if kind is _Kind.HASHTAG:
        return _single(field, value, max_link_length, lambda text: _HASHTAG.fullmatch(text) is not None)
    if kind is _Kind.POSITIVE_INT:
        number = _parse_int(value)
        if number is None or number < 1:
            raise _incorrect(field)
        return str(number)
    # A list: checked for at least one name, forwarded as sent (trimmed); the quantity is sent apart.
    if value is None:
        raise _incorrect(field)
    _items(field, value, _LINE_OR_COMMA, max_comments_length)
    return value.strip()


def _bounded(field: str, value: str | None, low: int, high: int) -> int:
    number = _parse_int(value)
    if number is None or not low <= number <= high:
        raise _incorrect(field)
    return number


def _dripfeed(params: Mapping[str, str], allowed: bool, forwarded: dict[str, str]) -> int:
    """The number of runs (1 without drip-feed); adds ``runs``/``interval`` to ``forwarded``."""
    runs_value, interval_value = params.get("runs"), params.get("interval")
    # Form-based clients send every field of their form, so empty runs/interval mean "no drip-feed".
    if _blank(runs_value) and _blank(interval_value):
        return 1
    if not allowed:
        raise ProtocolError(INCORRECT_REQUEST, field="runs")
    runs = _bounded("runs", runs_value, 1, MAX_RUNS)
    interval = _bounded("interval", interval_value, 1, MAX_INTERVAL)
    forwarded["runs"] = str(runs)
    forwarded["interval"] = str(interval)
    return runs


def _expiry(value: str) -> str:
    """A real calendar date in ``DD/MM/YYYY`` (one-digit day/month accepted), forwarded zero-padded."""
    match = _EXPIRY.fullmatch(value.strip())
    if match is None:
        raise _incorrect("expiry")
    day, month, year = (int(part) for part in match.groups())
    try:
        date(year, month, day)
    except ValueError:
        raise _incorrect("expiry") from None
    return f"{day:02d}/{month:02d}/{year:04d}"


def _subscription(params: Mapping[str, str], min_quantity: int, max_quantity: int, max_length: int) -> OrderRequest:
    """Subscriptions: no link; ``min``/``max`` per post are what the service limits bound."""
    username = _single("username", params.get("username"), max_length, _plausible_account)
    low = _bounded("min", params.get("min"), 0, MAX_INT)
    high = _bounded("max", params.get("max"), 0, MAX_INT)
    if low < min_quantity:
        raise ProtocolError(quantity_less_than(min_quantity), field="min")
    if high > max_quantity:
        raise ProtocolError(quantity_more_than(max_quantity), field="max")
    if high < low:
        raise _incorrect("max")
    if high < 1:
        raise ProtocolError(quantity_less_than(max(min_quantity, 1)), field="max")
    delay = _bounded("delay", params.get("delay"), 0, MAX_DELAY)
    forwarded = {"username": username, "min": str(low), "max": str(high), "delay": str(delay)}

    posts = 0
    for field in ("posts", "old_posts"):
        value = params.get(field)
        if not _blank(value):
            count = _bounded(field, value, 1, MAX_INT)
            forwarded[field] = str(count)
            # Both given: new and old posts may each be served, so the ceiling covers both.
            posts += count
    expiry = params.get("expiry")
    if expiry is not None and not _blank(expiry):
        forwarded["expiry"] = _expiry(expiry)

    units = high * (posts or 1)
    return OrderRequest(link=None, quantity=units, units=units, per_package=False, params=forwarded)
