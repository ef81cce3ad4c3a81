"""Refills: a customer asks the upstream to top up a completed order that dropped.

Only for the customer's own completed orders of refill-enabled services. The gateway keeps its own
refill id mapped to the upstream's, keeps the status fresh from the worker (the shared
lease-and-poll loop, :mod:`gateway.orders.polling`) and answers ``refill_status`` locally. No money
moves: a refill is free.

A refill's ``state`` follows an order's: ``submitting`` -> ``placed`` (upstream id known),
``failed`` (refused: status Rejected) or ``unknown`` (the request may have arrived; never re-sent,
settled by the operator). Every change of state goes through :mod:`gateway.lifecycle`'s table, so
a late writer never overwrites what the sweep or the operator decided.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import INCORRECT_ORDER, REFILL_NOT_AVAILABLE, SERVICE_UNAVAILABLE
from gateway.lifecycle import OrderState, OrderStatus, RefillState
from gateway.orders.polling import poll
from gateway.orders.store import Leased, OrderStore, OrderTx
from gateway.providers import ProviderGateway, calllog
from gateway.upstream import ItemError, RefillStatusAnswer, UpstreamError, UpstreamRejected, UpstreamUnknown

log = logging.getLogger(__name__)

REFILL_CHECK_SECONDS = 60.0

# What one provider said about one refill request: its refill id, a refusal, or why there is none.
RefillResult = int | ItemError | UpstreamError | None


@dataclass(frozen=True, slots=True)
class RefillAnswer:
    """Per order: the gateway's refill id, or an error message."""

    refill_id: int | None = None
    error: str | None = None


async def request_refills(
    orders: OrderStore, providers: ProviderGateway, customer_id: int, order_ids: Sequence[int]
) -> dict[int, RefillAnswer]:
    """Ask the upstream to refill the customer's orders; one answer per requested id."""
    answers: dict[int, RefillAnswer] = {}
    async with orders.begin() as tx:
        rows = await tx.customer_orders_for(customer_id, order_ids, with_flag="refill")
        eligible: list[int] = []
        for order_id in order_ids:
            row = rows.get(order_id)
            if row is None:
                answers[order_id] = RefillAnswer(error=INCORRECT_ORDER)
            elif not row.allowed or row.status != OrderStatus.COMPLETED or row.state != OrderState.PLACED:
                answers[order_id] = RefillAnswer(error=REFILL_NOT_AVAILABLE)
            elif order_id not in eligible:
                eligible.append(order_id)
        created = await tx.create_refills(eligible) if eligible else {}
    by_provider: dict[int, list[int]] = defaultdict(list)
    for order_id in eligible:
        by_provider[rows[order_id].provider_id].append(order_id)
    for provider_id, ids in by_provider.items():
        upstream_ids = {rows[i].upstream_order_id: i for i in ids}
        # A call about one refill is logged against it; a multi call belongs to no single refill.
        about = created[ids[0]] if len(ids) == 1 else None
        # The attempts are written with the outcome they led to: an unknown refill's evidence.
        with calllog.collecting() as calls:
            results = await _send(providers, provider_id, list(upstream_ids), about)
        async with orders.begin() as tx:
            await tx.write_calls(calls)
            for upstream_order_id, order_id in upstream_ids.items():
                answers[order_id] = await _record(tx, created[order_id], results.get(upstream_order_id))
    return answers


async def _send(
    providers: ProviderGateway, provider_id: int, upstream_order_ids: list[int], refill_id: int | None
) -> dict[int, RefillResult]:
    """Send the refill requests of one provider; a transport failure applies to all of them."""
    try:
        if len(upstream_order_ids) == 1:
            only = upstream_order_ids[0]
            try:
                return {only: await providers.refill(provider_id, only, refill_id=refill_id)}
            except UpstreamRejected as exc:
                return {only: ItemError(exc.message)}
        return dict(await providers.refills(provider_id, upstream_order_ids))
    except UpstreamError as exc:
        return dict.fromkeys(upstream_order_ids, exc)


async def _record(tx: OrderTx, refill_id: int, result: RefillResult) -> RefillAnswer:
    """Record one send's outcome, only while the refill is still ``submitting``."""
    sending = [RefillState.SUBMITTING]
    if isinstance(result, int):
        recorded = await tx.refill_placed(refill_id, result, REFILL_CHECK_SECONDS)
        answer = RefillAnswer(refill_id=refill_id)
    elif isinstance(result, UpstreamUnknown):
        # It may exist upstream; the customer gets the id, the operator sees the state.
        recorded = await tx.refill_ended(refill_id, RefillState.UNKNOWN, str(result), rejected=False, only=sending)
        answer = RefillAnswer(refill_id=refill_id)
    elif isinstance(result, ItemError):
        recorded = await tx.refill_ended(refill_id, RefillState.FAILED, result.message, rejected=True, only=sending)
        answer = RefillAnswer(error=REFILL_NOT_AVAILABLE)
    else:
        message = str(result) if result is not None else "no answer for this order"
        recorded = await tx.refill_ended(refill_id, RefillState.FAILED, message, rejected=True, only=sending)
        answer = RefillAnswer(error=SERVICE_UNAVAILABLE)
    if not recorded:
        # The sweep or the operator settled it meanwhile: their decision stands, and the refill
        # exists, so the customer gets its id and reads the rest from refill_status.
        late = f"placed as upstream refill {result}" if isinstance(result, int) else type(result).__name__
        log.warning(
            "refill %s was settled while its request was in flight; late answer not recorded: %s", refill_id, late
        )
        return RefillAnswer(refill_id=refill_id)
    return answer


async def sync_refills(orders: OrderStore, providers: ProviderGateway) -> int:
    """The worker's refill loop: lease placed, unfinished refills and ask the upstream.

    Each answer goes to every gateway refill that holds that upstream refill id (a panel may answer
    a repeated request with the existing refill's id), each in a transaction of its own, so one
    refill that cannot be updated never holds back the others. Returns how many were leased."""

    async def apply(refill: Leased, answer: RefillStatusAnswer | ItemError) -> None:
        async with orders.begin() as tx:
            if isinstance(answer, ItemError):
                await tx.note_refill_problem(refill.id, answer.message, REFILL_CHECK_SECONDS)
            else:
                await tx.apply_refill_answer(refill.id, answer.status, answer.raw_status, REFILL_CHECK_SECONDS)

    return await poll(orders, "refills", ask=providers.refill_statuses, apply=apply, failpoint_prefix="refill_sync")
