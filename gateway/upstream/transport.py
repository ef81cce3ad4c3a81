"""The HTTP/1.1 transport of each provider's client: aiohttp's connection pool and parser behind
the httpx transport API (httpx requests in, httpx responses and exceptions out).

httpx's own transport (httpcore on anyio) costs several times aiohttp's CPU per request, worse
with concurrent requests (encode/httpx#3215; figures in docs/BENCHMARKS.md). The adapter keeps
httpx as its API and swaps only this layer. What each adapter guarantee rests on here:

- **"never sent" vs "may have been sent"**: an attempt reports its progress through the request's
  ``trace`` extension, with the event names of httpcore that :class:`~gateway.upstream.wire.AttemptPhase`
  reads: ``connection.connect_tcp.started`` when it starts to look for a connection, and
  ``http11.send_request_headers.started`` as soon as aiohttp hands it one (new or reused), which is
  the last moment before any byte of the request can leave. A failure is mapped to an httpx
  "before sending" class (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``) only when it
  came before that moment; any failure after it is a read/protocol error ("unknown"), whatever
  aiohttp called it. aiohttp re-sends a request on a dropped keep-alive connection only for
  idempotent methods, and the adapter only POSTs (a test pins that).
- **connected-peer SSRF check**: the request's ``gateway.peer_check`` extension (set per attempt
  by the adapter when the address guard is on) is called by the connector's socket factory with
  the exact socket address each new connection is about to connect to; it raises
  :class:`UpstreamAddressRefused` for a non-public one, so such a connection is never even made.
- **no redirects** (``allow_redirects=False``), **no proxies or credentials from the environment**
  (``trust_env=False``, no cookie jar of aiohttp's own; the TLS context ignores ``SSL_CERT_*``).
- **per-provider limits**: at most ``max_connections`` requests in flight (a semaphore; waiting
  longer than the pool timeout is ``PoolTimeout``, "not sent"), the same limit on aiohttp's pool,
  idle connections closed after ``keepalive_expiry``. ``max_keepalive_connections`` has no aiohttp
  equivalent: up to ``max_connections`` idle connections are kept until they expire.
- **deadlines**: connect (``sock_connect``) and read (``sock_read``) timeouts from the request's
  ``timeout`` extension; aiohttp has no write timeout (a form POST is written in one go), so the
  adapter's overall deadline bounds the rest.
- **key redaction**: the key travels in the body only; aiohttp's exceptions (which can quote the
  URL, never the body) are turned into httpx ones without their cause, and the adapter scrubs
  every message it keeps.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from aiohttp.connector import Connection
from yarl import URL

from gateway.upstream.errors import UpstreamAddressRefused

__all__ = ["PEER_CHECK_EXTENSION", "PanelTransport"]

PEER_CHECK_EXTENSION = "gateway.peer_check"

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
PeerCheck = Callable[[object], None]


# The attempt that is connecting. Context variables follow the task (and the tasks aiohttp's
# happy-eyeballs connect starts from it), so concurrent attempts never see each other's check.
class _Progress:
    """How far one request got inside aiohttp, told to the attempt's trace hook."""

    __slots__ = ("connected", "peer_check", "refused", "trace")

    def __init__(self, trace: Trace | None, peer_check: PeerCheck | None) -> None:
        self.trace = trace
        self.peer_check = peer_check
        self.connected = False  # aiohttp had a connection for it: bytes may have left from here on
        self.refused: UpstreamAddressRefused | None = None


_connecting: contextvars.ContextVar[_Progress | None] = contextvars.ContextVar("gateway_connecting", default=None)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, telling the connecting attempt the moment it has a connection (cheaper
    than aiohttp's trace signals, which build an event object per step of every request)."""

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109  (aiohttp's signature)
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        progress = _connecting.get()
        if progress is not None:
            progress.connected = True
            if progress.trace is not None:
                try:
                    await progress.trace("http11.send_request_headers.started", {})
                except BaseException:
                    connection.close()
                    raise
        return connection


def _checked_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory: the peer check sees the address the socket will connect to."""
    family, type_, proto, _, address = addr_info
    progress = _connecting.get()
    if progress is not None and progress.peer_check is not None:
        try:
            progress.peer_check(address)  # before any connection is made
        except UpstreamAddressRefused as exc:
            # Kept aside too: with several addresses, aiohttp may fold it into a connect error.
            progress.refused = exc
            raise
    return socket.socket(family=family, type=type_, proto=proto)


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, release: Callable[[], None]) -> None:
        self._response = response
        self._request = request
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.SocketTimeoutError:
            raise httpx.ReadTimeout("timed out reading the answer", request=self._request) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(_text(exc), request=self._request) from None

    async def aclose(self) -> None:
        # A body not read to its end leaves the connection unusable: aiohttp closes it then.
        self._response.release()
        if self._release is not None:  # once: a second close must not free a second slot
            release, self._release = self._release, None
            release()


class PanelTransport(httpx.AsyncBaseTransport):
    """One provider's connection pool (one per :class:`~gateway.upstream.wire.UpstreamHttp`)."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}  # the adapter posts to one URL per provider: parse it once
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp binds its session to the running loop.
        connector = _Connector(
            limit=self.max_connections,
            limit_per_host=0,
            keepalive_timeout=self.keepalive_expiry,
            ssl=_tls_context(),
            socket_factory=_checked_socket,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes by the answer's Content-Encoding
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1])
        return timeout

    def _url(self, request: httpx.Request) -> URL:
        text = str(request.url)
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) > 16:
                self._urls.clear()
            url = self._urls[text] = URL(text, encoded=True)  # httpx has already encoded it
        return url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = request.extensions
        timeouts: dict[str, float | None] = extensions.get("timeout", {})
        progress = _Progress(extensions.get("trace"), extensions.get(PEER_CHECK_EXTENSION))
        if progress.trace is not None:
            await progress.trace("connection.connect_tcp.started", {})
        await self._acquire(request, timeouts.get("pool"))
        token = _connecting.set(progress)
        try:
            response = await self._send(request, timeouts, progress)
        except BaseException:
            self._slots.release()
            raise
        finally:
            _connecting.reset(token)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request, self._slots.release),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _acquire(self, request: httpx.Request, pool_timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection within the pool timeout", request=request) from None

    async def _send(
        self, request: httpx.Request, timeouts: dict[str, float | None], progress: _Progress
    ) -> aiohttp.ClientResponse:
        session = self._session or self._open()
        try:
            return await session.request(
                request.method,
                self._url(request),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(timeouts),
            )
        except (UpstreamAddressRefused, aiohttp.ClientError, OSError) as exc:
            if progress.refused is not None:
                raise progress.refused from None
            if isinstance(exc, UpstreamAddressRefused):
                raise
            raise _mapped(exc, request, progress) from None
        except RuntimeError as exc:
            # The adapter reads a RuntimeError about something "closed" as "not sent" (a closed
            # client or session). Once a connection was handed over, it may have been sent.
            if progress.connected:
                raise httpx.ReadError(_text(exc), request=request) from None
            raise


def _mapped(exc: BaseException, request: httpx.Request, progress: _Progress) -> httpx.TransportError:
    """The httpx class of an aiohttp failure; the "before sending" ones only before a connection."""
    text = _text(exc)
    if not progress.connected:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return httpx.ConnectTimeout(text, request=request)
        if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
            return httpx.UnsupportedProtocol(text, request=request)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tls_context() -> ssl.SSLContext:
    # httpx's own verified context (certifi), without SSL_CERT_FILE / SSL_CERT_DIR from the environment.
    return httpx.create_ssl_context(trust_env=False)
