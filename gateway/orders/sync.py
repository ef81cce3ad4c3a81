"""Following orders upstream: status sync, the refunds it triggers, and the recovery sweeps.

Active orders are leased in batches (``next_check_at`` pushed ahead under ``FOR UPDATE SKIP
LOCKED``) and checked upstream with no transaction open, up to 100 ids per call. Each order's
answer is then read on its own (:mod:`gateway.orders.answers` decides what every value means) and
applied in one statement of its own, so a value one order's answer makes unstorable never rolls
back, delays or blocks another order, and one provider's failure never stops the others. A final
status is applied once (a conditional update) and its refund once (the same statement, guarded by
the ledger's unique index).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from gateway import calllog
from gateway.catalog.pricebook import ProviderAccess
from gateway.dberrors import error_summary
from gateway.failpoints import failpoint
from gateway.orders import queries
from gateway.orders.answers import Anomaly, OrderFacts, read_status
from gateway.orders.dispatch import cancel_unsent
from gateway.orders.queries import OrderToCheck
from gateway.orders.refills import mark_stale_refills_unknown
from gateway.runtime import Runtime
from gateway.upstream import ItemError, OrderStatus, UnsafeUpstreamURL, UpstreamError

log = logging.getLogger(__name__)

BATCH = 500
LEASE_SECONDS = 120.0


def next_check_delay(base_seconds: float, created_at: datetime, now: datetime) -> float:
    """Poll young orders often and long-running ones less: ×1 under an hour, up to ×8 after a day."""
    age = (now - created_at).total_seconds()
    factor = 1 if age < 3600 else 2 if age < 6 * 3600 else 4 if age < 86400 else 8
    return base_seconds * factor


async def check_statuses(runtime: Runtime, providers: dict[int, ProviderAccess]) -> int:
    """One pass of the status sync; returns how many orders were checked."""
    async with runtime.engine.begin() as conn:
        leased = await queries.claim_orders_to_check(conn, BATCH, LEASE_SECONDS)
    if not leased:
        return 0
    by_provider: dict[int, list[OrderToCheck]] = defaultdict(list)
    for order in leased:
        by_provider[order.provider_id].append(order)
    for provider_id, orders in by_provider.items():
        try:
            await _check_provider(runtime, providers.get(provider_id), orders)
        except Exception:
            # Whatever went wrong with this provider, the others are still checked; its orders'
            # leases run out and they are checked again later.
            log.exception("status check for provider %s failed", provider_id)
    return len(leased)


async def _check_provider(runtime: Runtime, provider: ProviderAccess | None, orders: list[OrderToCheck]) -> None:
    base = runtime.settings.status_sync_interval_seconds
    now = datetime.now(UTC)
    if provider is None or not provider.enabled:
        return  # the lease expires and they are checked again later
    try:
        client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
        with calllog.about():
            answers = await client.statuses([o.upstream_order_id for o in orders])
    except (UpstreamError, UnsafeUpstreamURL) as exc:
        log.info("status check for provider %s failed: %s", provider.id, exc)
        return
    failpoint("sync_after_fetch")
    for order in orders:
        answer = answers.get(order.upstream_order_id)
        if answer is None:
            continue  # no news is not "Incorrect order ID": keep the lease, ask again later
        await apply_answer(runtime, order, answer, next_check_delay(base, order.created_at, now))
    failpoint("sync_after_apply")


async def apply_answer(runtime: Runtime, order: OrderToCheck, answer: OrderStatus | ItemError, delay: float) -> None:
    """Apply one order's answer on its own; a database refusal is kept as an anomaly on that
    order (which is asked again later), never raised to the batch."""
    try:
        if isinstance(answer, ItemError):
            anomaly = Anomaly("upstream_error", answer.message[:200])
            await queries.note_check_problem(runtime.hot, order.id, f"upstream: {answer.message}", delay, [anomaly])
            return
        update = read_status(answer, OrderFacts(order.id, order.charge, order.quantity, order.held_checks))
        if answer.status is None:
            log.warning("order %s: unknown upstream status %r kept raw", order.id, answer.raw_status[:100])
        if update.held is not None and update.asks_left == 0:
            log.warning(
                "order %s: upstream says %s without a usable remains; waiting for the operator", order.id, update.held
            )
        await queries.apply_status(runtime.hot, order.id, update, delay)
    except DBAPIError as exc:
        problem = error_summary(exc)
        log.warning("order %s: the upstream's answer could not be stored (%s)", order.id, problem)
        try:
            await queries.note_check_problem(
                runtime.hot,
                order.id,
                f"the upstream's answer could not be stored: {problem}",
                delay,
                [Anomaly("unstorable_answer", problem)],
            )
        except DBAPIError as again:
            log.warning("order %s: could not note the problem either (%s)", order.id, error_summary(again))


async def sweep(runtime: Runtime) -> None:
    """Recovery: orders and refills a dead process left ``submitting`` become ``unknown`` (they may
    have been sent); unsent orders too old are canceled and refunded, each in its own transaction."""
    settings = runtime.settings
    async with runtime.engine.begin() as conn:
        for order_id in await queries.mark_stale_submitting_unknown(conn, settings.submitting_stale_seconds):
            log.warning("order %s was left submitting by a stopped process; now unknown", order_id)
        for refill_id in await mark_stale_refills_unknown(conn, settings.submitting_stale_seconds):
            log.warning("refill %s was left submitting by a stopped process; now unknown", refill_id)
    async with runtime.engine.connect() as conn:
        expired = await queries.expired_queued_order_ids(conn, settings.queued_order_max_age_seconds, 200)
    for order_id in expired:
        try:
            async with runtime.engine.begin() as conn:
                await cancel_unsent(conn, order_id, ("queued",), "not accepted upstream in time")
        except DBAPIError as exc:
            log.warning("order %s: could not cancel the expired order (%s)", order_id, error_summary(exc))
