"""Refusing upstream URLs that point into the gateway's own network (SSRF guard).

An operator (or an attacker with admin access) types a provider URL; the worker then POSTs the
provider's API key to it. Pointing it at ``http://169.254.169.254/`` or ``http://127.0.0.1:5432``
must fail, however the address is spelled. Two layers:

- :func:`check_upstream_url` when the URL is stored/used (static: the literal host; it also
  normalises the URL, see :func:`normalise_upstream_url`);
- :func:`forbidden_reason` on every address the host resolves to, and on the peer address of
  every new connection (done by the client), which also covers DNS names pointing inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from gateway.upstream.errors import UpstreamAddressRefused, UpstreamNotSent

__all__ = [
    "HostGuard",
    "Resolver",
    "UnsafeUpstreamURL",
    "check_peer_address",
    "check_upstream_url",
    "forbidden_reason",
    "normalise_upstream_url",
    "parse_numeric_ipv4",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")
_SCHEME_AND_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")


class UnsafeUpstreamURL(ValueError):
    """The upstream URL is malformed or points at a non-public address; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric host means to ``inet_aton`` (and so to ``getaddrinfo``).

    ``127.1``, ``2130706433``, ``0x7f.0.0.1`` and ``0177.0.0.1`` all mean 127.0.0.1. Returns
    ``None`` when the host is not numeric at all; raises :class:`UnsafeUpstreamURL` when it looks
    numeric but is not a valid address (browsers refuse those too: a host ending in a number is an
    IPv4 address or nothing).
    """
    parts = host.split(".")
    if not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        raise UnsafeUpstreamURL(f"ambiguous numeric host {host!r}")
    try:
        values = [_parse_numeric_part(p) for p in parts]
    except ValueError:
        raise UnsafeUpstreamURL(f"ambiguous numeric host {host!r}") from None
    # inet_aton: a.b.c.d; a.b.c (c is 16 bits); a.b (b is 24 bits); a (32 bits).
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(values)):
        raise UnsafeUpstreamURL(f"numeric host {host!r} out of range")
    number = last
    for i, v in enumerate(leading):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _parse_numeric_part(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)  # raises on 8 or 9: refused as ambiguous
    return int(part)


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be an upstream (``None`` when it is a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"IPv4-mapped IPv6 address {address}"
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and forbidden_reason(embedded) is not None:
            return f"IPv6 address {address} embeds non-public {embedded}"
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        # Catches the rest that is not globally routable (e.g. 100.64.0.0/10 carrier-grade NAT).
        ("non-global", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{name} address {address}"
    return None


def normalise_upstream_url(url: str) -> str:
    """``url`` stripped, with its scheme and host in lower case.

    Those two are case-insensitive, so ``HTTP://Panel.EXAMPLE/api/v2`` is the same upstream as
    ``http://panel.example/api/v2``: one spelling is stored (the database only accepts a
    lower-case scheme) and compared. The path and query may be case-sensitive and are kept as
    given; so is the port (an explicit default port stays).
    """
    url = url.strip()
    match = _SCHEME_AND_AUTHORITY.match(url)
    if match is None:
        return url  # no authority: check_upstream_url refuses it whatever its case
    scheme, authority = match.groups()
    userinfo, at, host_port = authority.rpartition("@")
    # An IPv6 zone id (after "%") names a network interface, whose name is case-sensitive.
    host, percent, zone = host_port.partition("%")
    return f"{scheme.lower()}://{userinfo}{at}{host.lower()}{percent}{zone}{url[match.end() :]}"


def check_upstream_url(url: str, *, allow_private: bool) -> str:
    """Validate an upstream API URL and return it normalised (:func:`normalise_upstream_url`).

    Requires ``http``/``https``, a host, no credentials in the URL. Unless ``allow_private``,
    refuses loopback, private, link-local, unspecified, multicast, reserved and IPv4-mapped IPv6
    hosts in every spelling ``getaddrinfo`` would accept (decimal, hex, octal, short forms),
    ``localhost`` and ``*.localhost``. The host is taken from ``httpx.URL``, the parser the
    client itself uses, so the check and the connection cannot disagree about what the host is.
    Raises :class:`UnsafeUpstreamURL`.
    """
    # Checked as it will be stored and used: the check and the connection see the same text.
    url = normalise_upstream_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise UnsafeUpstreamURL("not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeUpstreamURL("the URL must start with http:// or https://")
    if parsed.userinfo:
        raise UnsafeUpstreamURL("credentials in the URL are not allowed")
    # raw_host is the ASCII (IDNA-encoded) form, the one actually resolved.
    host = parsed.raw_host.decode("ascii", errors="replace").rstrip(".").lower()
    if not host:
        raise UnsafeUpstreamURL("the URL has no host")
    address = _literal_address(host)
    if allow_private:
        return url
    if host == "localhost" or host.endswith(".localhost"):
        raise UnsafeUpstreamURL(f"loopback host {host!r} is not allowed")
    if address is not None:
        reason = forbidden_reason(address)
        if reason is not None:
            raise UnsafeUpstreamURL(f"{reason} is not allowed")
    return url


def _literal_address(host: str) -> IPAddress | None:
    """The address a literal host denotes, ``None`` for a DNS name; refuses malformed names."""
    try:
        return ipaddress.ip_address(host.replace("%25", "%"))  # an IPv6 zone id arrives escaped
    except ValueError:
        pass
    numeric = parse_numeric_ipv4(host)
    if numeric is not None:
        return numeric
    # IDNA hosts arrive as ASCII (xn--...), so anything else here is a malformed name
    # (percent-escapes, stray characters) that some resolver might read differently.
    if not all(_LABEL.match(label) for label in host.split(".")):
        raise UnsafeUpstreamURL(f"malformed host name {host!r}")
    return None


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, via the event loop's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HostGuard:
    """The connect-time half of the guard: before a request, resolve the host and refuse it if
    *any* address is non-public (an attacker-controlled name may return several).

    The verdict "public" is cached for ``ttl`` seconds. A name could still be re-pointed between
    this check and httpx's own lookup (DNS rebinding); the client closes that gap by checking the
    peer address of every new connection too (see :func:`check_peer_address`).
    """

    def __init__(
        self, resolver: Resolver = system_resolver, *, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._resolver = resolver
        self._ttl = ttl
        self._clock = clock
        self._verified_until: dict[tuple[str, int], float] = {}

    async def check(self, host: str, port: int) -> None:
        """Raise :class:`UpstreamAddressRefused` if ``host`` resolves to a non-public address, or
        :class:`UpstreamNotSent` if it does not resolve at all."""
        now = self._clock()
        if self._verified_until.get((host, port), 0.0) > now:
            return
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UpstreamNotSent(f"could not resolve the upstream host: {type(exc).__name__}") from None
        if not addresses:
            raise UpstreamNotSent("the upstream host resolved to no address")
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise UpstreamAddressRefused(f"the upstream host resolved to an unreadable address {text!r}") from None
            reason = forbidden_reason(address)
            if reason is not None:
                raise UpstreamAddressRefused(f"the upstream host resolves to a {reason}; refused")
        self._verified_until[(host, port)] = now + self._ttl


def check_peer_address(peer: object) -> None:
    """Refuse a connection whose peer (``(ip, port, ...)`` as sockets report it) is non-public.
    Anything that is not an address (e.g. a test double) is let through: the resolve-time check
    has already run."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return
    reason = forbidden_reason(address)
    if reason is not None:
        raise UpstreamAddressRefused(f"the connection to the upstream reached a {reason}; refused")
