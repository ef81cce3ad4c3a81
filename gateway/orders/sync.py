"""Following orders upstream: status sync, the refunds it triggers, and the recovery sweeps.

Active orders are leased in batches (``next_check_at`` pushed ahead under ``FOR UPDATE SKIP
LOCKED``), checked upstream with no transaction open, up to 100 ids per call, and the answers
applied in one transaction. A terminal status is applied once (a conditional update) and its
refund once (the ledger's guard and unique index): Canceled refunds the whole charge, Partial the
charge of the undelivered part, rounded down.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from gateway import calllog
from gateway.catalog.pricebook import ProviderAccess
from gateway.failpoints import failpoint
from gateway.ledger.ledger import refund_order
from gateway.money import partial_refund
from gateway.orders import queries
from gateway.orders.dispatch import cancel_unsent
from gateway.orders.queries import OrderToCheck
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


def refund_for(status: str, charge: Decimal, quantity: int, remains: int | None) -> Decimal:
    """What an order that ended with ``status`` gets back."""
    amount = Decimal(charge)
    if status == "Canceled":
        return amount
    if status == "Partial":
        return partial_refund(amount, quantity, remains if remains is not None else 0)
    return Decimal(0)


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
        await _check_provider(runtime, providers.get(provider_id), orders)
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
    async with runtime.engine.begin() as conn:
        for order in orders:
            delay = next_check_delay(base, order.created_at, now)
            answer = answers.get(order.upstream_order_id)
            if answer is None:
                continue  # no news is not "Incorrect order ID": keep the lease, ask again later
            if isinstance(answer, ItemError):
                await queries.note_check_problem(conn, order.id, f"upstream: {answer.message}", delay)
                continue
            await apply_status(conn, order.id, answer, delay)
    failpoint("sync_after_apply")


async def apply_status(conn: queries.Executor, order_id: int, answer: OrderStatus, delay: float) -> None:
    """Apply one status answer; refund exactly once when it ends the order."""
    status = answer.status.value if answer.status is not None else None
    if status is None:
        log.warning("order %s: unknown upstream status %r kept raw", order_id, answer.raw_status)
    ended = await queries.apply_progress(
        conn, order_id, status, answer.raw_status, answer.start_count, answer.remains, answer.charge, delay
    )
    if ended is None:
        return
    amount = refund_for(ended.status, ended.charge, ended.quantity, ended.remains)
    await refund_order(conn, order_id, amount, f"upstream status {ended.status}")


async def sweep(runtime: Runtime) -> None:
    """Recovery: unsent orders too old are canceled and refunded; orders a dead process left
    ``submitting`` become ``unknown`` (they may have been sent)."""
    settings = runtime.settings
    stale = settings.submitting_stale_seconds
    async with runtime.engine.begin() as conn:
        for order_id in await queries.mark_stale_submitting_unknown(conn, stale):
            log.warning("order %s was left submitting by a stopped process; now unknown", order_id)
    async with runtime.engine.begin() as conn:
        for order_id in await queries.expired_queued_order_ids(conn, settings.queued_order_max_age_seconds, 200):
            await cancel_unsent(conn, order_id, ("queued",), "not accepted upstream in time")
