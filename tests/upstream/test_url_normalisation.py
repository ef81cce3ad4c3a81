"""Provider URLs are normalised before they are checked and stored: scheme and host in lower case,
the rest as given; and a client still recognises a provider whose stored URL predates that."""

from __future__ import annotations

import pytest

from gateway.upstream import UnsafeUpstreamURL, UpstreamClient, UpstreamRegistry
from gateway.upstream.addresses import check_upstream_url, normalise_upstream_url
from tests.upstream.helpers import API_KEY

NORMALISED = [
    ("HTTP://Example.COM/api/v2", "http://example.com/api/v2"),
    ("  HTTPS://Panel.Example.com/API/V2?Key=AbC&Action=X  ", "https://panel.example.com/API/V2?Key=AbC&Action=X"),
    # The port stays as written, default or not.
    ("Http://EXAMPLE.com:80/A", "http://example.com:80/A"),
    ("https://Panel.Example.com:8443/x#Frag", "https://panel.example.com:8443/x#Frag"),
    ("HTTPS://[2001:4860:4860::8888]/Api", "https://[2001:4860:4860::8888]/Api"),
    ("https://BÜCHER.example/api", "https://bücher.example/api"),
    ("https://panel.example.com/api/v2", "https://panel.example.com/api/v2"),
]


@pytest.mark.parametrize(("given", "stored"), NORMALISED)
def test_scheme_and_host_are_lower_cased_and_the_rest_kept(given: str, stored: str) -> None:
    assert normalise_upstream_url(given) == stored
    assert check_upstream_url(given, allow_private=False) == stored
    assert check_upstream_url(stored, allow_private=False) == stored  # idempotent


def test_an_ipv6_zone_id_keeps_its_case() -> None:
    assert normalise_upstream_url("HTTP://[FE80::1%25Eth0]:8080/X") == "http://[fe80::1%25Eth0]:8080/X"


@pytest.mark.parametrize(
    "url", ["HTTP://LOCALHOST/", "HTTP://127.0.0.1/api", "HTTPS://Panel.LOCALHOST/", "HTTP://[::1]/"]
)
def test_upper_case_does_not_get_past_the_address_guard(url: str) -> None:
    with pytest.raises(UnsafeUpstreamURL):
        check_upstream_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["FTP://panel.example.com/", "panel.example.com/api", "HTTP:///api"])
def test_malformed_urls_stay_refused(url: str) -> None:
    with pytest.raises(UnsafeUpstreamURL):
        check_upstream_url(url, allow_private=True)


async def test_a_client_recognises_its_provider_however_the_url_is_cased() -> None:
    client = UpstreamClient(1, "HTTP://Panel.Example.COM/api/v2", API_KEY)
    try:
        assert client.api_url == "http://panel.example.com/api/v2"
        assert client.uses("http://panel.example.com/api/v2", API_KEY)
        # A row stored before URLs were normalised spells it as the operator typed it.
        assert client.uses("http://Panel.Example.COM/api/v2", API_KEY)
        assert client.uses(" HTTP://PANEL.example.com/api/v2 ", API_KEY)
        assert not client.uses("http://panel.example.com/API/v2", API_KEY)  # the path is case-sensitive
        assert not client.uses("http://other.example.com/api/v2", API_KEY)
        assert not client.uses("http://panel.example.com/api/v2", API_KEY + "x")
    finally:
        await client.aclose()


async def test_the_registry_keeps_one_client_for_an_unchanged_provider() -> None:
    registry = UpstreamRegistry()
    try:
        first = registry.client_for(7, "https://Panel.Example.COM/api/v2", API_KEY)
        assert registry.client_for(7, "https://Panel.Example.COM/api/v2", API_KEY) is first
        assert registry.client_for(7, "https://panel.example.com/api/v2", API_KEY) is first
        assert registry.client_for(7, "https://panel.example.com/api/v3", API_KEY) is not first
    finally:
        await registry.aclose()
