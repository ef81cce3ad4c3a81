"""A fast upstream panel over loopback: answers every request at once with ``{"order": n}``, and
``status`` (one id or up to 100) with every order in progress (the status sync at volume).

The bench's "loopback upstream" rows put a real HTTP server between the gateway and its upstream
(sockets, HTTP/1.1 keep-alive, the client's connection pool), but one that costs as little as
possible itself, so that the figure is the gateway's and not the simulator's (a full Python panel
on the same two cores). It reads each request whole (Content-Length bodies), answers 200 JSON
with a fresh order id, unique across processes like a real panel's, and keeps the connection.

    python -m tests.bench.panel --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from urllib.parse import parse_qs

_HEAD_END = b"\r\n\r\n"


def _statuses(request: bytes) -> bytes:
    """A multi-status answer (the panels' object keyed by id): every order asked about is in
    progress, half delivered, as live orders are; a single ``order`` gets the single form."""
    form = parse_qs(request.decode("ascii", "replace"))
    if "orders" not in form:
        return _STATUS
    ids = [item for item in form["orders"][0].split(",") if item.strip().isdigit()]
    return b"{" + b",".join(b'"%s":%s' % (item.strip().encode(), _STATUS) for item in ids) + b"}"


_STATUS = b'{"status":"In progress","charge":"0.50","start_count":"100","remains":"500","currency":"USD"}'


class _Panel(asyncio.Protocol):
    def __init__(self, counter: itertools.count[int]) -> None:
        self._counter = counter
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(_HEAD_END)
            if end < 0:
                return
            head = self._buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)].strip())
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            request, self._buffer = self._buffer[end + 4 : total], self._buffer[total:]
            body = _statuses(request) if b"action=status" in request else b'{"order": %d}' % next(self._counter)
            assert self._transport is not None
            self._transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )


async def serve(port: int) -> None:
    counter = itertools.count((os.getpid() << 32) + 1)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Panel(counter), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.port))


if __name__ == "__main__":
    main()
