"""The adapter's transport (its own HTTP/1.1 pool under httpx) against real sockets: which failures prove the
request never left ("not sent", safe to send again) and which do not ("unknown", never re-sent),
at each phase of an exchange. tests/upstream/test_failures.py covers the same classes through a
MockTransport; this proves the real transport raises them."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.server
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import httpx
import pytest

from gateway.upstream import AttemptRecord, UpstreamClient, UpstreamConfig, UpstreamNotSent, UpstreamUnknown
from gateway.upstream.transport import PAUSE_READING_AT, PanelTransport

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


@contextlib.asynccontextmanager
async def _servers() -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(on_request: Callable[[Panel], None], on_connect: Callable[[Panel], None] | None = None) -> Server:
        state = Server(on_request, on_connect)
        server = await asyncio.get_running_loop().create_server(lambda: Panel(state), "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v2"
        return state

    try:
        yield start  # type: ignore[misc]
    finally:
        for server in servers:
            server.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    async with _servers() as start:
        yield start


def _client(url: str, records: list[AttemptRecord], **config: object) -> UpstreamClient:
    return UpstreamClient("t", url, "k", config=replace(LOOPBACK, **config), observer=records.append)  # type: ignore[arg-type]


async def _add(client: UpstreamClient) -> int:
    return await client.add(1, {"link": "https://x.test/p", "quantity": "100"})


async def test_a_kept_connection_reset_after_the_request_is_unknown_and_not_sent_again(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """The second request goes out on the kept-alive connection, which the upstream then resets:
    it may have acted on it, so the transport must not quietly send it again on a new one."""
    answered: list[int] = []

    def answer_once(panel: Panel) -> None:
        if answered:
            panel.reset()
        else:
            answered.append(1)
            panel.transport.write(ANSWER)  # type: ignore[attr-defined]

    server = await serve(answer_once)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert await _add(client) == 42
        with pytest.raises(UpstreamUnknown):
            await _add(client)
    assert [r.outcome for r in records] == ["ok", "unknown"]
    assert (server.connections, server.requests) == (1, 2)


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


# --- what the transport's own pool and parser do with what real servers send ------------------


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)


def _transport(client: UpstreamClient) -> PanelTransport:
    transport = client._http.transport
    assert isinstance(transport, PanelTransport)
    return transport


async def test_a_connection_the_upstream_closed_while_idle_is_not_used_again(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    def answer_and_close(panel: Panel) -> None:
        panel.transport.write(ANSWER)  # type: ignore[attr-defined]
        panel.transport.close()

    server = await serve(answer_and_close)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert await _add(client) == 42
        await _until(lambda: not _transport(client)._members, "the client saw the close")
        assert await _add(client) == 42
    assert (server.connections, server.requests) == (2, 2)


@pytest.mark.parametrize(
    "answer",
    [
        ANSWER.replace(b"Content-Length", b"Connection: close\r\nContent-Length"),
        b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"order": 42}',
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_the_connection_is_not_followed_by_a_second_request_on_it(
    serve: Callable[..., asyncio.Future[Server]], answer: bytes
) -> None:
    server = await serve(lambda panel: panel.transport.write(answer))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert [await _add(client) for _ in range(2)] == [42, 42]
    assert (server.connections, server.requests) == (2, 2)


async def test_an_answer_delimited_by_the_end_of_the_connection_is_read_whole(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    def old_style(panel: Panel) -> None:
        panel.transport.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"order":')  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_later(0.05, panel.transport.write, b" 42}")  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_later(0.1, panel.transport.close)

    server = await serve(old_style)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert await _add(client) == 42


async def test_an_answer_cut_by_a_reset_is_unknown_even_without_a_length(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    def old_style_reset(panel: Panel) -> None:
        panel.transport.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"order": 42}')  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_later(0.05, panel.reset)

    server = await serve(old_style_reset)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        with pytest.raises(UpstreamUnknown, match="ReadError"):
            await _add(client)


async def test_an_informational_answer_before_the_answer_is_skipped(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ANSWER))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert [await _add(client) for _ in range(2)] == [42, 42]
    assert (server.connections, server.requests) == (1, 2)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (70 * 1024), "head larger than"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: aaaaaaaa\r\n" * 5000, "head larger than"),
        (b"hello, this is not HTTP\r\n\r\n", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed answer"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", "HTTP 101"),
    ],
    ids=["huge-header", "many-headers", "not-http", "two-lengths", "negative-length", "upgrade"],
)
async def test_a_broken_answer_is_unknown_and_not_sent_again(
    serve: Callable[..., asyncio.Future[Server]], answer: bytes, match: str
) -> None:
    server = await serve(lambda panel: panel.transport.write(answer))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        with pytest.raises(UpstreamUnknown, match=match):
            await _add(client)
        assert not _transport(client)._idle  # its connection is not kept
    assert server.requests == 1


async def test_bytes_after_a_whole_answer_leave_the_connection_unused(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER + b"HTTP/1.1 200 OK\r\n"))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert [await _add(client) for _ in range(2)] == [42, 42]
    assert (server.connections, server.requests) == (2, 2)


async def test_a_body_that_stops_arriving_times_out_as_unknown(serve: Callable[..., asyncio.Future[Server]]) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER[:-5]))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records, read_timeout=0.2) as client:
        with pytest.raises(UpstreamUnknown, match="ReadTimeout"):
            await _add(client)
    assert [r.outcome for r in records] == ["unknown"]


async def test_a_slow_answer_within_the_read_timeout_between_reads_is_read(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """The read timeout is the longest silence, not the whole answer's time."""

    def trickle(panel: Panel) -> None:
        loop = asyncio.get_running_loop()
        for i in range(len(ANSWER)):
            loop.call_later(0.02 * i, panel.transport.write, ANSWER[i : i + 1])  # type: ignore[attr-defined]

    server = await serve(trickle)
    records: list[AttemptRecord] = []
    async with _client(server.url, records, read_timeout=0.25, deadline=5.0) as client:
        assert await _add(client) == 42


async def test_an_answer_larger_than_the_limit_is_unknown_and_its_connection_dropped(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    size = 8 * 1024 * 1024
    lost: list[int] = []

    def flood(panel: Panel) -> None:
        panel.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)  # type: ignore[attr-defined]
        panel.transport.write(b" " * size)  # type: ignore[attr-defined]

    def watch(panel: Panel) -> None:
        panel.connection_lost = lambda exc: lost.append(1)  # type: ignore[method-assign]

    server = await serve(flood, on_connect=watch)
    records: list[AttemptRecord] = []
    async with _client(server.url, records, max_response_bytes=64 * 1024) as client:
        with pytest.raises(UpstreamUnknown, match="larger than"):
            await _add(client)
        await _until(lambda: bool(lost), "the connection was dropped")
        assert not _transport(client)._members


async def test_never_more_connections_than_the_limit(serve: Callable[..., asyncio.Future[Server]]) -> None:
    def later(panel: Panel) -> None:
        asyncio.get_running_loop().call_later(0.01, panel.transport.write, ANSWER)  # type: ignore[attr-defined]

    server = await serve(later)
    records: list[AttemptRecord] = []
    async with _client(server.url, records, max_connections=3, pool_timeout=2.0, deadline=5.0) as client:
        assert await asyncio.gather(*(_add(client) for _ in range(30))) == [42] * 30
        assert len(_transport(client)._idle) <= 3
    assert server.requests == 30
    assert server.connections <= 3


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    def later(panel: Panel) -> None:
        asyncio.get_running_loop().call_later(0.02, panel.transport.write, ANSWER)  # type: ignore[attr-defined]

    server = await serve(later)
    records: list[AttemptRecord] = []
    async with _client(server.url, records, max_connections=4, max_keepalive_connections=1) as client:
        assert await asyncio.gather(*(_add(client) for _ in range(4))) == [42] * 4
        assert len(_transport(client)._idle) == 1
        await _until(lambda: len(_transport(client)._members) == 1, "the others were closed")
    assert server.connections == 4


async def test_an_idle_connection_past_its_expiry_is_closed_and_replaced(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records, keepalive_expiry=0.05) as client:
        assert await _add(client) == 42
        await _until(lambda: not _transport(client)._members, "the idle connection expired")
        assert await _add(client) == 42
    assert (server.connections, server.requests) == (2, 2)


async def test_a_header_that_would_split_the_request_is_never_sent(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    async with _client(server.url, records, user_agent="gw\r\nX-Injected: 1") as client:
        with pytest.raises(UpstreamUnknown, match="split the request"):
            await _add(client)
    assert (server.connections, server.requests) == (0, 0)


async def test_a_closed_transport_refuses_new_requests_as_not_sent(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    transport = PanelTransport(max_connections=1, keepalive_expiry=4.0)
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("POST", server.url, content=b"a=1"))
    assert server.connections == 0


async def test_an_answer_in_flight_when_the_transport_closes_is_unknown(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: None)  # never answers
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        pending = asyncio.ensure_future(_add(client))
        await _until(lambda: server.requests == 1, "the request arrived")
        await _transport(client).aclose()
        with pytest.raises(UpstreamUnknown):
            await pending
    assert server.requests == 1


@pytest.fixture(scope="module")
def authority() -> object:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


async def test_tls_answers_are_read_and_an_untrusted_certificate_is_not_sent(
    serve_tls: Callable[..., asyncio.Future[Server]], authority: object
) -> None:
    server = await serve_tls(lambda panel: panel.transport.write(ANSWER))  # type: ignore[attr-defined]
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)  # type: ignore[attr-defined]
    records: list[AttemptRecord] = []
    transport = PanelTransport(max_connections=2, keepalive_expiry=4.0, tls_context=trusting)
    async with UpstreamClient("t", server.url, "k", config=LOOPBACK, transport=transport, observer=records.append) as c:
        assert [await _add(c) for _ in range(2)] == [42, 42]
    assert (server.connections, server.requests) == (1, 2)

    # The default context trusts the public authorities only (certifi, nothing from the environment).
    async with _client(server.url, records, write_attempts=1) as client:
        with pytest.raises(UpstreamNotSent, match=r"ConnectError.*CERTIFICATE_VERIFY_FAILED"):
            await _add(client)
    assert server.requests == 2


@pytest.fixture
async def serve_tls(authority: object) -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)  # type: ignore[attr-defined]
    servers: list[asyncio.Server] = []

    async def start(on_request: Callable[[Panel], None]) -> Server:
        state = Server(on_request)
        server = await asyncio.get_running_loop().create_server(lambda: Panel(state), "127.0.0.1", 0, ssl=context)
        servers.append(server)
        state.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v2"
        return state

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


async def test_a_connection_left_with_its_reading_paused_is_not_kept(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """A large answer stops the socket being read until its reader catches up; if the reader
    gives up instead (a deadline), the connection must not serve the next request, whose answer
    would never be read."""
    big = PAUSE_READING_AT + 100
    served: list[int] = []

    def answer(panel: Panel) -> None:
        served.append(1)
        if len(served) == 1:
            panel.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % big + b" " * big)  # type: ignore[attr-defined]
        else:
            panel.transport.write(ANSWER)  # type: ignore[attr-defined]

    server = await serve(answer)
    transport = PanelTransport(max_connections=1, keepalive_expiry=30.0)
    timeouts = {"timeout": {"read": 2.0, "connect": 1.0, "pool": 1.0}}
    try:
        response = await transport.handle_async_request(
            httpx.Request("POST", server.url, content=b"a=1", extensions=timeouts)
        )
        connection = next(iter(transport._members))
        await _until(lambda: connection.complete, "the whole answer arrived unread")
        assert connection.paused
        await response.aclose()  # never read
        assert not transport._idle
        second = await transport.handle_async_request(
            httpx.Request("POST", server.url, content=b"a=1", extensions=timeouts)
        )
        assert await second.aread() == b'{"order": 42}'
        await second.aclose()
    finally:
        await transport.aclose()
    assert server.connections == 2


async def test_bytes_waiting_on_an_idle_connection_are_never_taken_for_the_next_answer(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """An upstream (or a proxy) that sends an answer twice: the copy lands on the idle connection
    before the loop reads it. The next request must not take it for its own answer (it would be
    an earlier order's id): the connection is dropped and the request goes on a new one."""
    panels: list[Panel] = []
    numbers = iter(range(42, 100))

    def answer(panel: Panel) -> None:
        body = b'{"order": %d}' % next(numbers)
        panel.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # type: ignore[attr-defined]

    server = await serve(answer, on_connect=panels.append)
    records: list[AttemptRecord] = []
    async with _client(server.url, records) as client:
        assert await _add(client) == 42
        # The copy goes out now; nothing yields to the loop before the next add takes the
        # connection, so the bytes are still in the socket, unread.
        panels[0].transport.write(b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"order": 42}')  # type: ignore[attr-defined]
        time.sleep(0.05)
        assert await _add(client) == 43
    assert (server.connections, server.requests) == (2, 2)


async def test_an_answer_ended_by_the_connection_is_not_complete_when_the_gateway_closed_it(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(lambda panel: panel.transport.write(b'HTTP/1.0 200 OK\r\n\r\n{"balance": "12'))  # type: ignore[attr-defined]
    transport = PanelTransport(max_connections=1, keepalive_expiry=30.0)
    response = await transport.handle_async_request(
        httpx.Request("POST", server.url, content=b"a=1", extensions={"timeout": {"read": 5.0}})
    )
    asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(transport.aclose()))
    with pytest.raises(httpx.ReadError):
        await response.aread()


@pytest.mark.parametrize("coding", [b"identity", b"gzip"])
async def test_an_answer_with_a_transfer_coding_but_chunked_ends_with_the_connection(
    serve: Callable[..., asyncio.Future[Server]], coding: bytes
) -> None:
    def answer(panel: Panel) -> None:
        panel.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n{}" % coding)  # type: ignore[attr-defined]
        panel.transport.close()

    server = await serve(answer)
    transport = PanelTransport(max_connections=1, keepalive_expiry=30.0)
    try:
        response = await transport.handle_async_request(httpx.Request("POST", server.url, content=b"a=1"))
        assert await response.aread() == b"{}"
        await response.aclose()
        assert not transport._idle
    finally:
        await transport.aclose()


def test_a_transport_outliving_its_event_loop_starts_afresh_on_the_next() -> None:
    """Connections belong to the loop that made them; a transport used again from a new loop
    (another asyncio.run) opens new ones instead of writing on the old loop's and failing after."""
    seen: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    transport = PanelTransport(max_connections=2, keepalive_expiry=30.0)

    async def once() -> bytes:
        response = await transport.handle_async_request(
            httpx.Request("POST", url, content=b"a=1", extensions={"timeout": {"read": 5.0, "connect": 5.0}})
        )
        try:
            return await response.aread()
        finally:
            await response.aclose()

    async def once_more_and_close() -> bytes:
        try:
            return await once()
        finally:
            await transport.aclose()

    try:
        assert asyncio.run(once()) == b"{}"
        assert asyncio.run(once_more_and_close()) == b"{}"
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [b"a=1", b"a=1"]


# The gateway serves on uvloop (uvicorn's default when installed) while the suite's loop is
# asyncio's: the exchanges whose outcome decides "not sent" vs "unknown", once more on uvloop.
ON_UVLOOP = [
    test_an_answer_on_a_kept_connection,
    test_a_kept_connection_reset_after_the_request_is_unknown_and_not_sent_again,
    test_a_connection_closed_before_the_request_is_unknown_and_not_resent,
    test_a_reset_after_the_request_arrived_is_unknown_and_not_resent,
    test_a_close_mid_answer_is_unknown,
    test_a_read_timeout_is_unknown_and_not_resent,
    test_an_answer_delimited_by_the_end_of_the_connection_is_read_whole,
    test_a_connection_left_with_its_reading_paused_is_not_kept,
    test_bytes_waiting_on_an_idle_connection_are_never_taken_for_the_next_answer,
    test_an_answer_ended_by_the_connection_is_not_complete_when_the_gateway_closed_it,
    test_never_more_connections_than_the_limit,
    test_the_trace_says_sending_may_start_only_once_there_is_a_connection,
]


@pytest.mark.parametrize("case", ON_UVLOOP, ids=lambda case: case.__name__.removeprefix("test_"))
def test_on_uvloop(case: Callable[[Callable[..., asyncio.Future[Server]]], Awaitable[None]]) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def run() -> None:
        async with _servers() as start:
            await case(start)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
