"""The operational alerts: money that is stuck or leaking, evaluated by the worker.

Each evaluation reads a handful of aggregates (:meth:`OrderStore.alert_facts`, the providers'
recorded balances, this process' circuit breakers) and reconciles every kind of alert with them
(:func:`gateway.alerts.reconcile`): an alert opens when its condition starts and closes when it ends.

| kind | subject | open while |
|---|---|---|
| ``low_balance`` | ``provider:ID`` | an enabled provider's last recorded balance is under its warning level |
| ``orders_unknown`` | ``orders`` | any order's upstream outcome is unknown (waits for the operator) |
| ``orders_queued`` | ``orders`` | an order has been queued longer than ``GATEWAY_QUEUED_ALERT_SECONDS`` |
| ``circuit_open`` | ``provider:ID`` | this process' circuit to the provider has not been closed for ``GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS`` |
| ``order_anomalies`` | the anomaly kind | an upstream answer showed that anomaly in the last day |
| ``charge_drift`` | ``provider:ID`` | the provider billed the last day's orders more than ``GATEWAY_DRIFT_ALERT_PERCENT`` away from their expected cost (and at least 0.01) |

The circuit breakers live in each process: the worker that evaluates sees its own. Several workers
may disagree about a circuit, so only a worker that sees it open long enough opens the alert, and a
worker closes it only when its own circuit to that provider is closed and a call of its got an answer
within the threshold (a worker that has not called the provider lately leaves the alert alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import alerts
from gateway.catalog.balances import is_low
from gateway.catalog.providers import list_providers
from gateway.money import format_money
from gateway.orders.drift import drift_percent
from gateway.orders.store import AlertFacts, OrderStore
from gateway.upstream.breaker import BreakerSnapshot

DAY_SECONDS = 86400.0
# A drift smaller than a cent is rounding, whatever its percentage.
MIN_DRIFT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """The thresholds (settings ``GATEWAY_QUEUED_ALERT_SECONDS``, ``GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS``,
    ``GATEWAY_DRIFT_ALERT_PERCENT``)."""

    queued_alert_seconds: float
    circuit_open_alert_seconds: float
    drift_alert_percent: Decimal


def drift_conditions(facts: AlertFacts, threshold_percent: Decimal) -> dict[str, dict[str, Any]]:
    """The providers whose billing drifted past the threshold over the window, with the figures."""
    conditions: dict[str, dict[str, Any]] = {}
    for drift in facts.drift:
        difference = drift.reported - drift.expected
        percent = drift_percent(drift.expected, drift.reported)
        if abs(difference) < MIN_DRIFT:
            continue
        if percent is not None and abs(percent) <= threshold_percent:
            continue
        conditions[f"provider:{drift.provider_id}"] = {
            "provider_id": drift.provider_id,
            "orders": drift.orders,
            "expected_cost": format_money(drift.expected),
            "reported_cost": format_money(drift.reported),
            "drift": format_money(difference),
            "drift_percent": None if percent is None else str(percent),
            "threshold_percent": str(threshold_percent),
            "window_hours": 24,
        }
    return conditions


def order_conditions(facts: AlertFacts, policy: WatchPolicy) -> dict[str, dict[str, dict[str, Any]]]:
    """``orders_unknown``, ``orders_queued`` and ``order_anomalies`` conditions from the facts."""
    unknown: dict[str, dict[str, Any]] = {}
    if facts.unknown:
        unknown["orders"] = {"orders": facts.unknown, "order_ids": facts.unknown_sample}
    queued: dict[str, dict[str, Any]] = {}
    if facts.queued_old:
        queued["orders"] = {
            "orders": facts.queued_old,
            "order_ids": facts.queued_sample,
            "oldest_seconds": int(facts.oldest_queued_seconds),
            "threshold_seconds": int(policy.queued_alert_seconds),
        }
    anomalies = {
        kind: {"orders": count, "order_ids": sample, "window_hours": 24}
        for kind, (count, sample) in facts.anomalies.items()
    }
    return {"orders_unknown": unknown, "orders_queued": queued, "order_anomalies": anomalies}


def circuit_conditions(
    breakers: Mapping[int | str, BreakerSnapshot], now: float, threshold_seconds: float
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Providers whose circuit has not been closed for longer than the threshold, and the subjects of
    the providers whose circuit this process sees closed (the only alerts it may close)."""
    down: dict[str, dict[str, Any]] = {}
    closed: list[str] = []
    for provider, snapshot in breakers.items():
        subject = f"provider:{provider}"
        if snapshot.state == "closed" or snapshot.unhealthy_since is None:
            # Only a recent answer proves the provider is back: a process that has not called it
            # lately (a worker without work for it) must not close what another one sees open.
            if snapshot.last_success_at is not None and now - snapshot.last_success_at <= threshold_seconds:
                closed.append(subject)
            continue
        seconds = now - snapshot.unhealthy_since
        if seconds >= threshold_seconds:
            down[subject] = {
                "provider_id": provider,
                "state": snapshot.state,
                "down_seconds": int(seconds),
                "threshold_seconds": int(threshold_seconds),
            }
    return down, closed


async def evaluate_alerts(
    store: OrderStore,
    sessions: async_sessionmaker[AsyncSession],
    breakers: Mapping[int | str, BreakerSnapshot],
    policy: WatchPolicy,
    now: float,
) -> dict[str, alerts.Reconciled]:
    """Open and close every operational alert for the conditions that hold now (``now``: the
    breakers' monotonic clock). Returns what changed per kind."""
    facts = await store.alert_facts(policy.queued_alert_seconds, DAY_SECONDS)
    changes: dict[str, alerts.Reconciled] = {}
    async with sessions.begin() as session:
        low = {
            f"provider:{p.id}": {
                "provider_id": p.id,
                "name": p.name,
                "balance": format_money(p.last_balance),
                "currency": p.last_balance_currency,
                "warning_level": format_money(p.low_balance_threshold),
                "checked_at": p.last_balance_at,
            }
            for p in await list_providers(session)
            if p.enabled
            and p.last_balance is not None
            and p.low_balance_threshold is not None
            and is_low(p.low_balance_threshold, p.last_balance)
        }
        changes["low_balance"] = await alerts.reconcile(session, "low_balance", low)
        for kind, conditions in order_conditions(facts, policy).items():
            changes[kind] = await alerts.reconcile(session, kind, conditions)
        drift = drift_conditions(facts, policy.drift_alert_percent)
        changes["charge_drift"] = await alerts.reconcile(session, "charge_drift", drift)
        down, closed = circuit_conditions(breakers, now, policy.circuit_open_alert_seconds)
        changes["circuit_open"] = await alerts.reconcile(session, "circuit_open", down, within=[*down, *closed])
    return changes
