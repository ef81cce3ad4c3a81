"""The upstream call log: every attempt the adapter makes, written to ``upstream_calls``.

The adapter reports attempts synchronously through its observer hook. Reads are buffered and a
background task inserts them in one statement per batch, so logging never adds a database round
trip to an upstream call. The attempts of a send that may leave an order or refill ``unknown``
(``add``, ``refill``) are *collected* instead (:func:`collecting`) and written by the orders code
in the same statement or transaction as the outcome they led to: they are the operator's evidence
for resolving it, so they must not sit in memory when a crash can turn the order unknown. The order
or refill an attempt belongs to comes from a context variable the orders code sets around its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.upstream import AttemptRecord

log = logging.getLogger(__name__)

current_order_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_order_id", default=None)
current_refill_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_refill_id", default=None)
_collector: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("call_collector", default=None)

MAX_BUFFER = 50_000

# The one way rows reach ``upstream_calls`` (a batch of the buffer, or the attempts of one send).
INSERT_CALLS_SQL = """
    INSERT INTO upstream_calls (provider_id, order_id, refill_id, action, outcome, http_status, duration_ms,
                                error, request_id, created_at)
    SELECT provider_id, order_id, refill_id, action, outcome, http_status, duration_ms, error, request_id, created_at
    FROM jsonb_to_recordset(CAST(:calls AS jsonb)) AS c(
        provider_id bigint, order_id bigint, refill_id bigint, action text, outcome text, http_status integer,
        duration_ms integer, error text, request_id text, created_at timestamptz)
"""
_INSERT_ROWS = text(INSERT_CALLS_SQL).bindparams(bindparam("calls", type_=JSONB))


@contextlib.contextmanager
def about(order_id: int | None = None, refill_id: int | None = None) -> Iterator[None]:
    """Attribute the upstream calls made inside this block to an order or refill."""
    order_token = current_order_id.set(order_id)
    refill_token = current_refill_id.set(refill_id)
    try:
        yield
    finally:
        current_order_id.reset(order_token)
        current_refill_id.reset(refill_token)


@contextlib.contextmanager
def collecting() -> Iterator[list[dict[str, Any]]]:
    """Collect the attempts made inside this block (rows for ``upstream_calls``, JSON-ready)
    instead of buffering them; the caller writes them with the outcome."""
    rows: list[dict[str, Any]] = []
    token = _collector.set(rows)
    try:
        yield rows
    finally:
        _collector.reset(token)


def call_row(record: AttemptRecord) -> dict[str, Any]:
    """One ``upstream_calls`` row for an attempt, attributed by the context variables; its time
    is when the attempt started (written later, it would otherwise show when it was logged)."""
    started = datetime.now(UTC) - timedelta(seconds=max(0.0, record.duration))
    return {
        "provider_id": record.provider_id,
        "order_id": current_order_id.get(),
        "refill_id": current_refill_id.get(),
        "action": record.action[:20],
        "outcome": record.outcome,
        "http_status": record.http_status,
        "duration_ms": int(record.duration * 1000),
        "error": record.error[:500] if record.error else None,
        "request_id": record.request_id[:64] if record.request_id else None,
        "created_at": started.isoformat(),
    }


class CallLog:
    def __init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._dropped = 0
        self._wakeup = asyncio.Event()

    def observe(self, record: AttemptRecord) -> None:
        """The adapter's observer hook: buffer the attempt (never blocks, never raises)."""
        if not isinstance(record.provider_id, int):
            return
        collected = _collector.get()
        if collected is not None:
            collected.append(call_row(record))
            return
        if len(self._buffer) >= MAX_BUFFER:
            self._dropped += 1
            return
        self._buffer.append(call_row(record))
        if len(self._buffer) >= 500:
            self._wakeup.set()

    async def flush(self, engine: AsyncEngine) -> int:
        """Write what is buffered; returns how many rows."""
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        try:
            async with engine.begin() as conn:
                await conn.execute(_INSERT_ROWS, {"calls": rows})
        except Exception:
            log.warning("could not write %d upstream call records", len(rows), exc_info=True)
            return 0
        if self._dropped:
            log.warning("upstream call log dropped %d records (buffer full)", self._dropped)
            self._dropped = 0
        return len(rows)

    async def run(self, engine: AsyncEngine, interval: float = 1.0) -> None:
        """Flush every ``interval`` seconds (sooner when the buffer fills) until cancelled."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=interval)
                self._wakeup.clear()
                await self.flush(engine)
        finally:
            await asyncio.shield(self.flush(engine))
