"""Who is on the other end of a v2 call: the client's address.

The connected peer, unless it is one of ``GATEWAY_TRUSTED_PROXIES``: then ``X-Forwarded-For`` is
read from the right (the entries the trusted proxies appended), skipping trusted addresses, and
the first address that is not a trusted proxy is the client. A forwarded value that is not an
address stops the walk at the last trusted hop: a client cannot pick its own address by sending
the header itself, since only what the trusted proxies appended is believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_FOR = b"x-forwarded-for"
MAX_HOPS = 20


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(ip in network for network in proxies)


# The connected peer's address as answered, by the text the server gave for it (parsing it is most
# of this module's cost per call; a process sees a bounded set of peers at a time).
_PEERS: dict[str, str] = {}
_MAX_PEERS = 4096


def client_address(scope: dict[str, Any] | Any, proxies: Sequence[Network]) -> str:
    """The client's address of an ASGI ``scope`` (see the module's docstring)."""
    client = scope.get("client")
    peer_text = str(client[0]) if client else "unknown"
    if not proxies:
        known = _PEERS.get(peer_text)
        if known is None:
            peer = _parse(peer_text)
            known = str(peer) if peer is not None else peer_text
            if len(_PEERS) >= _MAX_PEERS:
                _PEERS.clear()
            _PEERS[peer_text] = known
        return known
    peer = _parse(peer_text)
    if peer is None or not proxies or not _trusted(peer, proxies):
        return str(peer) if peer is not None else peer_text
    forwarded: list[str] = []
    for name, value in scope.get("headers", []):
        if name.lower() == _FORWARDED_FOR:
            forwarded.extend(value.decode("latin-1").split(","))
    current = peer
    for entry in reversed(forwarded[-MAX_HOPS:]):
        hop = _parse(entry)
        if hop is None:
            break
        current = hop
        if not _trusted(hop, proxies):
            break
    return str(current)
