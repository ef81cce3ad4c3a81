"""Refills: a customer asks the upstream to top up a completed order that dropped.

Only for the customer's own completed orders of refill-enabled services. The gateway keeps its own
refill id mapped to the upstream's, keeps the status fresh from the worker and answers
``refill_status`` locally. No money moves: a refill is free.

A refill's ``state`` follows an order's: ``submitting`` -> ``placed`` (upstream id known),
``failed`` (refused: status Rejected) or ``unknown`` (the request may have arrived; never re-sent,
settled by the operator). Every change of state is a conditional update, so a late writer never
overwrites what the sweep or the operator decided.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway import calllog
from gateway.catalog.pricebook import PriceBook, ProviderAccess
from gateway.dberrors import error_summary
from gateway.errors import INCORRECT_ORDER, REFILL_NOT_AVAILABLE, SERVICE_UNAVAILABLE
from gateway.orders import queries
from gateway.orders.queries import Executor
from gateway.runtime import Runtime
from gateway.upstream import (
    ItemError,
    RefillStatus,
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
        # A call about one refill is logged against it; a multi call belongs to no single refill.
        about = created[ids[0]] if len(ids) == 1 else None
        # The attempts are written with the outcome they led to: an unknown refill's evidence.
        with calllog.collecting() as calls:
            results = await _send(runtime, book.providers.get(provider_id), list(upstream_ids), about)
        async with runtime.engine.begin() as conn:
            await queries.write_calls(conn, calls)
            for upstream_order_id, order_id in upstream_ids.items():
                refill_id = created[order_id]
                answers[order_id] = await _record(conn, refill_id, results.get(upstream_order_id))
    return answers


async def _send(
    runtime: Runtime, provider: ProviderAccess | None, upstream_order_ids: list[int], refill_id: int | None
) -> dict[int, Any]:
    """Send the refill requests of one provider; a transport failure applies to all of them."""
    if provider is None or not provider.enabled:
        return dict.fromkeys(upstream_order_ids, UpstreamNotSent("provider disabled"))
    try:
        client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
        with calllog.about(refill_id=refill_id):
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


async def _record(conn: Executor, refill_id: int, result: Any) -> RefillAnswer:
    """Record one send's outcome, only while the refill is still ``submitting``."""
    if isinstance(result, int):
        recorded = await _mark_placed(conn, refill_id, result)
        answer = RefillAnswer(refill_id=refill_id)
    elif isinstance(result, UpstreamUnknown):
        # It may exist upstream; the customer gets the id, the operator sees the state.
        recorded = await _set_state(conn, refill_id, "unknown", str(result))
        answer = RefillAnswer(refill_id=refill_id)
    elif isinstance(result, ItemError):
        recorded = await _set_state(conn, refill_id, "failed", result.message, status="Rejected")
        answer = RefillAnswer(error=REFILL_NOT_AVAILABLE)
    else:
        message = str(result) if result is not None else "no answer for this order"
        recorded = await _set_state(conn, refill_id, "failed", message, status="Rejected")
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


async def _mark_placed(conn: Executor, refill_id: int, upstream_refill_id: int) -> bool:
    result = await conn.execute(
        text(
            """
            UPDATE refills SET state = 'placed', upstream_refill_id = :upstream, updated_at = now(),
                               next_check_at = now() + make_interval(secs => :delay)
            WHERE id = :id AND state = 'submitting'
            RETURNING id
            """
        ),
        {"id": refill_id, "upstream": upstream_refill_id, "delay": REFILL_CHECK_SECONDS},
    )
    return result.first() is not None


async def _set_state(
    conn: Executor, refill_id: int, state: str, error: str, status: str | None = None, from_state: str = "submitting"
) -> bool:
    result = await conn.execute(
        text(
            """
            UPDATE refills SET state = :state, last_error = :error, updated_at = now(),
                               status = COALESCE(CAST(:status AS varchar), status)
            WHERE id = :id AND state = :from_state
            RETURNING id
            """
        ),
        {"id": refill_id, "state": state, "error": error[:1000], "status": status, "from_state": from_state},
    )
    return result.first() is not None


async def mark_stale_refills_unknown(conn: Executor, stale_seconds: float) -> list[int]:
    """Refills left ``submitting`` longer than ``stale_seconds`` by a process that died while
    sending them: the request may have reached the upstream, so they become ``unknown`` (never
    re-sent; the operator settles them). Returns their ids."""
    rows = await conn.execute(
        text(
            """
            UPDATE refills SET state = 'unknown', updated_at = now(),
                               last_error = 'the gateway stopped while sending this refill request; check the upstream'
            WHERE id IN (
                SELECT id FROM refills
                WHERE state = 'submitting' AND created_at < now() - make_interval(secs => :stale)
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """
        ),
        {"stale": stale_seconds},
    )
    return [row.id for row in rows]


async def mark_unknown_refill_placed(conn: Executor, refill_id: int, upstream_refill_id: int) -> bool:
    """The operator found an unknown refill upstream: placed, checked at the next refill sync."""
    result = await conn.execute(
        text(
            """
            UPDATE refills SET state = 'placed', upstream_refill_id = :upstream, last_error = NULL,
                               next_check_at = now(), updated_at = now()
            WHERE id = :id AND state = 'unknown'
            RETURNING id
            """
        ),
        {"id": refill_id, "upstream": upstream_refill_id},
    )
    return result.first() is not None


async def mark_unknown_refill_failed(conn: Executor, refill_id: int, error: str) -> bool:
    """The operator found no such refill upstream: failed, and the customer sees Rejected."""
    return await _set_state(conn, refill_id, "failed", error, status="Rejected", from_state="unknown")


async def refill_statuses(runtime: Runtime, customer_id: int, refill_ids: Sequence[int]) -> dict[int, str]:
    """The caller's own refills' statuses (a foreign or unknown id is simply absent)."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, status FROM refills WHERE customer_id = :c AND id = ANY(:ids)"),
            {"c": customer_id, "ids": list(refill_ids)},
        )
        return {row.id: row.status for row in rows}


async def sync_refills(runtime: Runtime, providers: dict[int, ProviderAccess]) -> int:
    """The worker's refill loop: lease placed, unfinished refills and ask the upstream.

    Each answer goes to every gateway refill that holds that upstream refill id (a panel may answer
    a repeated request with the existing refill's id), each in a transaction of its own, so one
    refill that cannot be updated never holds back the others. Returns how many were leased."""
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
    by_provider: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in leased:
        by_provider[row.provider_id][row.upstream_refill_id].append(row.id)
    for provider_id, by_upstream_id in by_provider.items():
        provider = providers.get(provider_id)
        if provider is None or not provider.enabled:
            continue  # the lease expires and they are asked about again later
        try:
            client = runtime.upstreams.client_for(provider.id, provider.api_url, provider.api_key)
            with calllog.about():
                answers = await client.refill_statuses(list(by_upstream_id))
        except (UpstreamError, UnsafeUpstreamURL) as exc:
            log.info("refill status check for provider %s failed: %s", provider_id, exc)
            continue
        async with runtime.engine.connect() as conn:
            # Only the ids asked about: anything else in the answer is not ours to apply.
            for upstream_refill_id, refill_ids in by_upstream_id.items():
                answer = answers.get(upstream_refill_id)
                if answer is None:
                    continue  # no news: keep the lease, ask again later
                for refill_id in refill_ids:
                    try:
                        async with conn.begin():
                            await _apply_refill_answer(conn, refill_id, answer)
                    except SQLAlchemyError as exc:
                        log.warning(
                            "refill %s: the upstream's answer could not be recorded (%s)", refill_id, error_summary(exc)
                        )
    return len(leased)


async def _apply_refill_answer(conn: Executor, refill_id: int, answer: RefillStatus | ItemError) -> None:
    if isinstance(answer, ItemError):
        await conn.execute(
            text(
                """
                UPDATE refills SET last_error = :error, last_checked_at = now(),
                                   next_check_at = now() + make_interval(secs => :delay)
                WHERE id = :id AND state = 'placed'
                """
            ),
            {"id": refill_id, "error": answer.message[:1000], "delay": REFILL_CHECK_SECONDS},
        )
        return
    await conn.execute(
        text(
            """
            UPDATE refills SET status = COALESCE(CAST(:status AS varchar), status), status_raw = :raw,
                               last_error = NULL, last_checked_at = now(), updated_at = now(),
                               next_check_at = now() + make_interval(secs => :delay)
            WHERE id = :id AND state = 'placed' AND status NOT IN ('Completed', 'Rejected')
            """
        ),
        {
            "id": refill_id,
            "status": answer.status.value if answer.status is not None else None,
            "raw": answer.raw_status[:200],
            "delay": REFILL_CHECK_SECONDS,
        },
    )
