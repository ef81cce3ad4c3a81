"""The provider's API key never appears in logs, exceptions, reprs, excerpts or observer records."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from urllib.parse import quote_plus

import httpx
import pytest

from gateway.upstream import AttemptRecord, ItemError, UpstreamError
from gateway.upstream.redact import ApiKey, excerpt
from tests.upstream.helpers import FakePanel, make_client

# Characters that change under URL encoding, so both spellings must be scrubbed.
KEY = "Zq9+secret/KEY=value&42"
ENCODED = quote_plus(KEY)


def _echo_request_in_error(request: httpx.Request) -> httpx.ConnectError:
    # httpx/httpcore messages can carry parts of the request; make the worst case explicit.
    return httpx.ConnectError(f"failed sending {request.content.decode()} to {request.url}", request=request)


def _leaks(text: str) -> bool:
    return KEY in text or ENCODED in text or KEY.lower() in text.lower()


def _encoding_echoing_the_key(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    return httpx.Response(200, content=body(), headers={"Content-Encoding": f"br, {KEY}"})


ANSWERS = {
    "transport error echoing the body": _echo_request_in_error,
    "read error echoing the body": lambda r: httpx.ReadError(r.content.decode(), request=r),
    "html page echoing the key": httpx.Response(200, html=f"<html>Bad key {KEY} / {ENCODED}</html>"),
    "500 echoing the key": httpx.Response(500, text=f"Fatal error: key={ENCODED}"),
    "top-level error echoing the key": {"error": f"Invalid API key {KEY}"},
    "unreadable json echoing the key": {"orders": KEY},
    "content encoding echoing the key": _encoding_echoing_the_key,
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_the_key_leaks_nowhere(answer: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    records: list[AttemptRecord] = []
    panel = FakePanel(ANSWERS[answer])
    async with make_client(panel, records=records, api_key=KEY, read_attempts=2) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.status(5, request_id="req-1")
        exc = caught.value
        assert not _leaks(str(exc))
        assert not _leaks(repr(exc))
        assert not _leaks("".join(traceback.format_exception(exc)))
        assert not _leaks(str(getattr(exc, "excerpt", "")))
        assert exc.__cause__ is None
        assert exc.__suppress_context__ or exc.__context__ is None
        assert not _leaks(repr(client))
        assert not _leaks(repr(vars(client)))
    assert records
    assert not any(_leaks(repr(r)) for r in records)
    assert not any(_leaks(r.getMessage()) for r in caplog.records)
    # ... while the key did go to the upstream, in the body only.
    assert panel.forms[0]["key"] == KEY
    assert not _leaks(str(panel.requests[0].url))
    assert not any(_leaks(v) for v in panel.requests[0].headers.values())


async def test_per_item_errors_are_scrubbed() -> None:
    panel = FakePanel({"1": {"error": f"bad key {KEY}"}, "2": KEY})
    async with make_client(panel, api_key=KEY) as client:
        result = await client.statuses([1, 2])
    assert all(isinstance(v, ItemError) and not _leaks(v.message) for v in result.values())


def test_the_api_key_wrapper_hides_its_value() -> None:
    key = ApiKey(KEY)
    assert KEY not in repr(key)
    assert KEY not in str(key)
    assert f"{key}" == "ApiKey(***)"
    assert key.reveal() == KEY
    assert key.scrub(f"a {KEY} b {ENCODED} c {KEY.upper()}") == "a *** b *** c ***"


def test_excerpt_scrubs_before_cutting() -> None:
    key = ApiKey("0123456789abcdef")
    text = "x" * 190 + "0123456789abcdef" + "y" * 100
    result = excerpt(text, key)
    assert "0123456789" not in result
    assert len(result) <= 200
    assert excerpt("  a\n\n  b\t", key) == "a b"
