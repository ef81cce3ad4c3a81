"""Placed orders recorded in groups (gateway.orders.groupcommit): each caller keeps its own
answer and its own error, whatever else shares its statement.

First the mechanism on its own (no database: what is batched, what fails alone, what fails
together), then the order store's use of it on the real database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from gateway.dberrors import violated_constraint
from gateway.ledger.keys import hash_key
from gateway.orders.groupcommit import GroupCommit
from tests.orders.conftest import Shop

FOLLOWERS = 102  # the simulator's followers service: 0.45 per 1000, min 100

# --- the mechanism ------------------------------------------------------------------------------


class Recorder:
    """Writes that take one loop turn (like a statement), noting every batch it was given."""

    def __init__(self, refuse: frozenset[int] = frozenset(), lose_connection: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse
        self.lose_connection = lose_connection

    async def one(self, item: int) -> int:
        self.batches.append([item])
        await asyncio.sleep(0)
        if item in self.refuse:
            raise DBAPIError("stmt", None, asyncpg.UniqueViolationError("duplicate"))
        return item * 10

    async def many(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.lose_connection:
            raise DBAPIError("stmt", None, asyncpg.ConnectionDoesNotExistError("connection lost"))
        if self.refuse & set(items):
            raise DBAPIError("stmt", None, asyncpg.UniqueViolationError("duplicate"))
        return [item * 10 for item in items]


async def test_alone_a_write_goes_at_once_and_together_they_share_a_statement() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.one, recorder.many, lanes=1)
    assert await group.write(1) == 10
    assert recorder.batches == [[1]]
    # the first of these finds nothing in flight; the others arrive while it is, and go together
    results = await asyncio.gather(*(group.write(n) for n in range(2, 12)))
    assert results == [n * 10 for n in range(2, 12)]
    assert recorder.batches[1:] == [[2], list(range(3, 12))]


async def test_batches_are_bounded() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.one, recorder.many, max_batch=4, lanes=1)
    results = await asyncio.gather(*(group.write(n) for n in range(10)))
    assert results == [n * 10 for n in range(10)]
    assert [len(batch) for batch in recorder.batches] == [1, 4, 4, 1]
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(recorder.one, recorder.many, max_batch=0)
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(recorder.one, recorder.many, lanes=0)


async def test_a_row_the_database_refuses_fails_alone() -> None:
    recorder = Recorder(refuse=frozenset({5}))
    group = GroupCommit(recorder.one, recorder.many, lanes=1)
    results = await asyncio.gather(*(group.write(n) for n in range(8)), return_exceptions=True)
    assert isinstance(results[5], DBAPIError)
    assert [r for i, r in enumerate(results) if i != 5] == [n * 10 for n in range(8) if n != 5]
    # the refused batch was written again row by row
    assert recorder.batches == [[0], list(range(1, 8))] + [[n] for n in range(1, 8)]


async def test_a_lost_connection_is_everyones_error_and_nothing_is_rewritten() -> None:
    recorder = Recorder(lose_connection=True)
    group = GroupCommit(recorder.one, recorder.many, lanes=1)
    results = await asyncio.gather(*(group.write(n) for n in range(6)), return_exceptions=True)
    assert results[0] == 0  # alone, before the connection was lost
    assert all(isinstance(r, DBAPIError) for r in results[1:])
    # the batch may have committed: writing its rows again one by one could write them twice
    assert recorder.batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_caller_that_stops_waiting_does_not_stop_the_groups_write() -> None:
    written: list[int] = []
    release = asyncio.Event()

    async def slow_many(items: Sequence[int]) -> list[int]:
        await release.wait()
        written.extend(items)
        return list(items)

    async def one(item: int) -> int:
        await release.wait()
        written.append(item)
        return item

    group = GroupCommit(one, slow_many, lanes=1)
    first = asyncio.create_task(group.write(1))
    await asyncio.sleep(0)
    others = [asyncio.create_task(group.write(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    first.cancel()  # written in its own task: cancelled with it, as without batching
    others[0].cancel()  # waiting for the next statement: written all the same
    release.set()
    assert await others[1] == 3
    assert sorted(written) == [2, 3]


async def test_a_statement_that_waits_holds_up_its_own_lane_only() -> None:
    """A write stuck on a lock (or a connection gone quiet) must not stop every other order of
    the process: with two lanes the others go through the second."""
    stuck = asyncio.Event()
    written: list[int] = []

    async def one(item: int) -> int:
        if item == 0:
            await stuck.wait()
        written.append(item)
        return item

    async def many(items: Sequence[int]) -> list[int]:
        written.extend(items)
        return list(items)

    group = GroupCommit(one, many, lanes=2)
    blocked = asyncio.create_task(group.write(0))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(asyncio.gather(*(group.write(n) for n in range(1, 6))), timeout=10) == [1, 2, 3, 4, 5]
    assert not blocked.done()
    stuck.set()
    assert await blocked == 0
    assert sorted(written) == [0, 1, 2, 3, 4, 5]


# --- the order store ------------------------------------------------------------------------------


async def _submitting_orders(shop: Shop, count: int) -> list[int]:
    service = shop.services[FOLLOWERS]
    revision = await shop.scalar("SELECT revision FROM catalog_revision WHERE id = 1")
    ids = []
    for n in range(count):
        created = await shop.runtime.orders.charge_and_create(
            {
                "customer_id": shop.customer_id,
                "service_id": service,
                "provider_id": shop.provider_id,
                "upstream_service_id": FOLLOWERS,
                "route_priority": 0,
                "link": f"https://example.com/g{n}",
                "quantity": 100,
                "params": {},
                "rate": Decimal("1"),
                "charge": Decimal("0.1"),
                "cost": Decimal("0.05"),
                "currency": "USD",
                "request_id": None,
                "revision": revision,
                "key_hash": hash_key(shop.key),
                "discount": Decimal(0),
                "allowed_ips": None,
            },
            guard_link=False,
        )
        assert created is not None
        ids.append(created[0])
    return ids


def _call(shop: Shop, order_id: int) -> dict[str, Any]:
    return {
        "provider_id": shop.provider_id,
        "order_id": order_id,
        "refill_id": None,
        "action": "add",
        "outcome": "ok",
        "http_status": 200,
        "duration_ms": 3,
        "error": None,
        "request_id": f"r{order_id}",
        "created_at": "2026-12-05T12:00:00+00:00",
    }


async def test_orders_placed_together_are_each_recorded_with_their_own_evidence(shop: Shop) -> None:
    ids = await _submitting_orders(shop, 12)
    statements = 0
    many = shop.runtime.orders._mark_many_placed

    async def counting(batch: Sequence[Any]) -> list[bool]:
        nonlocal statements
        statements += 1
        return await many(batch)

    shop.runtime.orders._placed._many = counting
    results = await asyncio.gather(
        *(
            shop.runtime.orders.mark_placed(order_id, 900_000 + order_id, 30, [_call(shop, order_id)])
            for order_id in ids
        )
    )
    assert results == [True] * 12
    assert 1 <= statements < 12  # shared
    for order_id in ids:
        row = await shop.order(order_id)
        assert (row.state, row.upstream_order_id) == ("placed", 900_000 + order_id)
        assert row.next_check_at > row.placed_at
        calls = await shop.scalar("SELECT array_agg(request_id) FROM upstream_calls WHERE order_id = :id", id=order_id)
        assert calls == [f"r{order_id}"]


async def test_in_a_group_an_order_that_moved_on_is_the_only_one_not_placed(shop: Shop) -> None:
    ids = await _submitting_orders(shop, 6)
    gone = ids[3]
    await shop.execute("UPDATE orders SET state = 'canceled' WHERE id = :id", id=gone)
    results = await asyncio.gather(
        *(shop.runtime.orders.mark_placed(order_id, 800_000 + order_id, 30, []) for order_id in ids)
    )
    assert results == [order_id != gone for order_id in ids]
    assert (await shop.order(gone)).upstream_order_id is None


async def test_in_a_group_a_reused_upstream_id_fails_only_its_own_order(shop: Shop) -> None:
    ids = await _submitting_orders(shop, 6)
    await shop.execute("UPDATE orders SET state = 'placed', upstream_order_id = 777 WHERE id = :id", id=ids[0])
    later = ids[1:]
    results = await asyncio.gather(
        *(
            shop.runtime.orders.mark_placed(order_id, 777 if order_id == later[2] else 700_000 + order_id, 30, [])
            for order_id in later
        ),
        return_exceptions=True,
    )
    failed = results[2]
    assert isinstance(failed, DBAPIError)
    assert violated_constraint(failed) == "uq_orders_provider_id_upstream_order_id"
    assert [r for i, r in enumerate(results) if i != 2] == [True] * 4
    assert (await shop.order(later[2])).state == "submitting"
