"""Rate limits of /api/v2: per customer, and for keys that are not valid, per client address and
for everyone together.

- A customer's limit is a token bucket per customer (not per raw ``key`` string): it is only
  touched after the key was found, so made-up keys can never create, drain or reset it.
- Unknown keys (and calls without one) are limited per client address and by a global cap: once
  an address used up its guesses, its next calls are refused before any database lookup, and the
  global cap bounds what a botnet of addresses can make the database do.
- Memory is bounded: at most ``MAX_TRACKED`` buckets per kind; full buckets carry no information
  and go first, then the least recently used.

In-process by default: with N API processes a customer gets up to N times the rate. With
``GATEWAY_REDIS_URL`` the same limits are counted in Redis (:mod:`gateway.v2.sharedlimit`) and hold
across every process and replica.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from gateway.errors import TOO_MANY_REQUESTS, ProtocolError

MAX_TRACKED = 100_000


class RateLimited(ProtocolError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(TOO_MANY_REQUESTS)
        self.headers = {"Retry-After": str(retry_after)}


class Buckets:
    """Token buckets of ``per_minute`` (0: unlimited), one per name, at most ``max_tracked``."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED
    ) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        self._max = max_tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, name: str, now: float) -> float:
        tokens, stamp = self._buckets.get(name, (self.capacity, now))
        return min(self.capacity, tokens + (now - stamp) * self.refill_per_second)

    def _retry_after(self, tokens: float) -> int:
        return max(1, math.ceil((1.0 - tokens) / self.refill_per_second))

    def take(self, name: str) -> None:
        """Take one token for ``name`` or raise :class:`RateLimited` with a Retry-After."""
        if self.capacity <= 0:
            return
        now = self._clock()
        tokens = self._level(name, now)
        if tokens < 1.0:
            self._store(name, tokens, now)
            raise RateLimited(self._retry_after(tokens))
        self._store(name, tokens - 1.0, now)

    def check(self, name: str) -> None:
        """Raise :class:`RateLimited` when ``name`` has no token left, without taking one."""
        if self.capacity <= 0 or name not in self._buckets:
            return
        tokens = self._level(name, self._clock())
        if tokens < 1.0:
            raise RateLimited(self._retry_after(tokens))

    def _store(self, name: str, tokens: float, now: float) -> None:
        if name not in self._buckets and len(self._buckets) >= self._max:
            self._prune(now)
        self._buckets[name] = (tokens, now)
        self._buckets.move_to_end(name)

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.refill_per_second
        for name in [n for n, (_, stamp) in self._buckets.items() if now - stamp >= full_after]:
            del self._buckets[name]
        while len(self._buckets) >= self._max:
            self._buckets.popitem(last=False)  # the least recently used

    def __len__(self) -> int:
        return len(self._buckets)


GLOBAL = "*"


class Limiter(Protocol):
    """What /api/v2 asks of a limiter (in-process, or shared through Redis)."""

    async def before_lookup(self, address: str) -> None: ...

    async def invalid_key(self, address: str) -> None: ...

    async def customer(self, customer_id: int) -> None: ...


class RateLimiter:
    """The in-process limits of /api/v2 (see the module's docstring)."""

    def __init__(
        self,
        per_minute: int,
        *,
        invalid_per_minute: int = 20,
        invalid_global_per_minute: int = 600,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.customers = Buckets(per_minute, clock, max_tracked)
        self.guesses = Buckets(invalid_per_minute, clock, max_tracked)
        self.all_guesses = Buckets(invalid_global_per_minute, clock, 1)

    async def before_lookup(self, address: str) -> None:
        """Refuse, without a database lookup, an address that used up its guesses (or when
        everyone together did)."""
        self.guesses.check(address)
        self.all_guesses.check(GLOBAL)

    async def invalid_key(self, address: str) -> None:
        """A call from ``address`` came with a key that is not valid (or none): it uses up one
        of the address's guesses and one of everyone's (the call itself is answered as invalid)."""
        for buckets, name in ((self.guesses, address), (self.all_guesses, GLOBAL)):
            with contextlib.suppress(RateLimited):
                buckets.take(name)

    async def customer(self, customer_id: int) -> None:
        """One call of a customer whose key was found."""
        self.customers.take(str(customer_id))
