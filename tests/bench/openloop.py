"""An open-loop (constant-rate) HTTP load generator, wrk2-style, for latency under load.

Request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones. When no
connection was free at that time, its latency is measured from the scheduled time, not from when a
connection was free to send it, so a stall of the server shows up in the percentiles instead of
silently slowing the load (coordinated omission). When a connection was idle waiting for it, it is
measured from the actual send: the wake-up jitter of the generator's own timer is not the server's. ``--connections`` keep-alive connections share the schedule; it stays open-loop as long
as fewer requests than that are in flight at once (the summary says when that limit was hit).

Prints one JSON line: sent, completed, errors, achieved rate and p50/p90/p99/p99.9/max in ms.

    python -m tests.bench.openloop --url http://127.0.0.1:8081/api/v2 --bodies bodies.json \
        --rate 500 --seconds 10 --connections 64 --expect '"order"'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from urllib.parse import urlsplit


class HttpClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, answers framed by
    Content-Length (what uvicorn sends): lighter than asyncio streams, so the generator's own CPU
    stays small next to the server's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.expected = -1
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else None])
            self.expected = end + 4 + length
        if len(self.buffer) >= self.expected:
            answer = bytes(self.buffer[: self.expected])
            del self.buffer[: self.expected]
            self.expected = -1
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def exchange(self, request: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(url: str, bodies: list[bytes], rate: float, seconds: float, connections: int, expect: bytes) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    total = int(rate * seconds)
    interval = 1.0 / rate
    schedule = iter(range(total))
    latencies: list[float] = []
    lags: list[float] = []  # how late an idle connection woke up: the generator's own timing error
    late = 0  # requests that found every connection busy (the server fell behind)
    errors = 0
    error_sample = ""
    busy = 0
    saturated = 0
    # Not loop.time(): uvloop's clock is libuv's, in whole milliseconds.
    clock = time.perf_counter
    start = clock() + 0.2

    async def connection(worker: int) -> None:
        nonlocal errors, error_sample, busy, saturated, late
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_connection(HttpClient, host, port)
        rotation = itertools.cycle(requests[worker % len(requests) :] + requests[: worker % len(requests)])
        try:
            for index in schedule:
                due = start + index * interval
                delay = due - clock()
                if delay > 0:
                    # Idle until due: whatever lateness the wake-up has is the generator's timer
                    # (libuv's are 1 ms coarse), not the server's; measure from the actual send.
                    await asyncio.sleep(delay)
                    lags.append(clock() - due)
                    due = clock()
                else:
                    # Picked up late because every connection was busy: the request waited for the
                    # server, so it is measured from when it was due (no coordinated omission).
                    late += 1
                busy += 1
                if busy == connections:
                    saturated += 1
                try:
                    answer = await client.exchange(next(rotation))
                finally:
                    busy -= 1
                latencies.append(clock() - due)
                if not answer.startswith(b"HTTP/1.1 200") or expect not in answer:
                    errors += 1
                    if not error_sample:
                        error_sample = answer[:300].decode(errors="replace")
        finally:
            transport.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    elapsed = time.perf_counter() - began - 0.2
    ordered = sorted(latencies)
    ms = 1000.0
    return {
        "target_rate": rate,
        "sent": total,
        "completed": len(latencies),
        "errors": errors,
        "achieved_rate": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(ordered, 0.50) * ms,
        "p90_ms": percentile(ordered, 0.90) * ms,
        "p99_ms": percentile(ordered, 0.99) * ms,
        "p999_ms": percentile(ordered, 0.999) * ms,
        "max_ms": (ordered[-1] if ordered else 0.0) * ms,
        "send_lag_p99_ms": percentile(sorted(lags), 0.99) * ms,
        "late_sends": late,
        "all_connections_busy": saturated,
        "error_sample": error_sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="a JSON list of urlencoded bodies, used in rotation")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--expect", default="", help="a substring every good answer contains")
    args = parser.parse_args()
    with open(args.bodies) as file:
        bodies = [b.encode() for b in json.load(file)]
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    result = runner(run(args.url, bodies, args.rate, args.seconds, args.connections, args.expect.encode()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
