"""CPU per request of the HTTP clients the upstream adapter could stand on, in one run.

Each candidate POSTs the same url-encoded ``add`` form to the same loopback panel
(tests/bench/panel.py, a separate process answering at once) from a bare loop, with 1 and with 16
requests in flight, and reports the client process' CPU time per request (``time.process_time``:
robust against whatever else the machine is doing, unlike wall time). It first shows what the
adapter makes of a connection reset after the request arrived on each candidate transport (a
transport that reports it as "never sent" makes the adapter send the order again).
docs/BENCHMARKS.md records the figures and the choice.

    python -m tests.bench.clients [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp
import httpx

from gateway.upstream import UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnknown
from gateway.upstream.transport import PanelTransport
from tests.bench import harness

FORM = {"key": "bench-key", "action": "add", "service": "1", "link": "https://example.com/p", "quantity": "100"}
Send = Callable[[], Awaitable[Any]]
CONFIG = UpstreamConfig(allow_private=True, max_connections=16)


@contextlib.asynccontextmanager
async def httpx_default(url: str) -> AsyncIterator[Send]:
    """httpx's own transport (httpcore on anyio), configured as the adapter had it."""
    async with _client(httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=16))) as http:
        yield lambda: _httpx_post(http, url)


@contextlib.asynccontextmanager
async def httpx_aiohttp(url: str) -> AsyncIterator[Send]:
    """httpx over httpx-aiohttp's AiohttpTransport (measured, not used: see docs/BENCHMARKS.md)."""
    from httpx_aiohttp import AiohttpTransport

    transport = AiohttpTransport(trust_env=False, limits=httpx.Limits(max_connections=16))
    async with _client(transport) as http:
        yield lambda: _httpx_post(http, url)


@contextlib.asynccontextmanager
async def httpx_panel(url: str) -> AsyncIterator[Send]:
    """httpx.AsyncClient over the adapter's PanelTransport (its own pool, httptools' parser)."""
    async with _client(PanelTransport(max_connections=16, keepalive_expiry=4.0)) as http:
        yield lambda: _httpx_post(http, url)


@contextlib.asynccontextmanager
async def transport_direct(url: str) -> AsyncIterator[Send]:
    """An httpx.Request handed to PanelTransport directly, without httpx.AsyncClient: what the
    client's own machinery (auth and redirect loops, cookies, header and URL merging) costs."""
    transport = PanelTransport(max_connections=16, keepalive_expiry=4.0)
    target = httpx.URL(url)
    headers = httpx.Headers({"User-Agent": "bench", "Content-Type": "application/x-www-form-urlencoded"})
    body = urlencode(FORM).encode()
    timeout = httpx.Timeout(5.0).as_dict()

    async def send() -> bytes:
        request = httpx.Request("POST", target, headers=headers, content=body, extensions={"timeout": timeout})
        response = await transport.handle_async_request(request)
        try:
            return b"".join([chunk async for chunk in response.aiter_bytes()])
        finally:
            await response.aclose()

    try:
        yield send
    finally:
        await transport.aclose()


@contextlib.asynccontextmanager
async def adapter_panel(url: str) -> AsyncIterator[Send]:
    """The whole adapter (``UpstreamClient.add``: deadline, breaker, parsing) on PanelTransport, as
    the gateway runs it."""
    async with UpstreamClient(1, url, "bench-key", config=CONFIG) as client:
        yield lambda: client.add(1, {"link": "https://example.com/p", "quantity": "100"})


@contextlib.asynccontextmanager
async def adapter_httpcore(url: str) -> AsyncIterator[Send]:
    """The whole adapter on httpx's own transport (the gateway before used it through an
    httpx.AsyncClient, a little dearer still)."""
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=16))
    async with UpstreamClient(1, url, "bench-key", config=CONFIG, transport=transport) as client:
        yield lambda: client.add(1, {"link": "https://example.com/p", "quantity": "100"})


@contextlib.asynccontextmanager
async def aiohttp_plain(url: str) -> AsyncIterator[Send]:
    """aiohttp alone (the adapter's transport until issue 15: it stood on aiohttp's ClientSession)."""
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> bytes:
            async with session.post(url, data=FORM) as response:
                return await response.read()

        yield send


class _RawExchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, the answer parsed by httptools (which uvicorn brings):
    what an HTTP exchange costs with no client library at all."""

    def __init__(self) -> None:
        import httptools

        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[bytes] | None = None
        self.body = bytearray()
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(bytes(self.body))
        self.body.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("closed"))


@contextlib.asynccontextmanager
async def raw_protocol(url: str) -> AsyncIterator[Send]:
    """No HTTP library: an asyncio protocol per connection, kept alive, httptools' parser. The
    floor under any client (not a candidate: none of the adapter's guarantees)."""
    target = httpx.URL(url)
    loop = asyncio.get_running_loop()
    body = urlencode(FORM).encode()
    request = (
        f"POST {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: list[_RawExchange] = []

    async def send() -> bytes:
        if idle:
            conn = idle.pop()
        else:
            _, conn = await loop.create_connection(_RawExchange, target.host, target.port)
        assert conn.transport is not None
        conn.answer = loop.create_future()
        conn.transport.write(request)
        answer = await conn.answer
        idle.append(conn)
        return answer

    try:
        yield send
    finally:
        for conn in idle:
            if conn.transport is not None:
                conn.transport.close()


def _client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """An httpx.AsyncClient as the adapter configured one before (no redirects, no environment)."""
    timeout = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


async def _httpx_post(http: httpx.AsyncClient, url: str) -> bytes:
    response = await http.post(url, data=FORM)
    return response.content


CANDIDATES = {
    "httpx (httpcore)": httpx_default,
    "httpx + httpx-aiohttp AiohttpTransport": httpx_aiohttp,
    "httpx + PanelTransport": httpx_panel,
    "httpx.Request straight to PanelTransport (no AsyncClient)": transport_direct,
    "aiohttp": aiohttp_plain,
    "adapter add, on httpcore": adapter_httpcore,
    "adapter add, PanelTransport": adapter_panel,
    "no client library: asyncio protocol + httptools' parser (the floor)": raw_protocol,
}


class _ResetAfterRequest(asyncio.Protocol):
    """A panel that reads a whole request, then resets the connection (RST): the request arrived."""

    def __init__(self, arrived: list[int]) -> None:
        self.arrived = arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.arrived.append(1)
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.transport.close()


async def reset_after_request() -> dict[str, str]:
    """What the adapter makes of an ``add`` whose connection is reset after the request arrived,
    on each candidate transport, and how many requests reached the panel (more than one: the
    order was placed again)."""
    from httpx_aiohttp import AiohttpTransport

    arrived: list[int] = []
    server = await asyncio.get_running_loop().create_server(lambda: _ResetAfterRequest(arrived), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v2"
    config = UpstreamConfig(allow_private=True, write_attempts=3, backoff_base=0.001, backoff_max=0.002)
    candidates: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
        "httpx (httpcore)": httpx.AsyncHTTPTransport,
        "httpx-aiohttp AiohttpTransport": lambda: AiohttpTransport(trust_env=False),
        "PanelTransport": lambda: PanelTransport(max_connections=16, keepalive_expiry=4.0),
    }
    results = {}
    try:
        for name, make in candidates.items():
            arrived.clear()
            async with UpstreamClient(1, url, "bench-key", config=config, transport=make()) as client:
                try:
                    await client.add(1, {"link": "https://example.com/p", "quantity": "100"})
                    outcome = "placed"
                except (UpstreamNotSent, UpstreamUnknown) as exc:
                    outcome = f"{type(exc).__name__} ({exc.message})"
            results[name] = f"{outcome}; requests that reached the panel: {len(arrived)}"
    finally:
        server.close()
    return results


async def measure(factory: Callable[[str], Any], url: str, requests: int, concurrency: int) -> float:
    """Microseconds of this process' CPU per request."""
    async with factory(url) as send:
        for _ in range(50):  # connections open, caches warm
            await send()
        per_worker = requests // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                await send()

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return 1e6 * (time.process_time() - started) / (per_worker * concurrency)


async def run(url: str, requests: int, rounds: int) -> dict[str, dict[int, float]]:
    for name, outcome in (await reset_after_request()).items():
        print(f"reset after the request arrived, write_attempts=3: {name}: {outcome}")
    results: dict[str, dict[int, float]] = {name: {} for name in CANDIDATES}
    for _ in range(rounds):  # interleaved rounds, best of each: interference only adds CPU
        for name, factory in CANDIDATES.items():
            for concurrency in (1, 16):
                value = await measure(factory, url, requests, concurrency)
                best = results[name].get(concurrency)
                results[name][concurrency] = value if best is None else min(best, value)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    port = harness.free_port()
    panel = harness.Process(
        "panel", [sys.executable, "-m", "tests.bench.panel", "--port", str(port)], harness.base_env(), None
    )
    try:
        panel.wait_ready_tcp(port)
        try:
            import uvloop
        except ImportError:
            results = asyncio.run(run(f"http://127.0.0.1:{port}/api/v2", args.requests, args.rounds))
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results = runner.run(run(f"http://127.0.0.1:{port}/api/v2", args.requests, args.rounds))
    finally:
        panel.stop()
    print(f"CPU µs per request of the client process ({args.requests} POSTs, best of {args.rounds}; pid {os.getpid()})")
    print("| client | 1 in flight | 16 in flight |")
    print("|---|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {values[1]:,.0f} | {values[16]:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
