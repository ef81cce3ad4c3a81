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
from gateway.db import create_engine, create_sessionmaker, resolve_database_url
from gateway.settings import Settings
from gateway.upstream import UpstreamConfig, UpstreamRegistry
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
        return cls(
            settings=settings,
            database_url=url,
            engine=engine,
            sessions=create_sessionmaker(engine),
            upstreams=UpstreamRegistry(
                upstream_config(settings), transport_factory=transport_factory, observer=call_log.observe
            ),
            catalog=Catalog(engine, settings.min_margin_percent),
            call_log=call_log,
            rate_limiter=RateLimiter(settings.rate_limit_per_minute),
        )

    def start_background(self) -> None:
        """Start the process-wide background tasks (the call log writer)."""
        self._tasks.append(asyncio.create_task(self.call_log.run(self.engine), name="upstream-call-log"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.call_log.flush(self.engine)
        await self.upstreams.aclose()
        await self.engine.dispose()
