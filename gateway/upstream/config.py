"""Timeouts, limits and retry counts of the upstream adapter (the lead maps settings onto this)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UpstreamConfig"]


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Knobs of one provider's client. Times are in seconds.

    ``deadline`` bounds one whole attempt (pool wait, connect, send, response headers *and* the
    body read): httpx's read timeout is per socket read, so a server dripping a byte every few
    seconds would never trip it. ``connect_timeout`` and ``pool_timeout`` must be below the
    deadline, so that a request stuck before it left is reported by them as "not sent" instead of
    by the deadline as "unknown".
    """

    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    deadline: float = 30.0

    max_connections: int = 10
    max_keepalive_connections: int = 5
    # Below the idle timeout of typical upstream servers (Apache's default KeepAliveTimeout is
    # 5 s, nginx 75 s, shared hosts often 5-15 s): reusing a connection the server is closing at
    # that very moment turns a perfectly good write into an "unknown" one.
    keepalive_expiry: float = 4.0

    # Attempts in total (1 = no retry). Reads retry on "not sent" and "unknown"; writes only on
    # "not sent" (PROTOCOL.md section 5).
    read_attempts: int = 3
    write_attempts: int = 2
    backoff_base: float = 0.25
    backoff_max: float = 4.0

    # Multi calls (status, refill_status) are split into chunks of at most this many ids.
    max_ids_per_call: int = 100
    # Largest answer read; a bigger body is "unknown" (protects memory from a broken upstream).
    max_response_bytes: int = 32 * 1024 * 1024

    breaker_failure_threshold: int = 5
    breaker_reset_timeout: float = 30.0

    # Loopback/private upstreams are refused unless this is set (tests, the local simulator).
    allow_private: bool = False
    # How long a host's "resolves only to public addresses" verdict is reused.
    resolve_cache_ttl: float = 60.0

    user_agent: str = "smm-gateway/0.1"

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout", "deadline"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.connect_timeout >= self.deadline or self.pool_timeout >= self.deadline:
            raise ValueError("connect_timeout and pool_timeout must be below deadline")
        if self.read_attempts < 1 or self.write_attempts < 1:
            raise ValueError("attempt counts must be at least 1")
        if not 1 <= self.max_ids_per_call <= 100:
            raise ValueError("max_ids_per_call must be between 1 and 100")
        if self.max_connections < 1 or self.max_keepalive_connections < 0:
            raise ValueError("connection limits must be positive")
        if self.breaker_failure_threshold < 1 or self.breaker_reset_timeout < 0:
            raise ValueError("breaker settings must be positive")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff delays must not be negative")
