"""The background worker: the same code as the API, another entry point.

Each pass: recover (stale ``submitting`` -> ``unknown``, expired ``queued`` -> canceled and refunded),
dispatch due queued orders, sync the status of active orders, and sync catalogs when due. Work is
claimed with ``FOR UPDATE SKIP LOCKED`` or leases, so any number of workers and API processes can
run against one Postgres; nothing in this process' memory is needed for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable

from gateway.catalog.sync import PeriodicSync
from gateway.failpoints import failpoint
from gateway.observability.logs import request_context
from gateway.orders.dispatch import dispatch
from gateway.orders.outcomes import OrderToSend
from gateway.orders.polling import BATCH as POLL_BATCH
from gateway.orders.refills import sync_refills
from gateway.orders.routing import RoutePlan
from gateway.orders.sync import check_statuses, sweep
from gateway.orders.watch import evaluate_alerts
from gateway.orders.webhooks import deliver_due
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)

DISPATCH_BATCH = 50
DISPATCH_CONCURRENCY = 20
SWEEP_EVERY_SECONDS = 10.0
# The longest one step's status sync keeps going while full batches are due (then the other steps run).
STATUS_SYNC_BUDGET_SECONDS = 2.0
# The operational alerts read a few aggregates; every 10 s is fresh enough for a human.
ALERTS_EVERY_SECONDS = 10.0


class Worker:
    """Runs the periodic steps until asked to stop; a step in progress is always finished."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop = asyncio.Event()
        self.catalog_sync = PeriodicSync(
            runtime.sessions,
            runtime.providers,
            runtime.settings.catalog_sync_interval_seconds,
            runtime.margin_guard,
        )
        self._last_sweep = 0.0
        self._last_alerts = float("-inf")
        # The last status sync stopped at its budget with more due.
        self._behind = False
        self.last_step_seconds: dict[str, float] = {}

    def stop(self) -> None:
        self._stop.set()

    async def dispatch_queued(self) -> int:
        """Send due queued orders upstream; returns how many were sent."""
        rt = self.runtime
        claimed = await rt.orders.claim_queued(DISPATCH_BATCH)
        if not claimed:
            return 0
        failpoint("dispatch_after_claim")
        revision = await rt.providers.directory.refresh()
        book = await rt.catalog.book()
        limit = asyncio.Semaphore(DISPATCH_CONCURRENCY)

        async def one(order: OrderToSend) -> None:
            service = book.services.get(order.service_id)
            plan = None if service is None else RoutePlan.for_queued(service, order)
            # The order's request id rides along, so the send is logged under the add that caused it.
            async with limit:
                with request_context(order.request_id):
                    await dispatch(
                        rt.orders, rt.providers, rt.pending_outcomes, order, rt.policy, revision=revision, plan=plan
                    )

        # Shielded: a stop request lets every claimed order finish its send and record.
        await asyncio.shield(asyncio.gather(*(one(order) for order in claimed)))
        return len(claimed)

    async def sync_statuses(self) -> int:
        """Status sync passes while they find a full batch due, within a time budget: one pass of
        500 per worker interval would cap a worker at 500 answers a second, whatever the backlog;
        the budget keeps dispatch and the other steps from waiting behind a large one."""
        rt = self.runtime
        deadline = time.monotonic() + STATUS_SYNC_BUDGET_SECONDS
        checked = 0
        self._behind = False
        while True:
            leased = await check_statuses(rt.orders, rt.providers, rt.policy.status_sync_interval_seconds)
            checked += leased
            if leased < POLL_BATCH or self._stop.is_set():
                return checked
            if time.monotonic() >= deadline:
                self._behind = True  # more is due: the next pass starts without the pause
                return checked

    async def step(self) -> None:
        """One pass over every loop."""
        now = time.monotonic()
        sweep_every = min(SWEEP_EVERY_SECONDS, self.runtime.settings.submitting_stale_seconds / 3)
        if now - self._last_sweep >= sweep_every:
            await self._timed("sweep", lambda: sweep(self.runtime.orders, self.runtime.policy))
            await self._timed("idempotency_purge", self.runtime.idempotency.purge_expired)
            self._last_sweep = now
        await self._timed("dispatch", self.dispatch_queued)
        rt = self.runtime
        await self._timed("status_sync", self.sync_statuses)
        await self._timed("refill_sync", lambda: sync_refills(rt.orders, rt.providers))
        await self._timed("webhooks", lambda: deliver_due(rt.engine, rt.webhooks, observe=rt.metrics.observe_webhook))
        await self._timed("catalog_sync", lambda: self.catalog_sync.step(now))
        if now - self._last_alerts >= ALERTS_EVERY_SECONDS:
            await self._timed("alerts", self.evaluate_alerts)
            self._last_alerts = now

    async def evaluate_alerts(self) -> None:
        """Open and close the operational alerts (gateway/orders/watch.py) for what holds now."""
        rt = self.runtime
        await evaluate_alerts(rt.orders, rt.sessions, rt.providers.breakers(), rt.watch_policy, time.monotonic())

    async def _timed(self, name: str, work: Callable[[], Awaitable[object]]) -> None:
        """Run one step; its failure is logged and counted, and never stops the steps after it
        (a status sync that fails must not hold back dispatch, refills or catalog sync)."""
        start = time.perf_counter()
        try:
            failpoint(f"worker_step_{name}")
            await work()
        except Exception:
            self.runtime.metrics.worker_step_failed(name)
            log.exception("worker step %s failed; continuing", name)
        finally:
            self.last_step_seconds[name] = time.perf_counter() - start
            self.runtime.metrics.observe_worker_step(name, self.last_step_seconds[name])

    async def run(self) -> None:
        interval = self.runtime.settings.worker_interval_seconds
        log.info("worker started")
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception:
                log.exception("worker step failed; continuing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0 if self._behind else interval)
        log.info("worker stopped")


async def run_worker(settings: Settings, database_url: str) -> None:
    """``gateway worker``: run until SIGTERM or SIGINT, then finish the current step and exit."""
    runtime = Runtime.build(settings, database_url)
    runtime.start_background()
    worker = Worker(runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await runtime.aclose()
