"""The adapter's transport (aiohttp under httpx) against real sockets: which failures prove the
request never left ("not sent", safe to send again) and which do not ("unknown", never re-sent),
at each phase of an exchange. tests/upstream/test_failures.py covers the same classes through a
MockTransport; this proves the real transport raises them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import pytest

from gateway.upstream import AttemptRecord, UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnknown

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
