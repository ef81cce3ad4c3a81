"""The panel's accelerated clock: state is computed from simulated time, never from a loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SimClock:
    """Simulated epoch seconds: real time scaled by ``speed``, plus whatever was ``advance``d.

    Simulated time starts at the real wall-clock time, so timestamps look like dates.
    """

    def __init__(
        self,
        speed: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base = wall()
        self._anchor = monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now(self) -> float:
        """The current simulated time (epoch seconds)."""
        with self._lock:
            return self._base + (self._monotonic() - self._anchor) * self._speed

    def advance(self, seconds: float) -> float:
        """Jump ahead (never back: orders only move forward); returns the new simulated time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._base += seconds
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Change the pace from now on, without a jump in simulated time."""
        if speed < 0:
            raise ValueError("speed must not be negative")
        with self._lock:
            now_mono = self._monotonic()
            self._base += (now_mono - self._anchor) * self._speed
            self._anchor = now_mono
            self._speed = speed
