"""The /api/v2 limits shared by every process and replica, counted in Redis (``GATEWAY_REDIS_URL``).

The same limits as :class:`gateway.v2.ratelimit.RateLimiter` (per customer; per address and for
everyone for invalid keys), as GCRA buckets: one Redis key per bucket holding its "theoretical
arrival time", updated by one Lua script (atomic, one round trip per check, the Redis server's
clock for every process). A bucket of ``per_minute`` lets a burst of ``per_minute`` through and
refills one call every ``60/per_minute`` seconds, like the in-process token bucket.

Redis is an accelerator of a limit, never a dependency of the money path: when it cannot be reached
(down, slow, refusing) the process falls back to its own in-process limiter and says so in the log
at most once a minute, and goes back to Redis by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.v2.ratelimit import GLOBAL, RateLimited, RateLimiter

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: interval (ms per call), burst (calls), take (1) or only check (0).
# Returns {allowed (1/0), milliseconds until one call is allowed}.
_GCRA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local new_tat = tat + interval
local allowed_until = now_ms + burst * interval
if new_tat > allowed_until then
  return {0, new_tat - allowed_until}
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now_ms + 1000)
end
return {1, 0}
"""

TIMEOUT_SECONDS = 0.25
WARN_EVERY_SECONDS = 60.0


class SharedLimiter:
    """The v2 limits in Redis, with the in-process ``fallback`` when Redis cannot be reached."""

    def __init__(
        self,
        url: str,
        fallback: RateLimiter,
        *,
        per_minute: int,
        invalid_per_minute: int,
        invalid_global_per_minute: int,
        namespace: str,
    ) -> None:
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS, health_check_interval=30
        )
        self._script = self._redis.register_script(_GCRA)
        self._fallback = fallback
        self._limits = {"c": per_minute, "a": invalid_per_minute, "g": invalid_global_per_minute}
        # One Redis may serve several gateways (or test databases): their buckets never mix.
        self._prefix = f"gw:{hashlib.sha256(namespace.encode()).hexdigest()[:12]}:rl"
        self._warned_at = -WARN_EVERY_SECONDS

    async def _bucket(self, kind: str, name: str, take: bool) -> bool:
        """Take (or only check) one call of a bucket; False when Redis could not say."""
        per_minute = self._limits[kind]
        if per_minute <= 0:
            return True
        try:
            allowed, wait_ms = await self._script(
                keys=[f"{self._prefix}:{kind}:{name}"], args=[60_000 / per_minute, per_minute, 1 if take else 0]
            )
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning("rate limits: Redis unavailable (%s); limiting in this process", type(exc).__name__)
            return False
        if not allowed:
            raise RateLimited(max(1, -(-int(wait_ms) // 1000)))
        return True

    async def before_lookup(self, address: str) -> None:
        if not (await self._bucket("a", address, take=False) and await self._bucket("g", GLOBAL, take=False)):
            await self._fallback.before_lookup(address)

    async def invalid_key(self, address: str) -> None:
        reached = True
        for kind, name in (("a", address), ("g", GLOBAL)):
            with contextlib.suppress(RateLimited):
                reached = await self._bucket(kind, name, take=True) and reached
        if not reached:
            await self._fallback.invalid_key(address)

    async def customer(self, customer_id: int) -> None:
        if not await self._bucket("c", str(customer_id), take=True):
            await self._fallback.customer(customer_id)

    async def aclose(self) -> None:
        await self._redis.aclose()
