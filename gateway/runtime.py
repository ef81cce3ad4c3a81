"""What one gateway process holds while it runs: settings, the engine, the session factory,
the upstream clients, the price book and the upstream call log.

Built by :func:`gateway.app.create_app` or the worker (never at import time).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.calllog import CallLog
from gateway.catalog.pricebook import Catalog
from gateway.db import HotPathPool, create_engine, create_sessionmaker, resolve_database_url
from gateway.observability.logs import REDACTOR, log_attempt
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.upstream import AttemptRecord, UpstreamConfig, UpstreamRegistry
from gateway.upstream.registry import TransportFactory
from gateway.v2.ratelimit import RateLimiter


def upstream_config(settings: Settings) -> UpstreamConfig:
    deadline = settings.upstream_timeout_seconds
    connect = min(settings.upstream_connect_timeout_seconds, deadline / 2)
    return UpstreamConfig(
        connect_timeout=connect,
        pool_timeout=connect,
        read_timeout=deadline,
        write_timeout=deadline,
        deadline=deadline,
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
        allow_private=settings.allow_private_upstreams,
        breaker_failure_threshold=settings.upstream_breaker_failures,
        breaker_reset_timeout=settings.upstream_breaker_reset_seconds,
    )


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    upstreams: UpstreamRegistry
    catalog: Catalog
    call_log: CallLog
    rate_limiter: RateLimiter
    # The customer hot path's own asyncpg pool (single statements; see gateway.db.HotPathPool).
    hot: HotPathPool
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        database_url: str | None = None,
        *,
        transport_factory: TransportFactory | None = None,
    ) -> Runtime:
        """Resolve the database (starting the embedded one if needed) and build the engine.

        ``transport_factory`` replaces the network for upstream calls (tests, benchmarks).
        """
        url = database_url or resolve_database_url(settings)
        engine = create_engine(url, settings)
        call_log = CallLog()
        metrics = GatewayMetrics()

        def observe(record: AttemptRecord) -> None:
            call_log.observe(record)
            metrics.observe_attempt(record)
            log_attempt(record)

        return cls(
            settings=settings,
            database_url=url,
            engine=engine,
            sessions=create_sessionmaker(engine),
            upstreams=UpstreamRegistry(
                upstream_config(settings), transport_factory=transport_factory, observer=observe, on_key=REDACTOR.add
            ),
            catalog=Catalog(engine, settings.min_margin_percent),
            call_log=call_log,
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
            hot=HotPathPool(url, settings.db_pool_size),
            metrics=metrics,
        )

    def start_background(self) -> None:
        """Start the process-wide background tasks (the call log writer; in single-upstream mode,
        the one-off creation and first sync of the provider)."""
        self._tasks.append(asyncio.create_task(self.call_log.run(self.engine), name="upstream-call-log"))
        if self.settings.upstream_url is not None:
            from gateway.bootstrap import run_single_upstream  # it builds on the catalog, which needs Runtime

            self._tasks.append(asyncio.create_task(run_single_upstream(self), name="single-upstream"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.call_log.flush(self.engine)
        await self.upstreams.aclose()
        await self.hot.close()
        await self.engine.dispose()
