"""A per-provider circuit breaker.

After ``failure_threshold`` consecutive transport failures (not sent / unknown; a rejection is an
answer, so it counts as the upstream being alive) the circuit opens: calls fail fast without
touching the network. After ``reset_timeout`` one probe call is let through (half-open); its
success closes the circuit, its failure opens it again for another ``reset_timeout``.

The breaker is in-memory and per process on purpose: it only protects an upstream (and the
worker's time) from hammering; nothing depends on it for correctness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import msgspec

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class BreakerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The breaker's state and counters, for metrics and the admin API."""

    state: BreakerState
    consecutive_failures: int
    failures: int
    successes: int
    short_circuited: int
    times_opened: int
    opened_at: float | None
    retry_in: float | None
    # Since when (the breaker's clock) the circuit has not been closed: unlike ``opened_at`` it is
    # not moved by a failed half-open probe re-opening it, so it says how long the provider has been down.
    unhealthy_since: float | None = None
    # When (the breaker's clock) a call last got an answer: a process that has not called the
    # provider lately knows nothing about its health.
    last_success_at: float | None = None


class CircuitBreaker:
    """Closed / open / half-open breaker with an injectable monotonic clock."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state: BreakerState = "closed"
        self._opened_at: float | None = None
        self._unhealthy_since: float | None = None
        self._last_success_at: float | None = None
        self._probe_in_flight = False
        self.consecutive_failures = 0
        self.failures = 0
        self.successes = 0
        self.short_circuited = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        """The current state; an open circuit whose cool-down has passed reads as half-open."""
        if self._state == "open" and self._cooled_down():
            return "half_open"
        return self._state

    def _cooled_down(self) -> bool:
        return self._opened_at is not None and self._clock() - self._opened_at >= self.reset_timeout

    def allow(self) -> bool:
        """Whether a call may go to the network now. A ``True`` must be followed by exactly one
        of :meth:`record_success`, :meth:`record_failure` or :meth:`record_abandoned`.

        In half-open state only one probe is let through at a time; the others fail fast until
        the probe's outcome is known.
        """
        if self._state == "closed":
            return True
        if self._state == "open" and self._cooled_down():
            self._state = "half_open"
        if self._state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        self.short_circuited += 1
        return False

    def record_success(self) -> None:
        """The upstream answered (an answer with an error counts: it is alive)."""
        self.successes += 1
        self.consecutive_failures = 0
        self._probe_in_flight = False
        self._state = "closed"
        self._opened_at = None
        self._unhealthy_since = None
        self._last_success_at = self._clock()

    def record_failure(self) -> None:
        """A transport failure: the request did not leave, or no readable answer came back."""
        self.failures += 1
        self.consecutive_failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if was_probe or self._state == "half_open" or self.consecutive_failures >= self.failure_threshold:
            self._open()

    def record_abandoned(self) -> None:
        """The call was cancelled by its caller before an outcome: it proves nothing either way,
        but a half-open probe slot must be released or the circuit would stay stuck."""
        self._probe_in_flight = False

    def _open(self) -> None:
        if self._state != "open":
            self.times_opened += 1
        self._state = "open"
        self._opened_at = self._clock()
        if self._unhealthy_since is None:
            self._unhealthy_since = self._opened_at

    def snapshot(self) -> BreakerSnapshot:
        """A copy of the state and counters."""
        state = self.state
        retry_in = None
        if state == "open" and self._opened_at is not None:
            retry_in = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
        return BreakerSnapshot(
            state=state,
            consecutive_failures=self.consecutive_failures,
            failures=self.failures,
            successes=self.successes,
            short_circuited=self.short_circuited,
            times_opened=self.times_opened,
            opened_at=self._opened_at,
            retry_in=retry_in,
            unhealthy_since=self._unhealthy_since,
            last_success_at=self._last_success_at,
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, consecutive_failures={self.consecutive_failures})"
