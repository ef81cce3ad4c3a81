"""The composition root: what one gateway process holds while it runs (settings, the engine and
the hot-path pool, the order store, the provider gateway with the upstream clients, the price
book, the call log, the rate limiter, the metrics and the send outcomes still to record).

Built by :func:`gateway.app.create_app`, the CLI or the worker (never at import time), and used
only by them: they hand each domain function the parts it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.bootstrap import run_single_upstream
from gateway.catalog.margins import MarginGuard
from gateway.catalog.pricebook import Catalog
from gateway.db import HotPathPool, create_engine, create_sessionmaker, resolve_database_url
from gateway.observability.logs import REDACTOR, log_attempt
from gateway.observability.metrics import GatewayMetrics
from gateway.orders.dispatch import drain_pending, keep_recording_pending
from gateway.orders.idempotency import IdempotencyKeys
from gateway.orders.outcomes import PendingOutcomes
from gateway.orders.policy import OrderPolicy
from gateway.orders.store import OrderStore
from gateway.orders.watch import WatchPolicy
from gateway.orders.webhooks import WebhookSender
from gateway.providers import ProviderDirectory, ProviderGateway
from gateway.providers.calllog import CallLog
from gateway.settings import Settings
from gateway.upstream import AttemptRecord, UpstreamConfig, UpstreamRegistry
from gateway.upstream.registry import TransportFactory
from gateway.v2.ratelimit import Limiter, RateLimiter
from gateway.v2.sharedlimit import SharedLimiter

log = logging.getLogger(__name__)


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


def build_limiter(settings: Settings, database_url: str) -> Limiter:
    """The /api/v2 limits: in this process, or shared through Redis when GATEWAY_REDIS_URL is set."""
    local = RateLimiter(
        settings.rate_limit_per_minute,
        invalid_per_minute=settings.invalid_key_limit_per_minute,
        invalid_global_per_minute=settings.invalid_key_global_per_minute,
    )
    if settings.redis_url is None:
        return local
    return SharedLimiter(
        settings.redis_url.get_secret_value(),
        local,
        per_minute=settings.rate_limit_per_minute,
        invalid_per_minute=settings.invalid_key_limit_per_minute,
        invalid_global_per_minute=settings.invalid_key_global_per_minute,
        # The database the limits belong to (without its password): gateways sharing a Redis
        # never share buckets.
        namespace=make_url(database_url).render_as_string(hide_password=True),
    )


@dataclass
class Runtime:
    """The composition root's parts. Domain code never takes this: it takes the parts it uses
    (``orders``, ``providers``, ``catalog``, ``policy``...), so its signature says what it touches."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # The customer hot path's own asyncpg pool (single statements; see gateway.db.HotPathPool).
    hot: HotPathPool
    upstreams: UpstreamRegistry
    providers: ProviderGateway
    orders: OrderStore
    policy: OrderPolicy
    catalog: Catalog
    call_log: CallLog
    rate_limiter: Limiter
    webhooks: WebhookSender
    idempotency: IdempotencyKeys
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    # Send outcomes the database refused to record, retried in the background (gateway.orders.outcomes).
    pending_outcomes: PendingOutcomes = field(default_factory=PendingOutcomes)
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
        hot = HotPathPool(url, settings.db_pool_size, settings.database_pooler)
        call_log = CallLog()
        metrics = GatewayMetrics()

        def observe(record: AttemptRecord) -> None:
            call_log.observe(record)
            metrics.observe_attempt(record)
            log_attempt(record)

        upstreams = UpstreamRegistry(
            upstream_config(settings), transport_factory=transport_factory, observer=observe, on_key=REDACTOR.add
        )
        return cls(
            settings=settings,
            database_url=url,
            engine=engine,
            sessions=create_sessionmaker(engine),
            hot=hot,
            upstreams=upstreams,
            providers=ProviderGateway(upstreams, ProviderDirectory(engine, on_key=REDACTOR.add)),
            orders=OrderStore(engine, hot),
            policy=OrderPolicy.from_settings(settings),
            catalog=Catalog(engine, settings.min_margin_percent),
            call_log=call_log,
            rate_limiter=build_limiter(settings, url),
            webhooks=WebhookSender(allow_private=settings.allow_private_upstreams),
            idempotency=IdempotencyKeys(hot, settings.idempotency_ttl_seconds),
            metrics=metrics,
        )

    @property
    def margin_guard(self) -> MarginGuard:
        """What every catalog sync of this process checks prices with (gateway/catalog/margins.py)."""
        return MarginGuard(self.settings.min_margin_percent, self.settings.margin_policy)

    @property
    def watch_policy(self) -> WatchPolicy:
        """The thresholds of the operational alerts (gateway/orders/watch.py)."""
        return WatchPolicy(
            queued_alert_seconds=self.settings.queued_alert_seconds,
            circuit_open_alert_seconds=self.settings.circuit_open_alert_seconds,
            drift_alert_percent=self.settings.drift_alert_percent,
        )

    def start_background(self) -> None:
        """Start the process-wide background tasks (loading the provider keys into the log
        redactor; the call log writer; the retry of send outcomes the database refused; in
        single-upstream mode, the one-off creation and first sync of the provider)."""
        self._tasks.append(asyncio.create_task(learn_provider_keys(self.providers.directory), name="provider-keys"))
        self._tasks.append(asyncio.create_task(self.call_log.run(self.engine), name="upstream-call-log"))
        self._tasks.append(
            asyncio.create_task(
                keep_recording_pending(self.orders, self.pending_outcomes, self.policy.queued_order_max_age_seconds),
                name="pending-outcomes",
            )
        )
        if self.settings.upstream_url is not None:
            self._tasks.append(
                asyncio.create_task(
                    run_single_upstream(self.settings, self.sessions, self.providers), name="single-upstream"
                )
            )

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        if isinstance(self.rate_limiter, SharedLimiter):
            with contextlib.suppress(Exception):
                await self.rate_limiter.aclose()
        with contextlib.suppress(Exception):
            await self.webhooks.aclose()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await drain_pending(self.orders, self.pending_outcomes, self.policy.queued_order_max_age_seconds)
        await self.call_log.flush(self.engine)
        await self.providers.aclose()
        await self.hot.close()
        await self.engine.dispose()


async def learn_provider_keys(directory: ProviderDirectory, first_retry: float = 1.0, max_retry: float = 60.0) -> None:
    """Teach the log redactor every stored provider key (``directory`` tells it each key it
    reads), retrying until the database answers.

    A key this process never calls with can still reach a log line, e.g. in a database error
    about its row; so every key is masked from start-up, not only from first use.
    """
    delay = first_retry
    while True:
        try:
            await directory.refresh()
            return
        except Exception as exc:
            summary = next(iter(str(exc).splitlines()), "")  # the message line, not the whole dump
            log.warning(
                "could not read the provider keys (to mask them in logs); retrying",
                extra={"error": f"{type(exc).__name__}: {summary}", "retry_in_s": delay},
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_retry)
