"""The background worker: the same code as the API, another entry point.

It claims work with ``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of workers and API
processes can run against one Postgres. Its loops (dispatch, status sync, catalog sync) are added
by the orders and catalog domains; this module owns their scheduling and clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)


class Worker:
    """Runs the periodic steps until asked to stop; a step in progress is always finished."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def step(self) -> None:
        """One pass over every loop. Nothing to do until the orders domain adds its steps."""

    async def run(self) -> None:
        interval = self.runtime.settings.worker_interval_seconds
        log.info("worker started")
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception:
                log.exception("worker step failed; continuing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)
        log.info("worker stopped")


async def run_worker(settings: Settings, database_url: str) -> None:
    """``gateway worker``: run until SIGTERM or SIGINT, then finish the current step and exit."""
    runtime = Runtime.build(settings, database_url)
    worker = Worker(runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await runtime.aclose()
