"""Refills: a customer asks the upstream to top up a completed order that dropped.

Only for the customer's own completed orders of refill-enabled services. The gateway keeps its own
refill id mapped to the upstream's, keeps the status fresh from the worker and answers
``refill_status`` locally. No money moves: a refill is free.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from gateway import calllog
from gateway.catalog.pricebook import PriceBook, ProviderAccess
from gateway.errors import INCORRECT_ORDER, REFILL_NOT_AVAILABLE, SERVICE_UNAVAILABLE
from gateway.runtime import Runtime
from gateway.upstream import (
    ItemError,
    UnsafeUpstreamURL,
    UpstreamError,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
)

log = logging.getLogger(__name__)

REFILL_CHECK_SECONDS = 60.0
LEASE_SECONDS = 120.0

_ELIGIBLE = text(
    """
    SELECT o.id, o.provider_id, o.upstream_order_id, o.status, o.state, s.refill
    FROM orders o JOIN services s ON s.id = o.service_id
    WHERE o.customer_id = :customer_id AND o.id = ANY(:ids)
    """
)

_CREATE = text(
    """
    INSERT INTO refills (order_id, customer_id, provider_id, state)
    SELECT id, customer_id, provider_id, 'submitting' FROM orders WHERE id = ANY(:ids)
    RETURNING id, order_id
    """
)


@dataclass(frozen=True, slots=True)
class RefillAnswer:
    """Per order: the gateway's refill id, or an error message."""

    refill_id: int | None = None
    error: str | None = None


async def request_refills(
    runtime: Runtime, book: PriceBook, customer_id: int, order_ids: Sequence[int]
) -> dict[int, RefillAnswer]:
    """Ask the upstream to refill the customer's orders; one answer per requested id."""
    answers: dict[int, RefillAnswer] = {}
    async with runtime.engine.begin() as conn:
        rows = {
            row.id: row for row in await conn.execute(_ELIGIBLE, {"customer_id": customer_id, "ids": list(order_ids)})
        }
        eligible: list[int] = []
        for order_id in order_ids:
            row = rows.get(order_id)
            if row is None:
                answers[order_id] = RefillAnswer(error=INCORRECT_ORDER)
            elif not row.refill or row.status != "Completed" or row.state != "placed":
                answers[order_id] = RefillAnswer(error=REFILL_NOT_AVAILABLE)
            elif order_id not in eligible:
                eligible.append(order_id)
        created = {r.order_id: r.id for r in await conn.execute(_CREATE, {"ids": eligible})} if eligible else {}
    by_provider: dict[int, list[int]] = defaultdict(list)
    for order_id in eligible:
        by_provider[rows[order_id].provider_id].append(order_id)
    for provider_id, ids in by_provider.items():
        upstream_ids = {rows[i].upstream_order_id: i for i in ids}
        results = await _send(runtime, book.providers.get(provider_id), list(upstream_ids))
        async with runtime.engine.begin() as conn:
            for upstream_order_id, order_id in upstream_ids.items():
                refill_id = created[order_id]
                answers[order_id] = await _record(conn, refill_id, results.get(upstream_order_id))
    return answers


async def _send(runtime: Runtime, provider: ProviderAccess | None, upstream_order_ids: list[int]) -> dict[int, Any]:
    """Send the refill requests of one provider; a transport failure applies to all of them."""
    if provider is None or not provider.enabled:
        return dict.fromkeys(upstream_order_ids, UpstreamNotSent("provider disabled"))
    try:
        client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
        with calllog.about():
            if len(upstream_order_ids) == 1:
                only = upstream_order_ids[0]
                try:
                    return {only: await client.refill(only)}
                except UpstreamRejected as exc:
                    return {only: ItemError(exc.message)}
            results: dict[int, Any] = dict(await client.refills(upstream_order_ids))
            return results
    except (UpstreamError, UnsafeUpstreamURL) as exc:
        return dict.fromkeys(upstream_order_ids, exc)


async def _record(conn: Any, refill_id: int, result: Any) -> RefillAnswer:
    if isinstance(result, int):
        await conn.execute(
            text(
                "UPDATE refills SET state = 'placed', upstream_refill_id = :u, updated_at = now(),"
                " next_check_at = now() + make_interval(secs => :delay) WHERE id = :id"
            ),
            {"id": refill_id, "u": result, "delay": REFILL_CHECK_SECONDS},
        )
        return RefillAnswer(refill_id=refill_id)
    if isinstance(result, UpstreamUnknown):
        # It may exist upstream; the customer gets the id, the operator sees the state.
        await _set_state(conn, refill_id, "unknown", str(result))
        return RefillAnswer(refill_id=refill_id)
    if isinstance(result, ItemError):
        await _set_state(conn, refill_id, "failed", result.message, status="Rejected")
        return RefillAnswer(error=REFILL_NOT_AVAILABLE)
    message = str(result) if result is not None else "no answer for this order"
    await _set_state(conn, refill_id, "failed", message, status="Rejected")
    return RefillAnswer(error=SERVICE_UNAVAILABLE)


async def _set_state(conn: Any, refill_id: int, state: str, error: str, status: str | None = None) -> None:
    await conn.execute(
        text(
            "UPDATE refills SET state = :state, last_error = :error, status = COALESCE(CAST(:status AS varchar), status),"
            " updated_at = now() WHERE id = :id"
        ),
        {"id": refill_id, "state": state, "error": error[:1000], "status": status},
    )


async def refill_statuses(runtime: Runtime, customer_id: int, refill_ids: Sequence[int]) -> dict[int, str]:
    """The caller's own refills' statuses (a foreign or unknown id is simply absent)."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, status FROM refills WHERE customer_id = :c AND id = ANY(:ids)"),
            {"c": customer_id, "ids": list(refill_ids)},
        )
        return {row.id: row.status for row in rows}


async def sync_refills(runtime: Runtime, providers: dict[int, ProviderAccess]) -> int:
    """The worker's refill loop: lease placed, unfinished refills and ask the upstream."""
    async with runtime.engine.begin() as conn:
        leased = (
            await conn.execute(
                text(
                    """
                    UPDATE refills SET next_check_at = now() + make_interval(secs => :lease)
                    WHERE id IN (
                        SELECT id FROM refills
                        WHERE state = 'placed' AND status NOT IN ('Completed', 'Rejected') AND next_check_at <= now()
                        ORDER BY next_check_at LIMIT 500 FOR UPDATE SKIP LOCKED
                    )
                    RETURNING id, provider_id, upstream_refill_id
                    """
                ),
                {"lease": LEASE_SECONDS},
            )
        ).all()
    by_provider: dict[int, dict[int, int]] = defaultdict(dict)
    for row in leased:
        by_provider[row.provider_id][row.upstream_refill_id] = row.id
    for provider_id, ids in by_provider.items():
        provider = providers.get(provider_id)
        if provider is None or not provider.enabled:
            continue
        try:
            client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
            with calllog.about():
                answers = await client.refill_statuses(list(ids))
        except (UpstreamError, UnsafeUpstreamURL) as exc:
            log.info("refill status check for provider %s failed: %s", provider_id, exc)
            continue
        async with runtime.engine.begin() as conn:
            for upstream_id, refill_id in ids.items():
                answer = answers.get(upstream_id)
                if answer is None:
                    continue
                if isinstance(answer, ItemError):
                    await conn.execute(
                        text(
                            "UPDATE refills SET last_error = :e, last_checked_at = now(), next_check_at = now() + make_interval(secs => :d) WHERE id = :id"
                        ),
                        {"id": refill_id, "e": answer.message[:1000], "d": REFILL_CHECK_SECONDS},
                    )
                    continue
                await conn.execute(
                    text(
                        """
                        UPDATE refills SET status = COALESCE(CAST(:status AS varchar), status), status_raw = :raw,
                               last_checked_at = now(), next_check_at = now() + make_interval(secs => :d), updated_at = now()
                        WHERE id = :id AND status NOT IN ('Completed', 'Rejected')
                        """
                    ),
                    {
                        "id": refill_id,
                        "status": answer.status.value if answer.status is not None else None,
                        "raw": answer.raw_status[:200],
                        "d": REFILL_CHECK_SECONDS,
                    },
                )
    return len(leased)
