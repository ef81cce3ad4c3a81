"""The adapter's transport (aiohttp under httpx) against real sockets: which failures prove the
request never left ("not sent", safe to send again) and which do not ("unknown", never re-sent),
at each phase of an exchange. tests/upstream/test_failures.py covers the same classes through a
MockTransport; this proves the real transport raises them."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import httpx
import pytest

from gateway.upstream import AttemptRecord, UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnknown
from gateway.upstream.transport import PanelTransport

LOOPBACK = UpstreamConfig(
    allow_private=True,
    deadline=3.0,
    connect_timeout=0.5,
    pool_timeout=0.5,
    read_timeout=2.0,
    backoff_base=0.001,
    backoff_max=0.002,
    write_attempts=3,
)
ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"order": 42}'


class Panel(asyncio.Protocol):
    """One server connection; ``on_request`` decides what to do once a whole request arrived."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections += 1
        if self.server.on_connect is not None:
            self.server.on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        if sep and len(body) >= length:
            self.buffer = b""
            self.server.requests += 1
            self.server.on_request(self)

    def reset(self) -> None:
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        self.transport.close()


class Server:
    def __init__(self, on_request: Callable[[Panel], None], on_connect: Callable[[Panel], None] | None = None) -> None:
        self.on_request = on_request
        self.on_connect = on_connect
        self.connections = 0
        self.requests = 0
        self.url = ""


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(on_request: Callable[[Panel], None], on_connect: Callable[[Panel], None] | None = None) -> Server:
        state = Server(on_request, on_connect)
        server = await asyncio.get_running_loop().create_server(lambda: Panel(state), "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v2"
        return state

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def _client(url: str, records: list[AttemptRecord], **config: object) -> UpstreamClient:
    return UpstreamClient("t", url, "k", config=replace(LOOPBACK, **config), observer=records.append)  # type: ignore[arg-type]


async def _add(client: UpstreamClient) -> int:
    return await client.add(1, {"link": "https://x.test/p", "quantity": "100"})


def test_aiohttp_never_resends_a_post_on_a_dropped_connection() -> None:
    """aiohttp retries a request on a dropped keep-alive connection for idempotent methods only;
    every adapter call is a POST. An upgrade that changed this would re-send writes."""
    assert "POST" not in aiohttp.client.IDEMPOTENT_METHODS


async def test_an_answer_on_a_kept_connection(serve: Callable[..., asyncio.Future[Server]]) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert [await _add(client) for _ in range(3)] == [42, 42, 42]
    assert (server.connections, server.requests) == (1, 3)


async def test_a_connection_closed_before_the_request_is_unknown_and_not_resent(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """Closed by the server as soon as it is accepted: once a connection exists the request may
    have been written, so the transport cannot prove it never left."""
    server = await serve(lambda panel: None, on_connect=lambda panel: panel.transport.close())
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        with pytest.raises(UpstreamUnknown):
            await _add(client)
    assert [r.outcome for r in records] == ["unknown"]
    assert server.connections == 1


async def test_a_reset_after_the_request_arrived_is_unknown_and_not_resent(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(Panel.reset)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        with pytest.raises(UpstreamUnknown):
            await _add(client)
    assert [r.outcome for r in records] == ["unknown"]
    assert (server.connections, server.requests) == (1, 1)


async def test_a_close_mid_answer_is_unknown(serve: Callable[..., asyncio.Future[Server]]) -> None:
    def half(panel: Panel) -> None:
        panel.transport.write(ANSWER[:-5])  # type: ignore[attr-defined]
        panel.transport.close()

    server = await serve(half)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        with pytest.raises(UpstreamUnknown):
            await _add(client)
    assert server.requests == 1


async def test_a_read_timeout_is_unknown_and_not_resent(serve: Callable[..., asyncio.Future[Server]]) -> None:
    server = await serve(lambda panel: None)  # reads the request, never answers
    records: list[AttemptRecord] = []
    async with _client(server.url, records, read_timeout=0.2) as client:
        with pytest.raises(UpstreamUnknown, match="ReadTimeout"):
            await _add(client)
    assert [r.outcome for r in records] == ["unknown"]
    assert server.requests == 1


async def test_a_connect_timeout_is_not_sent_and_retried() -> None:
    """A listener whose accept queue is full drops new SYNs (Linux): the connect never completes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (its length is backlog + 1 on Linux)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            records: list[AttemptRecord] = []
            async with _client(f"http://127.0.0.1:{port}/api/v2", records, connect_timeout=0.2, write_attempts=2) as c:
                with pytest.raises(UpstreamNotSent, match="ConnectTimeout"):
                    await _add(c)
            assert [r.outcome for r in records] == ["not_sent", "not_sent"]
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.parametrize("encoding", ["gzip", "chunked"])
async def test_a_compressed_or_chunked_answer_is_read_whole(
    serve: Callable[..., asyncio.Future[Server]], encoding: str
) -> None:
    body = b'{"order": 77}'
    if encoding == "gzip":
        packed = gzip.compress(body)
        head = b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    else:
        packed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:])) + b"0\r\n\r\n"
        head = b"Transfer-Encoding: chunked\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + head + packed
    server = await serve(lambda panel: panel.transport.write(answer))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert await _add(client) == 77
        assert await _add(client) == 77  # and the connection is still good for the next one
    assert server.connections == 1


async def test_the_trace_says_sending_may_start_only_once_there_is_a_connection(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """What AttemptPhase reads to call a deadline "not sent": the send event comes only with a
    connection (new or reused), never for an attempt that could not connect."""
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    transport = PanelTransport(max_connections=2, keepalive_expiry=4.0)
    try:
        for url, expected in (
            (server.url, ["connection.connect_tcp.started", "http11.send_request_headers.started"]),
            (server.url, ["connection.connect_tcp.started", "http11.send_request_headers.started"]),  # reused
            (f"http://127.0.0.1:{closed_port}/api/v2", ["connection.connect_tcp.started"]),
        ):
            events: list[str] = []

            async def trace(event: str, info: dict[str, object], events: list[str] = events) -> None:
                events.append(event)

            request = httpx.Request("POST", url, content=b"a=1", extensions={"trace": trace, "timeout": {}})
            try:
                response = await transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
            except httpx.ConnectError:
                pass
            assert events == expected
    finally:
        await transport.aclose()
    assert server.connections == 1


async def test_closing_an_answer_twice_frees_its_slot_once(serve: Callable[..., asyncio.Future[Server]]) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    transport = PanelTransport(max_connections=1, keepalive_expiry=4.0)
    try:
        response = await transport.handle_async_request(httpx.Request("POST", server.url, content=b"a=1"))
        await response.aread()
        await response.stream.aclose()  # type: ignore[union-attr]
        await response.stream.aclose()  # type: ignore[union-attr]
        assert transport._slots._value == 1
    finally:
        await transport.aclose()


async def test_an_answer_a_wrapping_transport_has_already_read_is_read_from_httpx(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """A transport may hand back a response it has read itself (tests wrap the real one so)."""

    class ReadsFirst(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = PanelTransport(max_connections=2, keepalive_expiry=4.0)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    config = replace(LOOPBACK, deadline=1.0)
    async with UpstreamClient("t", server.url, "k", config=config, transport=ReadsFirst()) as client:
        assert await _add(client) == 42


async def test_a_runtime_error_once_connected_is_a_read_error(serve: Callable[..., asyncio.Future[Server]]) -> None:
    """The adapter reads a RuntimeError about something "closed" as "not sent" (a closed client):
    once a connection was handed over, the transport reports it as a read error instead."""
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]

    async def trace(event: str, info: dict[str, object]) -> None:
        if "send_request_headers" in event:
            raise RuntimeError("unable to write: the handler is closed")

    transport = PanelTransport(max_connections=1, keepalive_expiry=4.0)
    try:
        request = httpx.Request("POST", server.url, content=b"a=1", extensions={"trace": trace, "timeout": {}})
        with pytest.raises(httpx.ReadError):
            await transport.handle_async_request(request)
        assert transport._slots._value == 1
    finally:
        await transport.aclose()
