"""A per-key request rate limit for /api/v2 (a token bucket per key, in this process).

Limits are per process: with N API processes a key gets up to N times the rate. That is the price
of keeping Postgres out of the hot path; the limit protects the service from one runaway script,
not a contract. Unknown keys are limited too, which slows down key guessing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.errors import TOO_MANY_REQUESTS, ProtocolError

MAX_TRACKED = 100_000


class RateLimited(ProtocolError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(TOO_MANY_REQUESTS)
        self.headers = {"Retry-After": str(retry_after)}


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited` with a Retry-After."""
        if self.capacity <= 0:
            return
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.refill_per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self.refill_per_second)))
        if len(self._buckets) >= MAX_TRACKED and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        # Buckets that have refilled completely carry no information.
        full_after = self.capacity / self.refill_per_second
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) >= MAX_TRACKED:
            self._buckets.clear()
