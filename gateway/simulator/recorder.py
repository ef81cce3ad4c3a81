"""The log of every request the panel received, so tests can count what really arrived upstream."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

NO_ACTION = "(none)"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the panel saw it; ``params`` never include the key.

    ``processed`` says whether the action ran (and so may have changed state), which is what
    matters when a fault hid the answer: a dropped ``add`` with ``processed=True`` placed an order.
    """

    seq: int
    received_at: float
    sim_time: float
    method: str
    content_type: str
    action: str | None
    params: dict[str, str]
    key_valid: bool
    processed: bool
    error: str | None
    fault: str | None

    @property
    def outcome(self) -> str:
        """``ok``, ``error: <text>`` or ``fault: <kind>`` (a fault wins: it is what the client saw)."""
        if self.fault is not None:
            return f"fault: {self.fault}"
        return "ok" if self.error is None else f"error: {self.error}"

    def to_json(self) -> dict[str, Any]:
        """The record as the control plane shows it."""
        return {**asdict(self), "outcome": self.outcome}


class RequestLog:
    """A bounded, thread-safe log of received requests, plus unbounded counts per action."""

    def __init__(self, max_records: int) -> None:
        self._lock = threading.Lock()
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._counts: Counter[str] = Counter()
        self._seq = 0

    def next_seq(self) -> int:
        """Reserve the sequence number of a request that just arrived."""
        with self._lock:
            self._seq += 1
            return self._seq

    def append(self, record: RecordedRequest) -> None:
        """Store a finished request."""
        with self._lock:
            self._records.append(record)
            self._counts[record.action or NO_ACTION] += 1

    def records(self, action: str | None = None, *, since: int = 0) -> list[RecordedRequest]:
        """Kept records in arrival order, optionally of one action and after sequence ``since``."""
        with self._lock:
            return sorted(
                (r for r in self._records if r.seq > since and (action is None or r.action == action)),
                key=lambda r: r.seq,
            )

    def count(self, action: str | None = None) -> int:
        """How many requests (of one action) arrived since the last clear."""
        with self._lock:
            return self._counts[action] if action is not None else sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """Requests per action since the last clear (``(none)`` for requests without an action)."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Forget everything recorded."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
