"""Following what was placed upstream: the one lease-and-poll loop of the status sync (orders)
and the refill sync (refills).

A pass leases due items (``next_check_at`` pushed ahead under ``FOR UPDATE SKIP LOCKED``, so any
number of workers share the work), asks each provider about its items with no transaction open
(up to 100 ids per call, the adapter splits), and applies each item's answer on its own: one
item's answer that cannot be stored never rolls back, delays or blocks another, and one
provider's failure never stops the others. An item the provider did not answer for keeps its
lease and is asked about again when the lease runs out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from gateway.dberrors import error_summary
from gateway.failpoints import failpoint
from gateway.orders.store import Followed, Leased, OrderStore
from gateway.upstream import UpstreamError

log = logging.getLogger(__name__)

BATCH = 500
LEASE_SECONDS = 120.0

Answer = TypeVar("Answer")


async def poll(
    orders: OrderStore,
    table: Followed,
    *,
    ask: Callable[[int, list[int]], Awaitable[Mapping[int, Answer]]],
    apply: Callable[[Leased, Answer], Awaitable[object]],
    on_unstorable: Callable[[Leased, DBAPIError], Awaitable[object]] | None = None,
    apply_many: Callable[[list[tuple[Leased, Answer]]], Awaitable[list[tuple[Leased, Answer]]]] | None = None,
    failpoint_prefix: str,
) -> int:
    """One pass over ``table``: lease, ``ask`` each provider (provider id, upstream ids), then
    ``apply`` each answer to its item; returns how many items were leased.

    ``apply_many``, when given, first applies what it can of one provider's answers together (in
    one statement) and returns the rest, which ``apply`` then takes one by one; if it fails, every
    answer is applied one by one, so a batch the database refuses costs time, never an answer."""
    leased = await orders.lease(table, BATCH, LEASE_SECONDS)
    by_provider: dict[int, list[Leased]] = defaultdict(list)
    for item in leased:
        by_provider[item.provider_id].append(item)
    for provider_id, items in by_provider.items():
        try:
            answers = await ask(provider_id, list(dict.fromkeys(item.upstream_id for item in items)))
        except UpstreamError as exc:
            log.info("%s check at provider %s failed: %s", table, provider_id, exc)
            continue  # the leases run out and they are asked about again later
        except Exception:
            log.exception("%s check at provider %s failed", table, provider_id)
            continue
        failpoint(f"{failpoint_prefix}_after_fetch")
        # Only the ids asked about: anything else in the answer is not ours to apply. No news is
        # not an error: an item without an answer keeps its lease and is asked about again later.
        answered = [(item, answer) for item in items if (answer := answers.get(item.upstream_id)) is not None]
        if apply_many is not None and answered:
            try:
                answered = await apply_many(answered)
            except DBAPIError as exc:
                log.warning("%s: a batch of answers could not be stored (%s); one by one", table, error_summary(exc))
        for item, answer in answered:
            try:
                await apply(item, answer)
            except DBAPIError as exc:
                log.warning("%s %s: the upstream's answer could not be stored (%s)", table, item.id, error_summary(exc))
                if on_unstorable is not None:
                    try:
                        await on_unstorable(item, exc)
                    except DBAPIError as again:
                        log.warning(
                            "%s %s: could not note the problem either (%s)", table, item.id, error_summary(again)
                        )
        failpoint(f"{failpoint_prefix}_after_apply")
    return len(leased)
