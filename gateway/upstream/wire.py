"""One HTTP exchange with an upstream, and what each way it can fail means.

The split between "not sent" and "unknown" follows PROTOCOL.md section 5: only a failure before
the request left (refused, connect timeout, pool timeout, a closed client, a refused address) is
"not sent"; anything after the connection was established is "unknown", because the upstream may
have received and acted on the request.
"""

from __future__ import annotations

import zlib
from typing import Any

import httpx
import msgspec

from gateway.upstream.addresses import check_peer_address
from gateway.upstream.config import UpstreamConfig
from gateway.upstream.errors import UpstreamAddressRefused, UpstreamNotSent, UpstreamRejected, UpstreamUnknown
from gateway.upstream.parse import decode_json, top_level_error
from gateway.upstream.redact import ApiKey, excerpt
from gateway.upstream.transport import PEER_CHECK_EXTENSION, PanelTransport

__all__ = ["AttemptPhase", "RawAnswer", "UpstreamHttp", "post_form", "read_answer"]

# Failures that happen before a single byte of the request was written.
_BEFORE_SENDING: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)


class UpstreamHttp:
    """One provider's HTTP sender: httpx requests and responses over an httpx transport
    (:class:`PanelTransport`, its own keep-alive pool and httptools' parser, unless a test or bench
    gives another).

    It hands each request to the transport itself rather than through ``httpx.AsyncClient``: the
    client's own machinery (auth and redirect loops, the cookie jar, merging URLs, headers and
    timeouts on every call) cost about as much CPU per call as the whole transport
    (docs/BENCHMARKS.md), and the adapter used none of it. What the client was configured to
    guarantee holds by construction here:

    - no redirect is ever followed (nothing here follows one: a 3xx is an answer, read as
      "unknown"); a redirected POST would be re-sent, possibly as a GET, possibly elsewhere;
    - nothing is read from the environment: no proxy variables, no ``.netrc``, no
      ``SSL_CERT_*`` (PanelTransport), so nothing on the host can route or authenticate
      upstream traffic;
    - no cookies are kept or sent (an API authenticated by its body needs none);
    - every request carries the provider's timeouts (connect, read, write, pool), computed once.
    """

    def __init__(self, config: UpstreamConfig, transport: httpx.AsyncBaseTransport | None) -> None:
        self.transport = transport or PanelTransport(
            max_connections=config.max_connections,
            max_keepalive=config.max_keepalive_connections,
            keepalive_expiry=config.keepalive_expiry,
        )
        self.timeout = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.write_timeout,
            pool=config.pool_timeout,
        ).as_dict()
        self.headers = httpx.Headers(
            {
                "User-Agent": config.user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
                "Content-Type": "application/x-www-form-urlencoded",
            }
        )
        self.is_closed = False

    def build_request(self, url: httpx.URL | str, body: bytes, extensions: dict[str, Any]) -> httpx.Request:
        """A POST of ``body`` (url-encoded) with the provider's headers and timeouts."""
        return httpx.Request(
            "POST", url, headers=self.headers, content=body, extensions={**extensions, "timeout": self.timeout}
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The transport's answer, its body still to be read (and the response closed)."""
        if self.is_closed:
            raise RuntimeError("the upstream client has been closed")
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        """Close the transport's connections; later sends fail as "not sent"."""
        self.is_closed = True
        await self.transport.aclose()


class AttemptPhase:
    """How far one attempt got, learned from the ``trace`` extension (httpcore's event names,
    which :class:`PanelTransport` emits too).

    The overall deadline can fire at any point; it is only "not sent" when the trace proves the
    request headers had not started going out. Without trace events (a test transport)
    nothing is proven, so it stays "unknown".
    """

    def __init__(self, *, check_peer: bool) -> None:
        self.traced = False
        self.sending_started = False
        self._check_peer = check_peer
        self.extensions: dict[str, Any] = {"trace": self.trace}
        if check_peer:
            self.extensions[PEER_CHECK_EXTENSION] = check_peer_address

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """The trace hook. Under httpcore it is also where a new connection's peer address is
        verified; :class:`PanelTransport` checks it before connecting, through the extension."""
        self.traced = True
        if "send_request_headers.started" in event:
            self.sending_started = True
        elif event.endswith("connect_tcp.complete") and self._check_peer:
            stream = info.get("return_value")
            if stream is not None:
                try:
                    check_peer_address(stream.get_extra_info("server_addr"))
                except UpstreamAddressRefused:
                    await stream.aclose()  # httpcore never got hold of it: close it here
                    raise

    @property
    def proven_not_sent(self) -> bool:
        """True when the trace shows the request had not started to leave."""
        return self.traced and not self.sending_started


class RawAnswer(msgspec.Struct, frozen=True):
    """The HTTP status and body of an answer (the body is bounded by ``max_response_bytes``)."""

    status_code: int
    body: bytes


def _describe(exc: BaseException, key: ApiKey) -> str:
    # httpx messages can carry the URL or parts of the request: scrub, and never chain the
    # original exception (its .request holds the form body with the key).
    text = excerpt(str(exc), key, limit=160)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def post_form(
    http: UpstreamHttp,
    url: httpx.URL | str,
    body: bytes,
    phase: AttemptPhase,
    *,
    key: ApiKey,
    max_bytes: int,
) -> RawAnswer:
    """POST ``body`` (a url-encoded form) and read the whole answer; httpx failures become adapter
    errors."""
    try:
        response = await http.send(http.build_request(url, body, phase.extensions))
        try:
            answer = await _read_bounded(response, max_bytes, key)
        finally:
            await response.aclose()
    except UpstreamAddressRefused:
        raise
    except _BEFORE_SENDING as exc:
        raise UpstreamNotSent(_describe(exc, key)) from None
    except httpx.HTTPError as exc:
        raise UpstreamUnknown(_describe(exc, key)) from None
    except RuntimeError as exc:
        # A client (or its transport) that has been closed: nothing was sent.
        if "closed" in str(exc):
            raise UpstreamNotSent(_describe(exc, key)) from None
        raise
    return RawAnswer(response.status_code, answer)


async def _read_bounded(response: httpx.Response, max_bytes: int, key: ApiKey) -> bytes:
    """The answer's body, decoded, of at most ``max_bytes`` (``UpstreamUnknown`` beyond).

    Decoded here rather than by httpx, whose decoders inflate each piece whole: a small gzip bomb
    would take gigabytes before the size could be checked. Each piece is inflated only as far as
    the limit allows. An answer read already (by a wrapping transport, a test) comes decoded from
    httpx; any other is read straight from the transport's stream (httpx's re-chunking layers
    would only copy it)."""
    if response.is_stream_consumed:
        chunks, decoder = response.aiter_bytes(), None
    else:
        stream = response.stream
        chunks = stream.__aiter__() if isinstance(stream, httpx.AsyncByteStream) else response.aiter_raw()
        decoder = _Inflater.for_encoding(response.headers.get("content-encoding"), response.status_code, key)
    answer = bytearray()
    too_large = UpstreamUnknown(f"answer larger than {max_bytes} bytes", http_status=response.status_code)
    async for chunk in chunks:
        if decoder is not None:
            # At most one byte past the limit: input zlib keeps back then is never needed.
            chunk = decoder.inflate(chunk, max_bytes - len(answer) + 1)
        answer += chunk
        if len(answer) > max_bytes:
            raise too_large
    return bytes(answer)


class _Inflater:
    """gzip or deflate, inflated no further than asked per piece."""

    def __init__(self, encoding: str, status: int) -> None:
        self.encoding = encoding
        self.status = status
        # gzip: a gzip header; deflate: zlib's (as the HTTP spec says) or, from some servers, none.
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        self._started = False

    @classmethod
    def for_encoding(cls, header: str | None, status: int, key: ApiKey) -> _Inflater | None:
        encoding = (header or "").strip().lower()
        if encoding in ("", "identity"):
            return None
        if encoding == "x-gzip":
            encoding = "gzip"
        if encoding not in ("gzip", "deflate"):  # the adapter asks for gzip or deflate only
            raise UpstreamUnknown(
                f"an answer in an encoding not asked for ({key.scrub(encoding)[:40]})", http_status=status
            )
        return cls(encoding, status)

    def inflate(self, data: bytes, room: int) -> bytes:
        try:
            try:
                out = self._zlib.decompress(data, room)
            except zlib.error:
                if self._started or self.encoding != "deflate":
                    raise
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                out = self._zlib.decompress(data, room)
        except zlib.error:
            raise UpstreamUnknown(f"a corrupt {self.encoding} answer", http_status=self.status) from None
        self._started = True
        return out


def read_answer(raw: RawAnswer, key: ApiKey) -> object:
    """The decoded JSON of an answer, or the adapter error its status and body mean.

    - 2xx with a top-level ``{"error": ...}`` is a rejection: the panel's own code refused it.
    - 4xx with a JSON ``{"error": ...}`` is a rejection too, for the same reason (some panels
      answer 400/401/422 with the protocol error). Any other 4xx may come from a CDN, WAF or proxy
      in front of the panel that cannot say whether the panel acted (e.g. 408, 499, 429 pages),
      so it is unknown, like a 5xx.
    - 3xx is unknown (redirects are never followed; a panel may act and then redirect).
    - An empty body, an HTML page, or anything that is not JSON is unknown.
    """
    status = raw.status_code
    answer: object = None
    decoded = False
    if raw.body.strip():
        try:
            answer = decode_json(raw.body)
            decoded = True
        except ValueError:
            pass
    if decoded and (200 <= status < 300 or 400 <= status < 500):
        message = top_level_error(answer)
        if message is not None:
            raise UpstreamRejected(key.scrub(message))
    if 300 <= status < 400:
        raise UpstreamUnknown(f"HTTP {status} redirect (not followed)", http_status=status)
    if not 200 <= status < 300:
        raise UpstreamUnknown(f"HTTP {status}", excerpt=excerpt(raw.body, key) or None, http_status=status)
    if not raw.body.strip():
        raise UpstreamUnknown("empty answer", http_status=status)
    if not decoded:
        kind = "an HTML page" if raw.body.lstrip()[:1] == b"<" else "an answer that is not JSON"
        raise UpstreamUnknown(f"{kind} instead of JSON", excerpt=excerpt(raw.body, key), http_status=status)
    return answer
