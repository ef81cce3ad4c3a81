"""Sending an order upstream and recording what came of it (steps 2 and 3 of the life of an order).

The send happens with no transaction open; the outcome is recorded together with the upstream
attempts that led to it (the operator's evidence), in one statement or transaction:

- **placed**: the upstream gave its order id; the status sync follows it from here;
- **failed**: the upstream refused the order because of the customer's input: refunded at once;
- **unknown**: the request may have arrived (timeout, reset, 5xx, unreadable answer, or an order id
  the gateway cannot take, such as one another order already has): never sent again and never
  refunded automatically; the operator resolves it;
- **queued**: the order definitely did nothing upstream (never left, or the provider's own problem:
  its balance, its key, rate limits, an open circuit); retried with backoff until it is older than
  ``GATEWAY_QUEUED_ORDER_MAX_AGE_SECONDS``, then canceled and refunded.

When the database fails while recording, the outcome is held in this process and recorded by a
background retry (:func:`record_pending`); what the customer is answered depends only on what the
upstream said. An outcome recorded late also lands on an order the sweep made ``unknown`` meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from gateway.catalog.pricebook import Route
from gateway.dberrors import error_summary, violated_constraint
from gateway.failpoints import failpoint
from gateway.lifecycle import OrderState
from gateway.orders.answers import Anomaly
from gateway.orders.outcomes import (
    Failed,
    OrderToSend,
    Outcome,
    PendingOutcome,
    PendingOutcomes,
    Placed,
    Retry,
    Unknown,
)
from gateway.orders.policy import OrderPolicy
from gateway.orders.refunds import unsent
from gateway.orders.routing import RoutePlan, reroutable, why
from gateway.orders.store import OrderStore, OrderTx
from gateway.providers import ProviderGateway, calllog
from gateway.upstream import RejectReason, UpstreamNotSent, UpstreamRejected, UpstreamUnknown

log = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 5.0
UNIQUE_UPSTREAM_ID = "uq_orders_provider_id_upstream_order_id"


def retry_delay(attempts: int) -> float:
    """Backoff between dispatch attempts: 5 s doubling to 5 min, with jitter."""
    base: float = min(300.0, 5.0 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


async def send(providers: ProviderGateway, order: OrderToSend, revision: int | None = None) -> Outcome:
    """Call the upstream's ``add`` once (the adapter retries only what never left)."""
    params = {k: str(v) for k, v in order.params.items()}
    try:
        upstream_id = await providers.add(
            order.provider_id,
            order.upstream_service_id,
            params,
            order_id=order.id,
            request_id=order.request_id,
            revision=revision,
        )
    except UpstreamRejected as exc:
        if exc.reason is RejectReason.INPUT:
            return Failed(exc.message)
        if exc.reason is RejectReason.SERVICE:
            return Failed(exc.message, service_gone=True)
        return Retry(f"upstream refused: {exc.message}")
    except UpstreamNotSent as exc:
        return Retry(str(exc))
    except UpstreamUnknown as exc:
        return Unknown(str(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A bug between "request built" and "answer parsed": it may have been sent.
        log.exception("unexpected error sending order %s", order.id)
        return Unknown(f"unexpected error: {type(exc).__name__}")
    return Placed(upstream_id)


async def _record_placed(orders: OrderStore, order: OrderToSend, upstream_id: int, calls: list[dict[str, Any]]) -> None:
    try:
        # The common case is one statement on the hot path: no transaction, no SQLAlchemy.
        recorded = await orders.mark_placed(order.id, upstream_id, FIRST_CHECK_SECONDS, calls)
    except DBAPIError as exc:
        if violated_constraint(exc) != UNIQUE_UPSTREAM_ID:
            raise
        # A sloppy upstream reused an order id: following it would apply another order's answers
        # to this one. The order may exist upstream under some id; the operator decides.
        async with orders.begin() as tx:
            other = await tx.order_with_upstream_id(order.provider_id, upstream_id)
            error = f"the upstream answered with order id {upstream_id}, which order {other} already has"
            await tx.write_calls(calls)
            recorded = await tx.mark_unknown(order.id, error)
            await tx.record_anomalies(order.id, [Anomaly("duplicate_upstream_order_id", error)])
        log.error("order %s: %s; now unknown", order.id, error)
    if not recorded:
        await _late_conflict(orders, order, f"the upstream accepted it as order {upstream_id}")


async def _record_other(tx: OrderTx, order: OrderToSend, outcome: Outcome, max_age_seconds: float) -> bool:
    """Record a failed, unknown or retry outcome (inside the caller's transaction); False when
    the order had already moved on."""
    if isinstance(outcome, Failed):
        charge = await tx.end_unsent(order.id, OrderState.FAILED, outcome.message)
        if charge is not None:
            await tx.refund(order.id, unsent(charge), f"refused upstream: {outcome.message}")
        return charge is not None
    if isinstance(outcome, Unknown):
        return await tx.mark_unknown(order.id, outcome.error)
    assert isinstance(outcome, Retry)
    age = (datetime.now(UTC) - order.created_at).total_seconds()
    if age > max_age_seconds:
        return await cancel_unsent(tx, order.id, f"not accepted upstream in time: {outcome.error}")
    return await tx.requeue(order.id, outcome.error, retry_delay(order.attempts))


async def record(
    orders: OrderStore, order: OrderToSend, outcome: Outcome, calls: list[dict[str, Any]], max_age_seconds: float
) -> None:
    """Record the outcome of one send with the attempts that led to it. Raises ``DBAPIError``
    when the database fails (the caller holds the outcome for a retry)."""
    failpoint("record_outcome")
    if isinstance(outcome, Placed):
        await _record_placed(orders, order, outcome.upstream_order_id, calls)
    else:
        async with orders.begin() as tx:
            await tx.write_calls(calls)
            recorded = await _record_other(tx, order, outcome, max_age_seconds)
        if not recorded:
            await _late_conflict(orders, order, f"the upstream's answer was: {outcome}")
    # Committed, but the database's answer can still be lost on the way back.
    failpoint("record_outcome_answer_lost")


async def _late_conflict(orders: OrderStore, order: OrderToSend, what: str) -> None:
    """The order moved on before its outcome was recorded (the operator resolved it meanwhile):
    nothing is changed, but the operator must see what the upstream really said."""
    try:
        async with orders.begin() as tx:
            current = await tx.state_of(order.id)
            detail = f"{what}, but the order was already {current[0] if current else 'gone'}"
            await tx.record_anomalies(order.id, [Anomaly("late_outcome", detail)])
    except DBAPIError as exc:
        detail = f"{what}, but the order had moved on (the anomaly could not be stored: {error_summary(exc)})"
    # The log line is the operator's evidence too, should the anomaly not have been stored.
    log.error("order %s: %s", order.id, detail)


async def _already_recorded(orders: OrderStore, order: OrderToSend, outcome: Outcome) -> bool:
    """Whether an earlier try did record ``outcome`` (its commit landed, its answer was lost):
    then recording it again would only duplicate the evidence or misreport a conflict."""
    async with orders.reading() as tx:
        current = await tx.state_of(order.id)
    if current is None:
        return False
    state, upstream_order_id = current
    if isinstance(outcome, Placed):
        return state is OrderState.PLACED and upstream_order_id == outcome.upstream_order_id
    if isinstance(outcome, Failed):
        return state is OrderState.FAILED
    if isinstance(outcome, Unknown):
        return state is OrderState.UNKNOWN
    return state in (OrderState.QUEUED, OrderState.CANCELED)


async def cancel_unsent(tx: OrderTx, order_id: int, reason: str, *, only: list[OrderState] | None = None) -> bool:
    """Cancel an order that never reached the upstream and refund all of it."""
    charge = await tx.end_unsent(order_id, OrderState.CANCELED, reason, only=only)
    if charge is None:
        return False
    await tx.refund(order_id, unsent(charge), reason)
    return True


async def _switch(
    orders: OrderStore,
    order: OrderToSend,
    route: Route,
    plan: RoutePlan,
    calls: list[dict[str, Any]],
    error: str | None,
) -> OrderToSend | None:
    """Move the order to ``route`` (committed before anything is sent there), with the calls of
    the route it leaves; None when it cannot move (it moved on, or the database failed): the
    caller then records what the route it is on answered."""
    try:
        async with orders.begin() as tx:
            await tx.write_calls(calls)
            switched = await tx.switch_route(
                order,
                provider_id=route.provider_id,
                upstream_service_id=route.upstream_service_id,
                priority=route.priority,
                cost=plan.cost(route),
                error=error,
            )
            if not switched:
                raise _Stay
    except (_Stay, DBAPIError) as exc:
        if isinstance(exc, DBAPIError):
            log.warning("order %s: could not move it to route %s (%s)", order.id, route.priority, error_summary(exc))
        return None
    calls.clear()
    return replace(
        order,
        provider_id=route.provider_id,
        upstream_service_id=route.upstream_service_id,
        route_priority=route.priority,
    )


class _Stay(Exception):
    """The order is no longer where the dispatcher thinks (rolls the switch back)."""


async def _send_on_routes(
    orders: OrderStore,
    providers: ProviderGateway,
    order: OrderToSend,
    plan: RoutePlan | None,
    calls: list[dict[str, Any]],
    revision: int | None,
) -> tuple[OrderToSend, Outcome]:
    """Send the order, moving it along its routes while a route definitely placed nothing."""

    def reachable(provider_id: int) -> bool:
        return not providers.circuit_open(provider_id)

    if plan is not None:
        start = plan.first(reachable)
        if start is not None and (start.provider_id, start.upstream_service_id) != (
            order.provider_id,
            order.upstream_service_id,
        ):
            order = await _switch(orders, order, start, plan, calls, None) or order
    retried = False
    while True:
        outcome = await send(providers, order, revision)
        failpoint("after_send")
        if plan is None or not reroutable(outcome):
            break
        following = plan.after(order.route_priority, reachable)
        if following is None:
            break
        moved = await _switch(orders, order, following, plan, calls, why(outcome))
        if moved is None:
            break
        log.info(
            "order %s: route %s did not take it (%s); trying route %s",
            order.id,
            order.route_priority,
            why(outcome),
            following.priority,
        )
        retried = retried or isinstance(outcome, Retry)
        order = moved
    if isinstance(outcome, Failed) and outcome.service_gone and retried:
        # The last route no longer sells the service, but an earlier one only could not take the
        # order now: the order waits for it rather than failing.
        outcome = Retry(why(outcome))
    return order, outcome


async def dispatch(
    orders: OrderStore,
    providers: ProviderGateway,
    pending: PendingOutcomes,
    order: OrderToSend,
    policy: OrderPolicy,
    *,
    revision: int | None = None,
    plan: RoutePlan | None = None,
) -> Outcome:
    """Send one claimed order (along its routes, with ``plan``) and record the outcome (or hold
    it when the database fails)."""
    with calllog.collecting() as calls:
        order, outcome = await _send_on_routes(orders, providers, order, plan, calls, revision)
    try:
        await record(orders, order, outcome, calls, policy.queued_order_max_age_seconds)
    except DBAPIError as exc:
        pending.hold(PendingOutcome(order, outcome, calls))
        log.error(
            "order %s: could not record its outcome (%s): %s; retrying in the background",
            order.id,
            error_summary(exc),
            outcome,
        )
    failpoint("after_record")
    if not isinstance(outcome, Placed):
        log.info("order %s: %s", order.id, outcome)
    return outcome


async def record_pending(orders: OrderStore, pending: PendingOutcomes, max_age_seconds: float) -> int:
    """Try once more to record every held outcome; returns how many are still held."""
    for order_id, item in list(pending.items.items()):
        try:
            if not await _already_recorded(orders, item.order, item.outcome):
                await record(orders, item.order, item.outcome, item.calls, max_age_seconds)
        except DBAPIError as exc:
            item.failures += 1
            if item.failures % 10 == 0:
                log.error(
                    "order %s: still cannot record its outcome (%s): %s", order_id, error_summary(exc), item.outcome
                )
            continue
        pending.items.pop(order_id, None)
        log.info("order %s: outcome recorded late: %s", order_id, item.outcome)
    return len(pending)


async def keep_recording_pending(
    orders: OrderStore, pending: PendingOutcomes, max_age_seconds: float, interval: float = 1.0
) -> None:
    """The background retry of held outcomes, for the life of the process."""
    while True:
        await asyncio.sleep(interval)
        if pending.items:
            await record_pending(orders, pending, max_age_seconds)


async def drain_pending(
    orders: OrderStore, pending: PendingOutcomes, max_age_seconds: float, within_seconds: float = 5.0
) -> None:
    """At shutdown: a last try; what is still held is logged, with what the operator needs to
    resolve the order the sweep will turn unknown."""
    if not pending.items:
        return
    try:
        async with asyncio.timeout(within_seconds):
            await record_pending(orders, pending, max_age_seconds)
    except TimeoutError:
        pass
    for order_id, item in pending.items.items():
        log.error("order %s: outcome never recorded (the process is stopping): %s", order_id, item.outcome)
