"""Cancel: for cancel-enabled services. An order the gateway still holds (queued) is canceled and
refunded at once; a placed one is forwarded upstream (one call per provider) and its refund follows
when the status sync sees Canceled or Partial."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from gateway import calllog
from gateway.catalog.pricebook import PriceBook
from gateway.errors import INCORRECT_ORDER, SERVICE_UNAVAILABLE
from gateway.orders.dispatch import cancel_unsent
from gateway.runtime import Runtime
from gateway.upstream import CancelAccepted, ItemError, UnsafeUpstreamURL, UpstreamError

log = logging.getLogger(__name__)

CANCEL_NOT_AVAILABLE = "Cancel is not available for this order"

_ORDERS = text(
    """
    SELECT o.id, o.provider_id, o.upstream_order_id, o.status, o.state, s.cancel
    FROM orders o JOIN services s ON s.id = o.service_id
    WHERE o.customer_id = :customer_id AND o.id = ANY(:ids)
    """
)


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    canceled: bool
    error: str | None = None


async def cancel_orders(
    runtime: Runtime, book: PriceBook, customer_id: int, order_ids: Sequence[int]
) -> dict[int, CancelAnswer]:
    """Cancel the customer's orders; one answer per requested id."""
    answers: dict[int, CancelAnswer] = {}
    async with runtime.engine.connect() as conn:
        rows = {
            row.id: row for row in await conn.execute(_ORDERS, {"customer_id": customer_id, "ids": list(order_ids)})
        }
    upstream: dict[int, dict[int, int]] = defaultdict(dict)
    for order_id in order_ids:
        row = rows.get(order_id)
        if row is None:
            answers[order_id] = CancelAnswer(False, INCORRECT_ORDER)
        elif not row.cancel or row.status in ("Completed", "Partial", "Canceled"):
            answers[order_id] = CancelAnswer(False, CANCEL_NOT_AVAILABLE)
        elif row.state == "queued":
            async with runtime.engine.begin() as conn:
                done = await cancel_unsent(conn, order_id, ("queued",), "canceled by the customer")
            answers[order_id] = CancelAnswer(True) if done else CancelAnswer(False, CANCEL_NOT_AVAILABLE)
        elif row.state == "placed":
            upstream[row.provider_id][row.upstream_order_id] = order_id
        else:
            # Being sent right now, or its outcome is unknown: nothing safe to do yet.
            answers[order_id] = CancelAnswer(False, CANCEL_NOT_AVAILABLE)
    for provider_id, ids in upstream.items():
        answers.update(await _cancel_upstream(runtime, book, provider_id, ids))
    return answers


async def _cancel_upstream(
    runtime: Runtime, book: PriceBook, provider_id: int, ids: dict[int, int]
) -> dict[int, CancelAnswer]:
    provider = book.providers.get(provider_id)
    if provider is None or not provider.enabled:
        return {order_id: CancelAnswer(False, SERVICE_UNAVAILABLE) for order_id in ids.values()}
    try:
        client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
        with calllog.about():
            results = await client.cancel(list(ids))
    except (UpstreamError, UnsafeUpstreamURL) as exc:
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
        # Look at these soon: the refund follows the upstream's Canceled or Partial.
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text("UPDATE orders SET cancel_requested_at = now(), next_check_at = now() WHERE id = ANY(:ids)"),
                {"ids": accepted},
            )
    return answers
