"""Following orders upstream: the status sync, the refunds it triggers, and the recovery sweeps.

The status sync is one pass of the shared lease-and-poll loop (:mod:`gateway.orders.polling`):
each order's answer is read on its own (:mod:`gateway.orders.answers` decides what every value
means). Answers that only report progress (a status that is not final, no anomaly: almost all of
them) are applied together, one statement per provider's batch; every other answer (a final
status with its refund, decided by :mod:`gateway.orders.refunds`, a held status, an anomaly, a
per-id error) in one statement of its own, at most once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from gateway.dberrors import error_summary
from gateway.lifecycle import OrderState
from gateway.orders.answers import Anomaly, StatusUpdate, read_status
from gateway.orders.dispatch import cancel_unsent
from gateway.orders.policy import OrderPolicy
from gateway.orders.polling import poll
from gateway.orders.refunds import OrderFacts
from gateway.orders.store import Leased, OrderStore, is_progress
from gateway.providers import ProviderGateway
from gateway.upstream import ItemError, StatusAnswer

log = logging.getLogger(__name__)

EXPIRED_BATCH = 200


def next_check_delay(base_seconds: float, created_at: datetime, now: datetime) -> float:
    """Poll young orders often and long-running ones less: ×1 under an hour, up to ×8 after a day."""
    age = (now - created_at).total_seconds()
    factor = 1 if age < 3600 else 2 if age < 6 * 3600 else 4 if age < 86400 else 8
    return base_seconds * factor


async def check_statuses(orders: OrderStore, providers: ProviderGateway, interval_seconds: float) -> int:
    """One pass of the status sync; returns how many orders were checked."""
    now = datetime.now(UTC)

    async def apply(order: Leased, answer: StatusAnswer | ItemError) -> None:
        await apply_answer(orders, order, answer, next_check_delay(interval_seconds, order.created_at, now))

    async def apply_many(
        answered: list[tuple[Leased, StatusAnswer | ItemError]],
    ) -> list[tuple[Leased, StatusAnswer | ItemError]]:
        # Progress reports (almost all answers) in one statement; the rest one by one, as ever.
        progress: list[tuple[int, StatusUpdate, float]] = []
        rest: list[tuple[Leased, StatusAnswer | ItemError]] = []
        for order, answer in answered:
            update = None if isinstance(answer, ItemError) else read_status(answer, facts(order))
            if update is not None and is_progress(update):
                progress.append((order.id, update, next_check_delay(interval_seconds, order.created_at, now)))
            else:
                rest.append((order, answer))
        await orders.apply_progress(progress)
        return rest

    async def unstorable(order: Leased, exc: DBAPIError) -> None:
        problem = error_summary(exc)
        await orders.note_check_problem(
            order.id,
            f"the upstream's answer could not be stored: {problem}",
            next_check_delay(interval_seconds, order.created_at, now),
            [Anomaly("unstorable_answer", problem)],
        )

    return await poll(
        orders,
        "orders",
        ask=providers.statuses,
        apply=apply,
        on_unstorable=unstorable,
        apply_many=apply_many,
        failpoint_prefix="sync",
    )


def facts(order: Leased) -> OrderFacts:
    """What reading a status answer needs to know about the order."""
    return OrderFacts(order.id, order.charge, order.quantity, order.held_checks)


async def apply_answer(orders: OrderStore, order: Leased, answer: StatusAnswer | ItemError, delay: float) -> None:
    """Apply one order's answer: a per-id error is noted (and kept as an anomaly), a status is
    read (:func:`read_status`) and applied in one statement."""
    if isinstance(answer, ItemError):
        anomaly = Anomaly("upstream_error", answer.message[:200])
        await orders.note_check_problem(order.id, f"upstream: {answer.message}", delay, [anomaly])
        return
    update = read_status(answer, facts(order))
    if answer.status is None:
        log.warning("order %s: unknown upstream status %r kept raw", order.id, answer.raw_status[:100])
    if update.held is not None and update.asks_left == 0:
        log.warning(
            "order %s: upstream says %s without a usable remains; waiting for the operator", order.id, update.held
        )
    await orders.apply_status(order.id, update, delay)


async def sweep(orders: OrderStore, policy: OrderPolicy) -> None:
    """Recovery: orders and refills a dead process left ``submitting`` become ``unknown`` (they may
    have been sent); unsent orders too old are canceled and refunded, each in its own transaction."""
    for order_id in await orders.stale_to_unknown("orders", policy.submitting_stale_seconds):
        log.warning("order %s was left submitting by a stopped process; now unknown", order_id)
    for refill_id in await orders.stale_to_unknown("refills", policy.submitting_stale_seconds):
        log.warning("refill %s was left submitting by a stopped process; now unknown", refill_id)
    async with orders.reading() as tx:
        expired = await tx.expired_queued_ids(policy.queued_order_max_age_seconds, EXPIRED_BATCH)
    for order_id in expired:
        try:
            async with orders.begin() as tx:
                await cancel_unsent(tx, order_id, "not accepted upstream in time", only=[OrderState.QUEUED])
        except DBAPIError as exc:
            log.warning("order %s: could not cancel the expired order (%s)", order_id, error_summary(exc))
