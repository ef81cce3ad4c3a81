"""The HTTP/1.1 transport of each provider's client: a small keep-alive connection pool of asyncio
protocols with httptools' response parser, behind the httpx transport API (httpx requests in,
httpx responses and exceptions out).

Why not a library: httpx's own transport (httpcore on anyio) costs several times aiohttp's CPU per
request, worse with concurrent requests (encode/httpx#3215), and aiohttp's ``ClientSession`` still
costs 100-130 µs of CPU per request where an exchange on a kept-alive connection needs under 10
(``python -m tests.bench.clients``; figures and the choice in docs/BENCHMARKS.md). The adapter
only ever POSTs a small form and reads one answer, so what it needs is small enough to own, and
owning it makes each of its guarantees a property of this file rather than of a library's
internals:

- **"never sent" vs "may have been sent"**: an attempt reports its progress through the request's
  ``trace`` extension, with the event names of httpcore that :class:`~gateway.upstream.wire.AttemptPhase`
  reads: ``connection.connect_tcp.started`` when it starts to look for a connection, and
  ``http11.send_request_headers.started`` once it has one (new or reused), right before the
  request is written. Only failures before that event are raised as the httpx "before sending"
  classes (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``, ``UnsupportedProtocol``); every
  failure after it is a read or protocol error ("unknown"). A request is written once, on one
  connection: nothing here ever sends it again (a kept-alive connection found dead once the
  request was written is "unknown", as it must be for a POST).
- **connected-peer SSRF check**: the request's ``gateway.peer_check`` extension (set per attempt
  by the adapter when the address guard is on) is called with each address the host resolved to,
  before a socket connects to it; it raises
  :class:`~gateway.upstream.errors.UpstreamAddressRefused` for a non-public one, so such a
  connection is never made.
- **no redirects** (nothing here follows one: a 3xx is an answer), **no proxies, credentials or
  certificates from the environment** (nothing is read from it; the TLS context is httpx's with
  ``trust_env=False``).
- **per-provider limits**: at most ``max_connections`` requests in flight (a semaphore; waiting
  longer than the pool timeout is ``PoolTimeout``, "not sent"), each on its own connection, so
  never more connections than that; at most ``max_keepalive`` of them are kept idle, reused
  newest first and closed after ``keepalive_expiry``.
- **deadlines**: the connect timeout covers resolving, connecting and the TLS handshake; the read
  timeout is the longest silence while an answer is awaited (from the moment the request is
  written, so a request the upstream never reads times out too); the adapter's overall deadline
  bounds the rest.
- **bounded answers**: an answer's status line and headers may not exceed 64 KiB; its body is
  handed over as it arrives (reading from the socket pauses while 1 MiB waits for the reader), so
  the adapter's ``max_response_bytes`` bounds what is kept.
- **key redaction**: the key travels in the body only; no exception raised here quotes the
  request, and none keeps a cause (the adapter scrubs every message it keeps, too).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httptools
import httpx

__all__ = ["MAX_HEAD_BYTES", "PEER_CHECK_EXTENSION", "PanelTransport"]

PEER_CHECK_EXTENSION = "gateway.peer_check"

# An answer's status line and headers. Real ones are a few KiB; the bound also bounds what a head
# sent in tiny pieces costs (httptools joins a header's fragments by copying).
MAX_HEAD_BYTES = 32 * 1024
PAUSE_READING_AT = 1024 * 1024  # body bytes waiting for the reader before the socket is left unread

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
PeerCheck = Callable[[object], None]
Failure = tuple[type[httpx.TransportError], str]
Origin = tuple[str, bytes, int | None]  # scheme, host, port: a connection serves one

_HTTP_VERSION = {"http_version": b"HTTP/1.1"}
_POLL = getattr(select, "poll", None)  # select() is limited to descriptors below 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to a provider, one exchange at a time.

    The protocol callbacks (the loop's and httptools') only record what arrived and wake the
    coroutine waiting for it; the coroutine raises what went wrong, as an httpx error.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, members: set[_Connection], origin: Origin) -> None:
        self.loop = loop
        self.members = members
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        # The exchange under way (see start()).
        self.active = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.headers_done = False
        self.delimited = False  # Content-Length or chunked: the body's end is known without EOF
        self.informational = False
        self.complete = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.failure: Failure | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.read_timeout: float | None = None
        self.last_read = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- the loop's callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's does not subclass asyncio's
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.members.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:
            # Bytes nobody asked for (on an idle connection, or after a whole answer): what the
            # next answer on this connection would be cannot be trusted.
            self.close()
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError, "the upstream switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError, f"malformed answer ({exc})")
        if not self.headers_done and not self.complete:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self._fail(httpx.RemoteProtocolError, f"answer head larger than {MAX_HEAD_BYTES} bytes")

    def eof_received(self) -> bool:
        return False  # close: connection_lost says what the end of the stream means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.members.discard(self)
        self._stop_clock()
        if self.active and not self.complete and self.failure is None:
            if exc is None and self.headers_done and not self.delimited:
                self.complete = True  # a body delimited by the end of the connection (HTTP/1.0 style)
            elif exc is None:
                self.failure = (
                    httpx.RemoteProtocolError,
                    "the upstream closed the connection before the answer was complete",
                )
            else:
                self.failure = (httpx.ReadError, f"connection lost: {_text(exc)}")
        self._wake()

    # -- httptools' callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self.keep_alive = False  # a second answer nobody asked for: the connection is not reused

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        self.headers.append((name, value))
        if not self.delimited:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and value.rstrip().lower().endswith(b"chunked")
            ):
                self.delimited = True  # else (no length, or e.g. "identity"): the body ends with the connection

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # e.g. 100 Continue: the answer follows it
            return
        self.status = status
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete or self.informational:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > PAUSE_READING_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if self.informational:
            self.informational = False
            self.headers = []
            self.delimited = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._stop_clock()
        self._wake()

    # -- the exchange

    def start(self, payload: bytes, read_timeout: float | None) -> None:
        """Write one request; its answer is awaited with :meth:`head` and read with :meth:`body`.
        The write is the last thing it does: an error before it means nothing was sent."""
        self.active = True
        self.status = 0
        self.headers = []
        self.head_bytes = 0
        self.headers_done = self.delimited = self.informational = self.complete = self.keep_alive = False
        self.chunks = []
        self.buffered = 0
        self.failure = None
        if self.closed or self.transport is None:
            self.failure = (httpx.RemoteProtocolError, "the connection closed as the request was to be written")
            return
        self._stop_clock()
        self.read_timeout = read_timeout
        self.last_read = self.loop.time()
        if read_timeout is not None:
            self.timer = self.loop.call_later(read_timeout, self._check_silence)
        self.transport.write(payload)

    async def head(self, request: httpx.Request) -> None:
        """Wait for the answer's status line and headers."""
        while not self.headers_done:
            self._raise_failure(request)
            await self._wait()

    async def body(self, request: httpx.Request) -> AsyncIterator[bytes]:
        """The answer's body as it arrives."""
        while True:
            chunks = self.chunks
            if chunks:
                chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self.chunks = []
                self.buffered = 0
                if self.paused:
                    self.paused = False
                    self.last_read = self.loop.time()  # the reader was slow, not the upstream
                    if self.transport is not None and not self.closed:
                        self.transport.resume_reading()
                yield chunk
            elif self.complete:
                return
            else:
                self._raise_failure(request)
                await self._wait()

    @property
    def reusable(self) -> bool:
        # Not while reading is paused: the next answer would never be read.
        return self.complete and self.keep_alive and self.failure is None and not self.closed and not self.paused

    def fresh(self) -> bool:
        """Still good for a request: open, and nothing has arrived on it since its last answer
        (the socket is not readable: no stray bytes the loop has yet to read, which would be taken
        for the next answer, and no end of stream on the way)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        if self.fd < 0:
            return True
        try:
            if _POLL is not None:
                poller = _POLL()
                poller.register(self.fd, select.POLLIN)
                return not poller.poll(0)
            return not select.select([self.fd], [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """Drop the connection (an abort: nothing more is sent or waited for on it)."""
        if self.active and not self.complete and self.failure is None:
            # Not an end of stream that could complete an answer delimited by it.
            self.failure = (httpx.ReadError, "the connection was closed before the answer was complete")
            self._wake()
        self.closed = True
        self._stop_clock()
        if self.transport is not None:
            self.transport.abort()

    def park(self) -> None:
        """Between exchanges: idle from now."""
        self.active = False
        self.idle_since = self.loop.time()

    # -- internals

    def _raise_failure(self, request: httpx.Request) -> None:
        if self.failure is not None:
            kind, text = self.failure
            raise kind(text, request=request)

    async def _wait(self) -> None:
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, kind: type[httpx.TransportError], text: str) -> None:
        if not self.complete and self.failure is None:
            self.failure = (kind, text)
        self.close()
        self._wake()

    def _check_silence(self) -> None:
        # One timer per exchange, moved on only when it fires (cheaper than one per read).
        self.timer = None
        if self.complete or self.failure is not None or self.closed or self.read_timeout is None:
            return
        silent = self.loop.time() - self.last_read
        if self.paused or silent < self.read_timeout:
            wait = self.read_timeout if self.paused else self.read_timeout - silent
            self.timer = self.loop.call_later(wait, self._check_silence)
            return
        self._fail(httpx.ReadTimeout, "timed out reading the answer")

    def _stop_clock(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: PanelTransport, connection: _Connection, request: httpx.Request) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        async for chunk in connection.body(self._request):
            yield chunk

    async def aclose(self) -> None:
        # Once: a second close must not free a second slot. An answer not read to its end (or
        # one that said Connection: close) leaves its connection closed, not reused.
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self._pool.release(connection)


class PanelTransport(httpx.AsyncBaseTransport):
    """One provider's connection pool (one per :class:`~gateway.upstream.wire.UpstreamHttp`).
    Its connections belong to the event loop it is used on; used from another (a new
    ``asyncio.run``), it forgets the earlier loop's connections and starts afresh."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float,
        max_keepalive: int | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_keepalive is not None and max_keepalive < 0:
            raise ValueError("max_keepalive must not be negative")
        self.max_connections = max_connections
        self.max_keepalive = max_connections if max_keepalive is None else min(max_keepalive, max_connections)
        self.keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []  # newest last
        self._members: set[_Connection] = set()  # every open connection, to close them all
        self._tls = tls_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pruning: asyncio.TimerHandle | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the upstream transport is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._rebind(loop)
        extensions = request.extensions
        timeouts: dict[str, float | None] = extensions.get("timeout", {})
        trace: Trace | None = extensions.get("trace")
        payload = await _payload(request)
        if trace is not None:
            await trace("connection.connect_tcp.started", {})
        await self._acquire(request, timeouts.get("pool"))
        try:
            url = request.url
            origin = (url.scheme, url.raw_host, url.port)
            connection = self._reuse(origin) or await self._connect(
                request, origin, timeouts, extensions.get(PEER_CHECK_EXTENSION)
            )
        except BaseException:
            self._slots.release()
            raise
        # From here on the request may leave: every failure is "unknown".
        try:
            if trace is not None:
                await trace("http11.send_request_headers.started", {})
            connection.start(payload, timeouts.get("read"))
            await connection.head(request)
        except httpx.TransportError:
            connection.close()
            self._slots.release()
            raise
        except Exception as exc:
            # Never a "before sending" class, nor a RuntimeError the adapter would read as a
            # closed client ("not sent"): it may have been sent.
            connection.close()
            self._slots.release()
            raise httpx.ReadError(_text(exc), request=request) from None
        except BaseException:
            connection.close()
            self._slots.release()
            raise
        return httpx.Response(
            status_code=connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, request),
            request=request,
            extensions=_HTTP_VERSION,
        )

    def release(self, connection: _Connection) -> None:
        """The answer on ``connection`` was closed: keep the connection for the next request, or
        drop it; either way its slot is free again."""
        if connection.reusable and not self._closed and len(self._idle) < self.max_keepalive:
            connection.park()
            self._idle.append(connection)
            if self._pruning is None and self._loop is not None:
                self._pruning = self._loop.call_later(self.keepalive_expiry, self._prune)
        else:
            connection.close()
        self._slots.release()

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or use from another event loop than before (each test, each ``asyncio.run``):
        connections belong to the loop that made them, so those of an earlier one are forgotten
        (that loop closed them, or will, when it ends)."""
        if self._loop is not None:
            for connection in list(self._members):
                with contextlib.suppress(RuntimeError):  # "Event loop is closed"
                    connection.close()
            self._members.clear()
            self._idle.clear()
            if self._pruning is not None:
                with contextlib.suppress(RuntimeError):
                    self._pruning.cancel()
                self._pruning = None
        self._loop = loop

    async def aclose(self) -> None:
        self._closed = True
        if self._pruning is not None:
            self._pruning.cancel()
            self._pruning = None
        self._idle.clear()
        for connection in list(self._members):
            connection.close()

    async def _acquire(self, request: httpx.Request, pool_timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection within the pool timeout", request=request) from None

    def _reuse(self, origin: Origin) -> _Connection | None:
        """The newest idle connection to ``origin`` that is still open and fresh."""
        idle = self._idle
        for i in range(len(idle) - 1, -1, -1):
            connection = idle[i]
            if connection.closed:
                del idle[i]
            elif connection.loop.time() - connection.idle_since >= self.keepalive_expiry:
                for old in idle[: i + 1]:  # older ones have expired too
                    old.close()
                del idle[: i + 1]
                return None
            elif connection.origin == origin:
                del idle[i]
                if connection.fresh():
                    return connection
                connection.close()
        return None

    def _prune(self) -> None:
        self._pruning = None
        idle = self._idle
        if not idle or self._loop is None:
            return
        now = self._loop.time()
        keep: list[_Connection] = []
        for connection in idle:
            if connection.closed:
                continue
            if now - connection.idle_since >= self.keepalive_expiry:
                connection.close()
            else:
                keep.append(connection)
        idle[:] = keep
        if keep:
            self._pruning = self._loop.call_later(self.keepalive_expiry - (now - keep[0].idle_since), self._prune)

    async def _connect(
        self,
        request: httpx.Request,
        origin: Origin,
        timeouts: dict[str, float | None],
        peer_check: PeerCheck | None,
    ) -> _Connection:
        url = request.url
        port = _DEFAULT_PORTS.get(url.scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        host = url.raw_host.decode("ascii")
        if not host:
            raise httpx.UnsupportedProtocol("the URL has no host", request=request)
        tls = None
        if url.scheme == "https":
            tls = self._tls = self._tls or _tls_context()
        loop = asyncio.get_running_loop()
        members = self._members
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                sock = await _open_socket(loop, host, url.port or port, peer_check)
                try:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(loop, members, origin),
                        sock=sock,
                        ssl=tls,
                        server_hostname=host if tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:  # before OSError: TimeoutError is one
            raise httpx.ConnectTimeout("timed out connecting to the upstream", request=request) from None
        except OSError as exc:  # refused, unreachable, unresolvable, a failed TLS handshake
            raise httpx.ConnectError(_text(exc), request=request) from None
        if self._closed:  # closed while this one was connecting
            connection.close()
            raise RuntimeError("the upstream transport is closed")
        return connection


async def _open_socket(
    loop: asyncio.AbstractEventLoop, host: str, port: int, peer_check: PeerCheck | None
) -> socket.socket:
    """A socket connected to the first address of ``host`` that accepts, each address checked
    before anything connects to it."""
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    failure: OSError = OSError(f"{host} resolved to no address")
    for family, type_, proto, _, address in addresses:
        if peer_check is not None:
            peer_check(address)  # UpstreamAddressRefused: no connection is made
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one small write
            await loop.sock_connect(sock, address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure


async def _payload(request: httpx.Request) -> bytes:
    """The request as it goes on the wire (raises before anything is sent when it cannot go)."""
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = await request.aread()
    url = request.url
    parts = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError("a header name or value that would split the request", request=request)
        if name.lower() == b"transfer-encoding":
            raise httpx.LocalProtocolError("a streamed request body (only whole bodies are sent)", request=request)
        parts += (name, b": ", value, b"\r\n")
    parts += (b"\r\n", content)
    return b"".join(parts)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tls_context() -> ssl.SSLContext:
    # httpx's own verified context (certifi), without SSL_CERT_FILE / SSL_CERT_DIR from the environment.
    return httpx.create_ssl_context(trust_env=False)
