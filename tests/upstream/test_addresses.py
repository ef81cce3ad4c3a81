"""The private/loopback address guard: static URL check, resolve-time and connect-time checks."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.upstream import (
    UnsafeUpstreamURL,
    UpstreamAddressRefused,
    UpstreamClient,
    UpstreamConfig,
    UpstreamNotSent,
)
from gateway.upstream.addresses import (
    HostGuard,
    check_peer_address,
    check_upstream_url,
    normalise_upstream_url,
    parse_numeric_ipv4,
)
from gateway.upstream.wire import AttemptPhase
from tests.upstream.helpers import API_KEY, FAST, FakeClock, FakePanel

REFUSED = [
    "http://127.0.0.1/api/v2",
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::1]/",
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://panel.localhost/",
    "http://localhost./",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::7f00:1]/",
]

MALFORMED = [
    "ftp://panel.example.com/",
    "file:///etc/passwd",
    "panel.example.com/api",
    "http:///api",
    "http://user:pass@panel.example.com/",
    "http://panel.example.com@127.0.0.1/",
    "http://%31%32%37.0.0.1/",
    "http://1.2.3.4.5/",
    "http://panel.123/",
    "",
]

ALLOWED = [
    "https://panel.example.com/api/v2",
    "http://8.8.8.8/api/v2",
    "https://[2001:4860:4860::8888]/api/v2",
    "https://bücher.example/api/v2",
    "  https://panel.example.com/api/v2  ",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_hosts_are_refused_in_every_spelling(url: str) -> None:
    with pytest.raises(UnsafeUpstreamURL) as caught:
        check_upstream_url(url, allow_private=False)
    assert caught.value.reason
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(UnsafeUpstreamURL):
        check_upstream_url(url, allow_private=True)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass(url: str) -> None:
    assert check_upstream_url(url, allow_private=False) == url.strip()


@pytest.mark.parametrize("url", [u for u in REFUSED if "0177" not in u])
def test_allow_private_lets_them_through(url: str) -> None:
    # Returned as stored: scheme and host in lower case (tests/upstream/test_url_normalisation.py).
    assert check_upstream_url(url, allow_private=True) == normalise_upstream_url(url)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("1.2.3.4", "1.2.3.4"),
        ("0x08080808", "8.8.8.8"),
        ("panel.example.com", None),
    ],
)
def test_numeric_ipv4_spellings_mean_what_inet_aton_means(host: str, expected: str | None) -> None:
    result = parse_numeric_ipv4(host)
    assert result == (ipaddress.IPv4Address(expected) if expected else None)


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.4.5", "08.0.0.1", "4294967296", "1.16777216"])
def test_invalid_numeric_hosts_are_refused(host: str) -> None:
    with pytest.raises(UnsafeUpstreamURL):
        parse_numeric_ipv4(host)


def test_the_client_refuses_an_unsafe_url_at_construction() -> None:
    with pytest.raises(UnsafeUpstreamURL):
        UpstreamClient(1, "http://169.254.169.254/", API_KEY, config=FAST)


def _client(panel: FakePanel, resolver: Any, config: UpstreamConfig = FAST) -> UpstreamClient:
    return UpstreamClient(
        1,
        "https://panel.example.com/api/v2",
        API_KEY,
        config=config,
        transport=httpx.MockTransport(panel),
        resolver=resolver,
    )


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["::ffff:169.254.169.254"], ["fe80::1%eth0"]],
)
async def test_a_host_resolving_to_any_private_address_is_refused_before_connecting(addresses: list[str]) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("panel.example.com", 443)
        return addresses

    panel = FakePanel({"balance": "1"})
    async with _client(panel, resolver) as client:
        with pytest.raises(UpstreamAddressRefused, match="refused"):
            await client.balance()
        with pytest.raises(UpstreamNotSent):  # it is a "not sent": the order may be re-queued
            await client.add(1, {"link": "https://x.test/p"})
    assert panel.count == 0


async def test_resolution_failure_is_not_sent() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    panel = FakePanel({"balance": "1"})
    async with _client(panel, resolver) as client:
        with pytest.raises(UpstreamNotSent, match="resolve"):
            await client.add(1, {"link": "https://x.test/p"})
    assert panel.count == 0


async def test_a_public_verdict_is_cached_for_its_ttl() -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"]

    clock = FakeClock()
    guard = HostGuard(resolver, ttl=60, clock=clock)
    await guard.check("panel.example.com", 443)
    await guard.check("panel.example.com", 443)
    assert len(calls) == 1
    clock.advance(61)
    await guard.check("panel.example.com", 443)
    assert len(calls) == 2


async def test_allow_private_skips_resolution() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("must not resolve")

    panel = FakePanel({"balance": "1"})
    async with _client(panel, resolver, replace(FAST, allow_private=True)) as client:
        assert (await client.balance()).balance == 1
    assert panel.count == 1


@pytest.mark.parametrize(
    ("peer", "refused"),
    [
        (("127.0.0.1", 80), True),
        (("::1", 80, 0, 0), True),
        (("10.1.2.3", 443), True),
        (("93.184.216.34", 443), False),
        (None, False),
        ("not an address", False),
    ],
)
def test_the_connect_time_peer_check(peer: Any, refused: bool) -> None:
    if refused:
        with pytest.raises(UpstreamAddressRefused):
            check_peer_address(peer)
    else:
        check_peer_address(peer)


async def test_the_trace_hook_closes_and_refuses_a_connection_to_a_private_peer() -> None:
    class Stream:
        closed = False

        def get_extra_info(self, name: str) -> Any:
            return ("127.0.0.1", 443) if name == "server_addr" else None

        async def aclose(self) -> None:
            self.closed = True

    stream = Stream()
    phase = AttemptPhase(check_peer=True)
    await phase.trace("connection.connect_tcp.started", {})
    with pytest.raises(UpstreamAddressRefused):
        await phase.trace("connection.connect_tcp.complete", {"return_value": stream})
    assert stream.closed
    assert phase.proven_not_sent
