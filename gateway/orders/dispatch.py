"""Sending an order upstream and recording what came of it (steps 2 and 3 of the life of an order).

The send happens with no transaction open; the outcome is recorded in one transaction:

- **placed**: the upstream gave its order id; the status sync follows it from here;
- **failed**: the upstream refused the order because of the customer's input: refunded at once;
- **unknown**: the request may have arrived (timeout, reset, 5xx, unreadable answer): never sent
  again and never refunded automatically; the operator resolves it;
- **queued**: the order definitely did nothing upstream (never left, or the provider's own problem:
  its balance, its key, rate limits, an open circuit); retried with backoff until it is older than
  ``GATEWAY_QUEUED_ORDER_MAX_AGE_SECONDS``, then canceled and refunded.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import calllog
from gateway.catalog.pricebook import ProviderAccess
from gateway.failpoints import failpoint
from gateway.ledger.ledger import refund_order
from gateway.orders import queries
from gateway.orders.queries import Executor, OrderToSend
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


@dataclass(frozen=True, slots=True)
class Placed:
    upstream_order_id: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Refused for the customer's input; ``message`` is the protocol error to show."""

    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    error: str


@dataclass(frozen=True, slots=True)
class Retry:
    error: str


Outcome = Placed | Failed | Unknown | Retry


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


async def record(conn: Executor, order: OrderToSend, outcome: Outcome, max_age_seconds: float) -> None:
    """Record the outcome of one send (inside the caller's transaction)."""
    if isinstance(outcome, Placed):
        await queries.mark_placed(conn, order.id, outcome.upstream_order_id, FIRST_CHECK_SECONDS)
    elif isinstance(outcome, Failed):
        charge = await queries.mark_ended_unsent(conn, order.id, ("submitting",), "failed", outcome.message)
        if charge is not None:
            await refund_order(conn, order.id, charge, f"refused upstream: {outcome.message}"[:500])
    elif isinstance(outcome, Unknown):
        await queries.mark_unknown(conn, order.id, outcome.error)
    else:
        age = (datetime.now(UTC) - order.created_at).total_seconds()
        if age > max_age_seconds:
            await cancel_unsent(conn, order.id, ("submitting",), f"not accepted upstream in time: {outcome.error}")
        else:
            await queries.mark_requeued(conn, order.id, outcome.error, retry_delay(order.attempts))


async def cancel_unsent(conn: Executor, order_id: int, from_states: tuple[str, ...], reason: str) -> bool:
    """Cancel an order that never reached the upstream and refund all of it."""
    charge = await queries.mark_ended_unsent(conn, order_id, from_states, "canceled", reason)
    if charge is None:
        return False
    await refund_order(conn, order_id, charge, reason[:500])
    return True


async def dispatch(runtime: Runtime, order: OrderToSend, provider: ProviderAccess | None) -> Outcome:
    """Send one claimed order and record the outcome."""
    outcome = await send(runtime, order, provider)
    failpoint("after_send")
    if isinstance(outcome, Placed):
        # The common case is one statement: no transaction (and no SQLAlchemy) around it.
        await queries.mark_placed_alone(runtime.hot, order.id, outcome.upstream_order_id, FIRST_CHECK_SECONDS)
    else:
        async with runtime.engine.begin() as conn:
            await record(conn, order, outcome, runtime.settings.queued_order_max_age_seconds)
    if not isinstance(outcome, Placed):
        log.info("order %s: %s", order.id, outcome)
    return outcome
