"""The hot path's own connection pool (gateway.db.HotPathPool), against the real database: its
bound on connections, which failures retire a connection, cancellation, and closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import HotPathPool

PID = text("SELECT pg_backend_pid() AS pid")
SLEEPY_PID = text("SELECT pg_backend_pid() AS pid, pg_sleep(CAST(:seconds AS float8))")


@pytest.fixture
async def hot(database_url: str) -> AsyncIterator[HotPathPool]:
    pool = HotPathPool(database_url, 3)
    yield pool
    await pool.close()


async def _pid(hot: HotPathPool) -> int:
    row = await hot.fetchrow(PID)
    assert row is not None
    return int(row["pid"])


async def _terminate(database_url: str, pid: int) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(500):  # until the backend is really gone
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_never_more_connections_than_its_size_and_every_caller_served(hot: HotPathPool) -> None:
    rows = await asyncio.gather(*(hot.fetchrow(SLEEPY_PID, seconds=0.02) for _ in range(20)))
    pids = {row["pid"] for row in rows if row is not None}
    assert len(rows) == 20
    assert 1 <= len(pids) <= 3


async def test_a_statement_the_server_refuses_keeps_its_connection(hot: HotPathPool) -> None:
    before = await _pid(hot)
    with pytest.raises(DBAPIError) as caught:
        await hot.fetchrow(text("SELECT 1 / 0"))
    assert isinstance(caught.value.orig, asyncpg.DivisionByZeroError)
    assert await _pid(hot) == before


async def test_a_connection_lost_while_idle_is_replaced_unseen(hot: HotPathPool, database_url: str) -> None:
    lost = await _pid(hot)
    await _terminate(database_url, lost)
    assert await _pid(hot) != lost


async def test_a_connection_lost_midway_is_an_error_once_and_then_replaced(hot: HotPathPool, database_url: str) -> None:
    lost = await _pid(hot)
    running = asyncio.create_task(hot.fetchrow(SLEEPY_PID, seconds=30))
    await asyncio.sleep(0.2)
    await _terminate(database_url, lost)
    with pytest.raises(DBAPIError) as caught:
        await running
    assert isinstance(caught.value.orig, asyncpg.PostgresError | asyncpg.InterfaceError | OSError)
    assert await _pid(hot) != lost


async def test_a_statement_cancelled_midway_retires_its_connection_and_frees_its_place(hot: HotPathPool) -> None:
    first = await _pid(hot)
    task = asyncio.create_task(hot.fetchrow(SLEEPY_PID, seconds=30))
    await asyncio.sleep(0.2)  # the statement is running on the one idle connection
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _pid(hot) != first  # not handed on in an unknown protocol state
    # and its place was given back: the pool still runs three statements at once
    rows = await asyncio.gather(*(hot.fetchrow(SLEEPY_PID, seconds=0.3) for _ in range(3)))
    assert len({row["pid"] for row in rows if row is not None}) == 3


async def test_callers_that_give_up_waiting_leave_no_place_taken(hot: HotPathPool) -> None:
    busy = [asyncio.create_task(hot.fetchrow(SLEEPY_PID, seconds=0.5)) for _ in range(3)]
    await asyncio.sleep(0.1)
    waiting = [asyncio.create_task(hot.fetchrow(PID)) for _ in range(5)]
    await asyncio.sleep(0.05)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*busy)
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    rows = await asyncio.gather(*(hot.fetchrow(SLEEPY_PID, seconds=0.1) for _ in range(6)))
    assert len(rows) == 6
    assert len({row["pid"] for row in rows if row is not None}) <= 3


async def test_connections_idle_too_long_are_closed(database_url: str) -> None:
    hot = HotPathPool(database_url, 2, idle_seconds=0.2)
    try:
        first = await _pid(hot)
        await asyncio.sleep(0.3)
        assert await _pid(hot) != first
    finally:
        await hot.close()


async def test_a_closed_pool_refuses_and_wakes_its_waiters(database_url: str) -> None:
    hot = HotPathPool(database_url, 1)
    busy = asyncio.create_task(hot.fetchrow(SLEEPY_PID, seconds=0.3))
    await asyncio.sleep(0.1)
    waiter = asyncio.create_task(hot.fetchrow(PID))
    await asyncio.sleep(0.05)
    await hot.close()
    with pytest.raises(DBAPIError):
        await waiter
    assert (await busy) is not None  # a statement already running finishes
    with pytest.raises(DBAPIError):
        await hot.fetchrow(PID)


async def test_a_connection_handed_to_a_caller_that_just_gave_up_goes_to_the_next(database_url: str) -> None:
    """The race the pool must not lose a connection to: a connection is handed to a waiting
    caller at the moment that caller is cancelled."""
    hot = HotPathPool(database_url, 1)
    try:
        conn = await hot._acquire()  # the only connection, taken
        waiter = asyncio.create_task(hot._acquire())
        await asyncio.sleep(0)  # parked, waiting for a connection
        hot._release(conn)  # handed to the waiter ...
        waiter.cancel()  # ... which gives up before it runs again
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # the connection went back to the pool, not lost with the cancelled caller
        assert await asyncio.wait_for(_pid(hot), timeout=10) == conn.get_server_pid()
    finally:
        await hot.close()


async def test_a_free_place_handed_to_a_caller_that_just_gave_up_goes_to_the_next(database_url: str) -> None:
    hot = HotPathPool(database_url, 1)
    try:
        conn = await hot._acquire()
        waiter = asyncio.create_task(hot._acquire())
        await asyncio.sleep(0)
        hot._discard(conn)  # its place is handed to the waiter ...
        waiter.cancel()  # ... which gives up
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await asyncio.wait_for(_pid(hot), timeout=10) > 0  # the place was not lost
    finally:
        await hot.close()
