"""Every failure class of PROTOCOL.md section 5, and what may be sent again after it.

The transport counts the requests it saw: reads are retried, writes are never re-sent once the
request may have arrived.
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.upstream import (
    RejectReason,
    UpstreamClient,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
)
from tests.upstream.helpers import FakePanel, make_client

STATUS_OK = {"status": "Completed", "charge": "1.00", "start_count": "0", "remains": "0", "currency": "USD"}


def _raise(exc_type: type[httpx.TransportError], message: str = "boom") -> Callable[[httpx.Request], Any]:
    def fail(request: httpx.Request) -> Any:
        return exc_type(message, request=request)

    return fail


async def _drip(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"order": '
        for _ in range(100):
            await asyncio.sleep(0.02)  # each read is quick: only the overall deadline catches it
            yield b" "
        yield b"1}"

    return httpx.Response(200, content=body())


NOT_SENT: dict[str, Any] = {
    "connect error": _raise(httpx.ConnectError, "[Errno 111] Connection refused"),
    "connect timeout": _raise(httpx.ConnectTimeout),
    "pool timeout": _raise(httpx.PoolTimeout),
}

UNKNOWN: dict[str, Any] = {
    "read timeout": _raise(httpx.ReadTimeout),
    "write timeout": _raise(httpx.WriteTimeout),
    "reset": _raise(httpx.ReadError, "[Errno 104] Connection reset by peer"),
    "server disconnected": _raise(httpx.RemoteProtocolError, "Server disconnected without sending a response."),
    "http 500": httpx.Response(500, text="Internal Server Error"),
    "http 502 html": httpx.Response(502, html="<html><body>Bad gateway</body></html>"),
    "http 503 json error": httpx.Response(503, json={"error": "maintenance"}),
    "html page": httpx.Response(200, html="<!DOCTYPE html><html><body>Cloudflare</body></html>"),
    "empty body": httpx.Response(200, content=b""),
    "whitespace body": httpx.Response(200, content=b" \n "),
    "malformed json": httpx.Response(200, content=b'{"order": 12'),
    "php notice before json": httpx.Response(200, content=b'Notice: Undefined index\n{"order": 1}'),
    "unreadable shape": httpx.Response(200, json={"result": "ok"}),
    "redirect": httpx.Response(302, headers={"Location": "https://elsewhere.example/"}),
    "http 403 waf page": httpx.Response(403, html="<h1>Access denied</h1>"),
    "http 429 text": httpx.Response(429, text="Too Many Requests"),
}

WRITES: dict[str, Callable[[UpstreamClient], Awaitable[Any]]] = {
    "add": lambda c: c.add(1, {"link": "https://x.test/p", "quantity": "100"}),
    "refill": lambda c: c.refill(5),
    "refills": lambda c: c.refills([5, 6]),
    "cancel": lambda c: c.cancel([5]),
}

READS: dict[str, Callable[[UpstreamClient], Awaitable[Any]]] = {
    "status": lambda c: c.status(5),
    "statuses": lambda c: c.statuses([5]),
    "services": lambda c: c.services(),
    "refill_status": lambda c: c.refill_status(5),
    "refill_statuses": lambda c: c.refill_statuses([5]),
    "balance": lambda c: c.balance(),
}


@pytest.mark.parametrize("failure", sorted(UNKNOWN))
@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_write_that_may_have_arrived_is_unknown_and_never_resent(write: str, failure: str) -> None:
    panel = FakePanel(UNKNOWN[failure], {"order": 1, "refill": 1, "cancel": 1})
    async with make_client(panel, write_attempts=5) as client:
        with pytest.raises(UpstreamUnknown):
            await WRITES[write](client)
    assert panel.count == 1


@pytest.mark.parametrize("failure", sorted(NOT_SENT))
async def test_a_write_that_never_left_is_retried(failure: str) -> None:
    panel = FakePanel(NOT_SENT[failure], {"order": 23501})
    async with make_client(panel, write_attempts=2) as client:
        assert await client.add(1, {"link": "https://x.test/p", "quantity": "100"}) == 23501
    assert panel.count == 2


@pytest.mark.parametrize("failure", sorted(NOT_SENT))
async def test_a_write_that_never_leaves_is_not_sent_after_its_attempts(failure: str) -> None:
    panel = FakePanel(NOT_SENT[failure])
    async with make_client(panel, write_attempts=3) as client:
        with pytest.raises(UpstreamNotSent) as caught:
            await client.add(1, {"link": "https://x.test/p", "quantity": "100"})
    assert panel.count == 3
    assert type(caught.value) is UpstreamNotSent


@pytest.mark.parametrize("failure", sorted(UNKNOWN.keys() | NOT_SENT.keys()))
async def test_a_read_is_retried_after_any_transport_failure(failure: str) -> None:
    answer = UNKNOWN.get(failure) or NOT_SENT[failure]
    panel = FakePanel(answer, answer, STATUS_OK)
    async with make_client(panel, read_attempts=3) as client:
        result = await client.status(5)
    assert result.raw_status == "Completed"
    assert panel.count == 3


@pytest.mark.parametrize("read", sorted(READS))
async def test_a_read_gives_up_after_its_attempts(read: str) -> None:
    panel = FakePanel(_raise(httpx.ReadTimeout))
    async with make_client(panel, read_attempts=3) as client:
        with pytest.raises(UpstreamUnknown):
            await READS[read](client)
    assert panel.count == 3


async def test_a_slow_drip_is_cut_by_the_overall_deadline() -> None:
    panel = FakePanel(_drip)
    async with make_client(panel, deadline=0.2, connect_timeout=0.05, pool_timeout=0.05) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamUnknown, match="deadline"):
            await client.add(1, {"link": "https://x.test/p", "quantity": "100"})
        elapsed = asyncio.get_running_loop().time() - started
    assert panel.count == 1
    assert elapsed < 0.6


async def test_a_deadline_proven_before_sending_is_not_sent() -> None:
    """With httpcore's trace showing the connection was still being made, the deadline means
    "not sent" (so even a write may be retried)."""

    async def stuck_connecting(request: httpx.Request) -> httpx.Response:
        await request.extensions["trace"]("connection.connect_tcp.started", {})
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    async def sent_then_stuck(request: httpx.Request) -> httpx.Response:
        await request.extensions["trace"]("connection.connect_tcp.started", {})
        await request.extensions["trace"]("http11.send_request_headers.started", {})
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    fast = {"deadline": 0.1, "connect_timeout": 0.05, "pool_timeout": 0.05}
    panel = FakePanel(stuck_connecting, {"order": 7})
    async with make_client(panel, write_attempts=2, **fast) as client:
        assert await client.add(1, {"link": "https://x.test/p"}) == 7
    assert panel.count == 2

    panel = FakePanel(sent_then_stuck, {"order": 7})
    async with make_client(panel, write_attempts=2, **fast) as client:
        with pytest.raises(UpstreamUnknown):
            await client.add(1, {"link": "https://x.test/p"})
    assert panel.count == 1


async def test_an_oversized_answer_is_unknown() -> None:
    panel = FakePanel(httpx.Response(200, content=b"[" + b" " * 5000 + b"]"))
    async with make_client(panel, max_response_bytes=1000, read_attempts=1) as client:
        with pytest.raises(UpstreamUnknown, match="larger than"):
            await client.services()


def _streamed(status: int, data: bytes, encoding: str) -> Callable[[httpx.Request], httpx.Response]:
    """An answer streamed in 64 KiB pieces, as a transport hands it over (httpx reads and decodes
    an answer given as bytes itself)."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    return lambda request: httpx.Response(status, content=pieces(), headers={"Content-Encoding": encoding})


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(wbits=wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(b'{"order": 7}')),
        ("x-gzip", gzip.compress(b'{"order": 7}')),
        ("deflate", _deflate(b'{"order": 7}', zlib.MAX_WBITS)),  # zlib-wrapped, as the spec says
        ("deflate", _deflate(b'{"order": 7}', -zlib.MAX_WBITS)),  # raw, as some servers send it
        ("identity", b'{"order": 7}'),
    ],
)
async def test_a_compressed_answer_is_read(encoding: str, packed: bytes) -> None:
    panel = FakePanel(_streamed(200, packed, encoding))
    async with make_client(panel) as client:
        assert await client.add(1, {"link": "https://x.test/p"}) == 7


async def test_a_compression_bomb_is_unknown_without_inflating_it() -> None:
    """64 MiB of JSON whitespace in 64 KiB of gzip: refused at the size limit, having inflated no
    more than the limit (httpx's own decoder would inflate each piece whole first)."""
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    panel = FakePanel(_streamed(200, bomb, "gzip"))
    async with make_client(panel, max_response_bytes=1024 * 1024, read_attempts=1) as client:
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamUnknown, match="larger than"):
                await client.services()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


@pytest.mark.parametrize(
    ("encoding", "packed", "match"),
    [
        ("gzip", b"this is not gzip", "corrupt gzip"),
        ("deflate", b"\xff\xfe not deflate either", "corrupt deflate"),
        ("br", b"\x0b\x02\x80{}\x03", "encoding not asked for"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), "encoding not asked for"),
    ],
)
async def test_an_answer_that_cannot_be_decoded_is_unknown_and_not_resent(
    encoding: str, packed: bytes, match: str
) -> None:
    panel = FakePanel(_streamed(200, packed, encoding))
    async with make_client(panel) as client:
        with pytest.raises(UpstreamUnknown, match=match):
            await client.add(1, {"link": "https://x.test/p"})
    assert panel.count == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Incorrect link", RejectReason.INPUT),
        ("Quantity less than minimal 10", RejectReason.INPUT),
        ("quantity more than maximal 10000", RejectReason.INPUT),
        ("Incorrect service ID", RejectReason.SERVICE),
        ("Service is disabled", RejectReason.SERVICE),
        ("You have active order with this link. Please wait until order being completed.", RejectReason.INPUT),
        ("Incorrect comments", RejectReason.INPUT),
        ("Not enough funds on balance", RejectReason.PROVIDER),
        ("Invalid API key", RejectReason.PROVIDER),
        ("incorrect api KEY", RejectReason.PROVIDER),
        ("Spam protection, wait 7 seconds", RejectReason.PROVIDER),
        ("Too many requests, try again later", RejectReason.PROVIDER),
        ("Incorrect request", RejectReason.PROVIDER),
        ("Service temporarily unavailable, try again later", RejectReason.PROVIDER),
        ("Something odd happened", RejectReason.OTHER),
    ],
)
async def test_a_top_level_error_is_a_classified_rejection_sent_once(message: str, reason: RejectReason) -> None:
    panel = FakePanel({"error": message})
    async with make_client(panel, write_attempts=3, read_attempts=3) as client:
        with pytest.raises(UpstreamRejected) as caught:
            await client.add(1, {"link": "https://x.test/p", "quantity": "100"})
        assert caught.value.message == message
        assert caught.value.reason is reason
        with pytest.raises(UpstreamRejected):
            await client.balance()  # reads are not retried on a rejection either
    assert panel.count == 2


@pytest.mark.parametrize("status_code", [400, 401, 403, 422])
async def test_a_4xx_with_a_json_error_is_a_rejection(status_code: int) -> None:
    panel = FakePanel(httpx.Response(status_code, json={"error": "Incorrect service ID"}))
    async with make_client(panel) as client:
        with pytest.raises(UpstreamRejected, match="Incorrect service ID"):
            await client.add(1, {"link": "https://x.test/p", "quantity": "100"})
    assert panel.count == 1


async def test_unknown_carries_a_short_excerpt_and_the_http_status() -> None:
    page = "<html><head><title>502</title></head><body>" + "x" * 1000 + "</body></html>"
    panel = FakePanel(httpx.Response(200, html=page))
    async with make_client(panel) as client:
        with pytest.raises(UpstreamUnknown) as caught:
            await client.add(1, {"link": "https://x.test/p", "quantity": "100"})
    assert caught.value.excerpt is not None
    assert caught.value.excerpt.startswith("<html><head><title>502")
    assert len(caught.value.excerpt) <= 200
    assert caught.value.http_status == 200
    assert "HTML" in caught.value.message


async def test_a_closed_client_is_not_sent() -> None:
    panel = FakePanel({"order": 1})
    client = make_client(panel)
    await client.aclose()
    with pytest.raises(UpstreamNotSent):
        await client.add(1, {"link": "https://x.test/p"})
    assert panel.count == 0
