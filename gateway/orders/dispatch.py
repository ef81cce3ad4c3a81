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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from gateway import calllog
from gateway.catalog.pricebook import ProviderAccess
from gateway.dberrors import error_summary, violated_constraint
from gateway.failpoints import failpoint
from gateway.ledger.ledger import refund_order
from gateway.orders import queries
from gateway.orders.answers import Anomaly
from gateway.orders.outcomes import Failed, OrderToSend, Outcome, PendingOutcome, Placed, Retry, Unknown
from gateway.orders.queries import Executor
from gateway.runtime import Runtime
from gateway.upstream import (
    RejectReason,
    UnsafeUpstreamURL,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
)

log = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 5.0
UNIQUE_UPSTREAM_ID = "uq_orders_provider_id_upstream_order_id"
# The states an outcome may be recorded on: the order is being sent, or the sweep made it unknown
# meanwhile (a late record: the upstream's answer is the truth the operator was waiting for).
_STATES = ("submitting", "unknown")


def retry_delay(attempts: int) -> float:
    """Backoff between dispatch attempts: 5 s doubling to 5 min, with jitter."""
    base: float = min(300.0, 5.0 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


async def send(runtime: Runtime, order: OrderToSend, provider: ProviderAccess | None) -> Outcome:
    """Call the upstream's ``add`` once (the adapter retries only what never left)."""
    if provider is None or not provider.enabled:
        return Retry("provider disabled")
    try:
        client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
    except UnsafeUpstreamURL as exc:
        return Retry(f"provider URL refused: {exc.reason}")
    params = {k: str(v) for k, v in order.params.items()}
    with calllog.about(order_id=order.id):
        try:
            upstream_id = await client.add(order.upstream_service_id, params, request_id=order.request_id)
        except UpstreamRejected as exc:
            if exc.reason is RejectReason.INPUT:
                return Failed(exc.message)
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


async def _record_placed(runtime: Runtime, order: OrderToSend, upstream_id: int, calls: list[dict[str, Any]]) -> None:
    try:
        # The common case is one statement on the hot path: no transaction, no SQLAlchemy.
        recorded = await queries.mark_placed(runtime.hot, order.id, upstream_id, FIRST_CHECK_SECONDS, calls, _STATES)
    except DBAPIError as exc:
        if violated_constraint(exc) != UNIQUE_UPSTREAM_ID:
            raise
        # A sloppy upstream reused an order id: following it would apply another order's answers
        # to this one. The order may exist upstream under some id; the operator decides.
        async with runtime.engine.begin() as conn:
            other = await queries.order_with_upstream_id(conn, order.provider_id, upstream_id)
            error = f"the upstream answered with order id {upstream_id}, which order {other} already has"
            await queries.write_calls(conn, calls)
            recorded = await queries.mark_unknown(conn, order.id, error, _STATES)
            await queries.record_anomalies(conn, order.id, [Anomaly("duplicate_upstream_order_id", error)])
        log.error("order %s: %s; now unknown", order.id, error)
    if not recorded:
        await _late_conflict(runtime, order, f"the upstream accepted it as order {upstream_id}")


async def _record_other(conn: Executor, order: OrderToSend, outcome: Outcome, max_age_seconds: float) -> bool:
    """Record a failed, unknown or retry outcome (inside the caller's transaction); False when
    the order had already moved on."""
    if isinstance(outcome, Failed):
        charge = await queries.mark_ended_unsent(conn, order.id, _STATES, "failed", outcome.message)
        if charge is not None:
            await refund_order(conn, order.id, charge, f"refused upstream: {outcome.message}"[:500])
        return charge is not None
    if isinstance(outcome, Unknown):
        return await queries.mark_unknown(conn, order.id, outcome.error, _STATES)
    assert isinstance(outcome, Retry)
    age = (datetime.now(UTC) - order.created_at).total_seconds()
    if age > max_age_seconds:
        return await cancel_unsent(conn, order.id, _STATES, f"not accepted upstream in time: {outcome.error}")
    return await queries.mark_requeued(conn, order.id, outcome.error, retry_delay(order.attempts), _STATES)


async def record(runtime: Runtime, order: OrderToSend, outcome: Outcome, calls: list[dict[str, Any]]) -> None:
    """Record the outcome of one send with the attempts that led to it. Raises ``DBAPIError``
    when the database fails (the caller holds the outcome for a retry)."""
    failpoint("record_outcome")
    if isinstance(outcome, Placed):
        await _record_placed(runtime, order, outcome.upstream_order_id, calls)
    else:
        async with runtime.engine.begin() as conn:
            await queries.write_calls(conn, calls)
            recorded = await _record_other(conn, order, outcome, runtime.settings.queued_order_max_age_seconds)
        if not recorded:
            await _late_conflict(runtime, order, f"the upstream's answer was: {outcome}")
    # Committed, but the database's answer can still be lost on the way back.
    failpoint("record_outcome_answer_lost")


async def _late_conflict(runtime: Runtime, order: OrderToSend, what: str) -> None:
    """The order moved on before its outcome was recorded (the operator resolved it meanwhile):
    nothing is changed, but the operator must see what the upstream really said."""
    try:
        async with runtime.engine.begin() as conn:
            state = await queries.order_state(conn, order.id)
            detail = f"{what}, but the order was already {state}"
            await queries.record_anomalies(conn, order.id, [Anomaly("late_outcome", detail)])
    except DBAPIError as exc:
        detail = f"{what}, but the order had moved on (the anomaly could not be stored: {error_summary(exc)})"
    # The log line is the operator's evidence too, should the anomaly not have been stored.
    log.error("order %s: %s", order.id, detail)


async def _already_recorded(runtime: Runtime, order: OrderToSend, outcome: Outcome) -> bool:
    """Whether an earlier try did record ``outcome`` (its commit landed, its answer was lost):
    then recording it again would only duplicate the evidence or misreport a conflict."""
    async with runtime.engine.connect() as conn:
        row = await queries.order_outcome(conn, order.id)
    if row is None:
        return False
    state, upstream_order_id = row
    if isinstance(outcome, Placed):
        return state == "placed" and upstream_order_id == outcome.upstream_order_id
    if isinstance(outcome, Failed):
        return state == "failed"
    if isinstance(outcome, Unknown):
        return state == "unknown"
    return state in ("queued", "canceled")


async def cancel_unsent(conn: Executor, order_id: int, from_states: Sequence[str], reason: str) -> bool:
    """Cancel an order that never reached the upstream and refund all of it."""
    charge = await queries.mark_ended_unsent(conn, order_id, from_states, "canceled", reason)
    if charge is None:
        return False
    await refund_order(conn, order_id, charge, reason[:500])
    return True


async def dispatch(runtime: Runtime, order: OrderToSend, provider: ProviderAccess | None) -> Outcome:
    """Send one claimed order and record the outcome (or hold it when the database fails)."""
    with calllog.collecting() as calls:
        outcome = await send(runtime, order, provider)
    failpoint("after_send")
    try:
        await record(runtime, order, outcome, calls)
    except DBAPIError as exc:
        runtime.pending_outcomes.hold(PendingOutcome(order, outcome, calls))
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


async def record_pending(runtime: Runtime) -> int:
    """Try once more to record every held outcome; returns how many are still held."""
    pending = runtime.pending_outcomes
    for order_id, item in list(pending.items.items()):
        try:
            if not await _already_recorded(runtime, item.order, item.outcome):
                await record(runtime, item.order, item.outcome, item.calls)
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


async def keep_recording_pending(runtime: Runtime, interval: float = 1.0) -> None:
    """The background retry of held outcomes, for the life of the process."""
    while True:
        await asyncio.sleep(interval)
        if runtime.pending_outcomes.items:
            await record_pending(runtime)


async def drain_pending(runtime: Runtime, within_seconds: float = 5.0) -> None:
    """At shutdown: a last try; what is still held is logged, with what the operator needs to
    resolve the order the sweep will turn unknown."""
    if not runtime.pending_outcomes.items:
        return
    try:
        async with asyncio.timeout(within_seconds):
            await record_pending(runtime)
    except TimeoutError:
        pass
    for order_id, item in runtime.pending_outcomes.items.items():
        log.error("order %s: outcome never recorded (the process is stopping): %s", order_id, item.outcome)
