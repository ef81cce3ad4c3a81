"""The upstream call log: every attempt the adapter makes, written to ``upstream_calls`` in batches.

The adapter reports attempts synchronously through its observer hook; the records are buffered
and a background task inserts them in one statement per batch, so logging never adds a database
round trip to an upstream call. The order or refill an attempt belongs to comes from a context
variable the orders code sets around its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.models import UpstreamCall
from gateway.upstream import AttemptRecord

log = logging.getLogger(__name__)

current_order_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_order_id", default=None)
current_refill_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_refill_id", default=None)

MAX_BUFFER = 50_000


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


class CallLog:
    def __init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._dropped = 0
        self._wakeup = asyncio.Event()

    def observe(self, record: AttemptRecord) -> None:
        """The adapter's observer hook: buffer the attempt (never blocks, never raises)."""
        if not isinstance(record.provider_id, int):
            return
        if len(self._buffer) >= MAX_BUFFER:
            self._dropped += 1
            return
        self._buffer.append(
            {
                "provider_id": record.provider_id,
                "order_id": current_order_id.get(),
                "refill_id": current_refill_id.get(),
                "action": record.action[:20],
                "outcome": record.outcome,
                "http_status": record.http_status,
                "duration_ms": int(record.duration * 1000),
                "error": record.error[:500] if record.error else None,
                "request_id": record.request_id[:64] if record.request_id else None,
            }
        )
        if len(self._buffer) >= 500:
            self._wakeup.set()

    async def flush(self, engine: AsyncEngine) -> int:
        """Write what is buffered; returns how many rows."""
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(UpstreamCall), rows)
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
