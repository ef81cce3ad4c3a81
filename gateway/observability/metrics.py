"""Prometheus metrics, served at ``GET /metrics`` in the text format.

Each app (each :class:`~gateway.runtime.Runtime`) has its own ``CollectorRegistry``, so any
number of apps can live in one process (tests) without colliding. Counters and histograms are
fed as things happen (v2 requests, upstream attempts, worker steps); the order gauges and the
circuit breaker states are computed at scrape time: the orders domain's snapshot (one ``GROUP BY``
over the orders, :meth:`gateway.orders.store.OrderStore.snapshot`) and a look at this process'
breakers. Label values are bounded: v2 actions are the protocol's (anything else
is ``unknown``), outcomes a handful, providers the configured ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from gateway.upstream import AttemptRecord, BreakerSnapshot

__all__ = ["GatewayMetrics", "OrderSnapshot", "metrics_response"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BREAKER_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """Orders per (status, state), and the two ages an operator alerts on (0 when none)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_queued_seconds: float = 0.0
    stalest_active_seconds: float = 0.0
    held: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)
    # Customers' status webhooks: waiting to be delivered (and the oldest one's age), given up.
    webhooks_pending: int = 0
    webhooks_oldest_pending_seconds: float = 0.0
    webhooks_failed: int = 0
    # Seconds the most overdue live order has waited past its next status check (0 when none).
    status_check_lag_seconds: float = 0.0


class _ScrapeTimeValues(Collector):
    """Gauges whose values are taken at scrape time (set just before the registry is rendered)."""

    def __init__(self) -> None:
        self.orders: OrderSnapshot | None = None
        self.breakers: Mapping[int | str, BreakerSnapshot] = {}
        self.alerts: Mapping[str, int] | None = None

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gateway_database_up", "1 when the last scrape could read the orders table")
        up.add_metric([], 0.0 if self.orders is None else 1.0)
        yield up
        breaker = GaugeMetricFamily(
            "gateway_upstream_circuit_state",
            "Circuit breaker state per provider in this process (1 for the current state)",
            labels=["provider", "state"],
        )
        for provider, snapshot in sorted(self.breakers.items(), key=lambda item: str(item[0])):
            for state in BREAKER_STATES:
                breaker.add_metric([str(provider), state], 1.0 if snapshot.state == state else 0.0)
        yield breaker
        if self.alerts is not None:
            alerts = GaugeMetricFamily(
                "gateway_alerts_open", "Open alerts by kind (GET /admin/alerts?open=true)", labels=["kind"]
            )
            for kind, count in sorted(self.alerts.items()):
                alerts.add_metric([kind], float(count))
            yield alerts
        if self.orders is None:
            return
        orders = GaugeMetricFamily(
            "gateway_orders", "Orders by protocol status and dispatch state", labels=["status", "state"]
        )
        for (status, state), count in sorted(self.orders.counts.items()):
            orders.add_metric([status, state], float(count))
        yield orders
        yield GaugeMetricFamily(
            "gateway_oldest_queued_order_age_seconds",
            "Age of the oldest order still queued (0 when none)",
            value=self.orders.oldest_queued_seconds,
        )
        yield GaugeMetricFamily(
            "gateway_stalest_active_order_age_seconds",
            "Seconds since the least recently checked placed, non-terminal order was checked (0 when none)",
            value=self.orders.stalest_active_seconds,
        )
        yield GaugeMetricFamily(
            "gateway_status_check_lag_seconds",
            "Seconds the most overdue placed, non-terminal order has waited past its next status check (0 when none)",
            value=self.orders.status_check_lag_seconds,
        )
        yield GaugeMetricFamily(
            "gateway_orders_held",
            "Orders whose upstream final status waits for a usable remains or the operator's settlement",
            value=float(self.orders.held),
        )
        anomalies = CounterMetricFamily(
            "gateway_order_anomalies",
            "Distinct anomalies recorded in upstream answers about orders, by kind",
            labels=["kind"],
        )
        for kind, count in sorted(self.orders.anomalies.items()):
            anomalies.add_metric([kind], float(count))
        yield anomalies
        yield GaugeMetricFamily(
            "gateway_webhooks_pending",
            "Webhook events not yet delivered (being retried)",
            value=self.orders.webhooks_pending,
        )
        yield GaugeMetricFamily(
            "gateway_webhooks_oldest_pending_seconds",
            "Age of the oldest webhook event not yet delivered (0 when none)",
            value=self.orders.webhooks_oldest_pending_seconds,
        )
        yield GaugeMetricFamily(
            "gateway_webhooks_failed",
            "Webhook events given up after 24 h of retries (until resent)",
            value=float(self.orders.webhooks_failed),
        )


class GatewayMetrics:
    """One app's metrics: its registry and the hooks that feed it."""

    def __init__(self) -> None:
        self._v2_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._attempt_children: dict[tuple[int | str, str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        self.v2_requests = Counter(
            "gateway_v2_requests", "Customer API calls", ["action", "outcome"], registry=self.registry
        )
        self.v2_duration = Histogram(
            "gateway_v2_request_duration_seconds",
            "Customer API call latency",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls",
            "Upstream attempts by provider, action and outcome (ok, rejected, not_sent, unknown)",
            ["provider", "action", "outcome"],
            registry=self.registry,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_call_duration_seconds",
            "Upstream attempt duration",
            ["provider", "action"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.worker_step_failures = Counter(
            "gateway_worker_step_failures",
            "Worker steps that failed (the pass goes on with the next step)",
            ["step"],
            registry=self.registry,
        )
        self.worker_steps = Histogram(
            "gateway_worker_step_duration_seconds",
            "Duration of each step of the background worker's pass",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "gateway_webhook_deliveries",
            "Webhook delivery attempts by this process: delivered, failed (retried later) or given_up",
            ["outcome"],
            registry=self.registry,
        )
        self._scrape = _ScrapeTimeValues()
        self.registry.register(self._scrape)
        ProcessCollector(registry=self.registry)

    def observe_v2(self, action: str, outcome: str, seconds: float) -> None:
        """A v2 call ended; ``action`` must already be a known action name or ``unknown``."""
        # The labelled children are looked up once: this runs on every customer call, and the
        # label sets are few (bounded actions x two outcomes).
        children = self._v2_children.get((action, outcome))
        if children is None:
            children = (self.v2_requests.labels(action, outcome), self.v2_duration.labels(action))
            self._v2_children[(action, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_attempt(self, record: AttemptRecord) -> None:
        """The upstream adapter's observer hook (never raises)."""
        # Children looked up once per label set, as in observe_v2 (providers x actions x outcomes).
        labels = (record.provider_id, record.action, record.outcome)
        children = self._attempt_children.get(labels)
        if children is None:
            provider = str(record.provider_id)
            children = (
                self.upstream_calls.labels(provider, record.action, record.outcome),
                self.upstream_duration.labels(provider, record.action),
            )
            self._attempt_children[labels] = children
        children[0].inc()
        if math.isfinite(record.duration):
            children[1].observe(record.duration)

    def observe_worker_step(self, step: str, seconds: float) -> None:
        self.worker_steps.labels(step).observe(seconds)

    def worker_step_failed(self, step: str) -> None:
        self.worker_step_failures.labels(step).inc()

    def observe_webhook(self, outcome: str) -> None:
        """One webhook delivery attempt ended: ``delivered``, ``failed`` or ``given_up``."""
        self.webhook_attempts.labels(outcome).inc()

    async def render(
        self,
        orders_now: Callable[[], Awaitable[OrderSnapshot]],
        breakers: Mapping[int | str, BreakerSnapshot],
        alerts_now: Callable[[], Awaitable[Mapping[str, int]]] | None = None,
    ) -> bytes:
        """The text exposition, with the scrape-time values read now (``orders_now`` reads the
        order figures: the orders domain owns that query; ``alerts_now`` the open alerts per kind)."""
        try:
            orders: OrderSnapshot | None = await orders_now()
        except Exception as exc:
            log.warning("metrics: could not read the orders table: %s", type(exc).__name__)
            orders = None
        alerts: Mapping[str, int] | None = None
        if alerts_now is not None and orders is not None:
            try:
                alerts = await alerts_now()
            except Exception as exc:
                log.warning("metrics: could not read the alerts table: %s", type(exc).__name__)
        # No await between setting the values and rendering them: concurrent scrapes cannot mix.
        self._scrape.orders = orders
        self._scrape.alerts = alerts
        self._scrape.breakers = breakers
        return generate_latest(self.registry)


def metrics_response(body: bytes) -> Response[bytes]:
    """``GET /metrics``'s answer (the route is wired by the app, which knows what to render)."""
    return Response(body, media_type=CONTENT_TYPE_LATEST)
