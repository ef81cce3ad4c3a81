"""Cancel: for cancel-enabled services. An order the gateway still holds (queued) is canceled and
refunded at once; a placed one is forwarded upstream (one call per provider) and its refund follows
when the status sync sees Canceled or Partial."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import CANCEL_NOT_AVAILABLE, INCORRECT_ORDER, SERVICE_UNAVAILABLE
from gateway.lifecycle import FINAL_STATUSES, OrderState
from gateway.orders.dispatch import cancel_unsent
from gateway.orders.store import OrderStore
from gateway.providers import ProviderGateway
from gateway.upstream import CancelAccepted, ItemError, UpstreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    canceled: bool
    error: str | None = None


async def cancel_orders(
    orders: OrderStore,
    providers: ProviderGateway,
    customer_id: int,
    order_ids: Sequence[int],
    revision: int | None = None,
) -> dict[int, CancelAnswer]:
    """Cancel the customer's orders; one answer per requested id."""
    answers: dict[int, CancelAnswer] = {}
    async with orders.reading() as tx:
        rows = await tx.customer_orders_for(customer_id, order_ids, with_flag="cancel")
    upstream: dict[int, dict[int, int]] = defaultdict(dict)
    for order_id in order_ids:
        row = rows.get(order_id)
        if row is None:
            answers[order_id] = CancelAnswer(False, INCORRECT_ORDER)
        elif not row.allowed or row.status in FINAL_STATUSES:
            answers[order_id] = CancelAnswer(False, CANCEL_NOT_AVAILABLE)
        elif row.state == OrderState.QUEUED:
            async with orders.begin() as tx:
                done = await cancel_unsent(tx, order_id, "canceled by the customer", only=[OrderState.QUEUED])
            answers[order_id] = CancelAnswer(True) if done else CancelAnswer(False, CANCEL_NOT_AVAILABLE)
        elif row.state == OrderState.PLACED:
            upstream[row.provider_id][row.upstream_order_id] = order_id
        else:
            # Being sent right now, or its outcome is unknown: nothing safe to do yet.
            answers[order_id] = CancelAnswer(False, CANCEL_NOT_AVAILABLE)
    for provider_id, ids in upstream.items():
        answers.update(await _cancel_upstream(orders, providers, provider_id, ids, revision))
    return answers


async def _cancel_upstream(
    orders: OrderStore, providers: ProviderGateway, provider_id: int, ids: dict[int, int], revision: int | None
) -> dict[int, CancelAnswer]:
    try:
        results = await providers.cancel(provider_id, list(ids), revision=revision)
    except UpstreamError as exc:
        log.info("cancel at provider %s failed: %s", provider_id, exc)
        return {order_id: CancelAnswer(False, SERVICE_UNAVAILABLE) for order_id in ids.values()}
    answers: dict[int, CancelAnswer] = {}
    accepted: list[int] = []
    for upstream_id, order_id in ids.items():
        result = results.get(upstream_id)
        if isinstance(result, CancelAccepted):
            answers[order_id] = CancelAnswer(True)
            accepted.append(order_id)
        elif isinstance(result, ItemError):
            answers[order_id] = CancelAnswer(False, CANCEL_NOT_AVAILABLE)
        else:
            answers[order_id] = CancelAnswer(False, SERVICE_UNAVAILABLE)
    if accepted:
        async with orders.begin() as tx:
            await tx.cancel_requested(accepted)
    return answers
