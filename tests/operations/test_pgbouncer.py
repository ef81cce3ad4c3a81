"""Every connection path through a real PgBouncer in transaction mode (tests/pgbouncer.py).

A transaction pooler gives each transaction, and each statement outside one, whichever server
connection is free. The tests make that happen on purpose: a client prepares a statement on one
server connection, another client then holds that server connection in a transaction, and the
first client's next statement has to run on another one. Told ``GATEWAY_DATABASE_POOLER=transaction``
the gateway's engine, hot-path pool and migrations work through it; without the setting the same
sequence fails, which shows the tests reproduce what production would meet.

The bank, crash and scale-out tests run through PgBouncer as well (their ``[pgbouncer]`` variants).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import tests.pgbouncer
from gateway.db import (
    HotPathPool,
    asyncpg_options,
    create_engine,
    current_revision,
    engine_connect_args,
    head_revision,
)
from gateway.settings import DatabasePooler
from tests.conftest import _run_sync, make_settings
from tests.pgbouncer import PgBouncer, PgBouncerUnavailable
from tests.test_cli import gateway_env, migrate_at_once, run_gateway

MISSING_STATEMENT = "does not exist"
# Statements of the hot path's kind: text() with named parameters, each a single autocommit statement.
DOUBLE = text("SELECT CAST(:n AS integer) * 2 AS doubled")
GREETING = text("SELECT 'hello ' || CAST(:name AS text) AS greeting")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


def test_statement_caching_is_off_only_behind_a_transaction_pooler() -> None:
    # Direct: asyncpg's and SQLAlchemy's statement caches at their defaults (on).
    assert engine_connect_args("none") == {"server_settings": {"application_name": "smm-gateway"}}
    assert asyncpg_options("none") == {"server_settings": {"application_name": "smm-gateway"}}
    assert engine_connect_args("transaction") == {
        "server_settings": {"application_name": "smm-gateway"},
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
    }
    assert asyncpg_options("transaction")["statement_cache_size"] == 0


def test_without_pgbouncer_installed_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the tests that need it are skipped with (pytest -rs shows it).
    monkeypatch.setattr(tests.pgbouncer, "find_pgbouncer", lambda: None)
    with pytest.raises(PgBouncerUnavailable, match="not installed"):
        tests.pgbouncer.start_pgbouncer("postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def server_connection_taken(bouncer_url: str) -> AsyncIterator[None]:
    """Another client holds a server connection in an open transaction: the one PgBouncer had
    idle, i.e. the one the previous statement ran on (PgBouncer reuses an idle server connection
    before it opens a new one)."""
    conn = await asyncpg.connect(_dsn(bouncer_url), statement_cache_size=0)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1")
            yield
    finally:
        await conn.close()


async def test_the_hot_path_pool_works_through_a_transaction_pooler(pgbouncer: PgBouncer, database_url: str) -> None:
    url = pgbouncer.url(database_url)
    hot = HotPathPool(url, 1, "transaction")  # one client connection: every statement on it
    try:
        assert (await hot.fetchrow(DOUBLE, n=2))["doubled"] == 4
        async with server_connection_taken(url):
            assert (await hot.fetchrow(DOUBLE, n=3))["doubled"] == 6  # on another server connection
        # The codec set on connect (client-side) works on any server connection.
        assert (await hot.fetchrow(text("SELECT CAST(:doc AS jsonb) AS doc"), doc={"a": [1]}))["doc"] == {"a": [1]}
    finally:
        await hot.close()


async def test_without_the_setting_the_hot_path_breaks_behind_a_transaction_pooler(
    pgbouncer: PgBouncer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What the setting prevents: asyncpg's cached (named) statement is missing on the other server
    connection. The log says what to do, once."""
    url = pgbouncer.url(database_url)
    hot = HotPathPool(url, 1)
    try:
        await hot.fetchrow(DOUBLE, n=2)
        for _ in range(2):
            async with server_connection_taken(url):
                with pytest.raises(DBAPIError, match=MISSING_STATEMENT):
                    await hot.fetchrow(DOUBLE, n=3)
    finally:
        await hot.close()
    assert _pooler_hints(caplog) == 1


async def test_the_hot_path_under_concurrency_through_a_transaction_pooler(
    pgbouncer: PgBouncer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Many more client connections than PgBouncer's server connections, statements interleaved.
    hot = HotPathPool(pgbouncer.url(database_url), 12, "transaction")

    async def client(i: int) -> None:
        for n in range(20):
            if (i + n) % 2:
                assert (await hot.fetchrow(DOUBLE, n=n))["doubled"] == 2 * n
            else:
                rows = await hot.fetch(GREETING, name=f"c{i}")
                assert [row["greeting"] for row in rows] == [f"hello c{i}"]

    try:
        await asyncio.gather(*(client(i) for i in range(24)))
    finally:
        await hot.close()
    assert _pooler_hints(caplog) == 0


def _pooler_hints(caplog: pytest.LogCaptureFixture) -> int:
    return sum("set GATEWAY_DATABASE_POOLER=transaction" in r.getMessage() for r in caplog.records)


def _engine(url: str, pooler: DatabasePooler) -> Any:
    # One client connection, so that consecutive transactions are that one connection's.
    return create_engine(url, make_settings(db_pool_size=1, db_max_overflow=0, database_pooler=pooler))


async def test_the_engine_works_through_a_transaction_pooler(pgbouncer: PgBouncer, database_url: str) -> None:
    url = pgbouncer.url(database_url)
    engine = _engine(url, "transaction")
    try:
        async with engine.begin() as conn:
            assert await conn.scalar(DOUBLE, {"n": 2}) == 4
        async with server_connection_taken(url):
            async with engine.begin() as conn:
                assert await conn.scalar(DOUBLE, {"n": 3}) == 6
            # Outside a transaction too: each statement may get another server connection.
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                assert await autocommit.scalar(GREETING, {"name": "x"}) == "hello x"
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            assert await autocommit.scalar(GREETING, {"name": "y"}) == "hello y"
    finally:
        await engine.dispose()


async def test_without_the_setting_the_engine_breaks_behind_a_transaction_pooler(
    pgbouncer: PgBouncer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = pgbouncer.url(database_url)
    engine = _engine(url, "none")
    try:
        async with engine.begin() as conn:
            await conn.scalar(DOUBLE, {"n": 2})
        async with server_connection_taken(url):
            with pytest.raises(DBAPIError, match=MISSING_STATEMENT):
                async with engine.begin() as conn:
                    await conn.scalar(DOUBLE, {"n": 3})
    finally:
        await engine.dispose()
    assert _pooler_hints(caplog) == 1


def test_migrations_through_a_transaction_pooler(pgbouncer: PgBouncer, empty_database: str) -> None:
    # Processes starting together wait for each other on the transaction-scoped lock and reach
    # head; later processes (each numbering its statements from one) find nothing left behind.
    url = pgbouncer.url(empty_database)
    for done in migrate_at_once(url, GATEWAY_DATABASE_POOLER="transaction"):
        assert done.returncode == 0, done.stderr[-2000:]
    for _ in range(2):
        done = run_gateway("migrate", env=gateway_env(url, GATEWAY_DATABASE_POOLER="transaction"))
        assert done.returncode == 0, done.stderr[-2000:]

    async def revision() -> str | None:
        engine = _engine(url, "transaction")
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    assert _run_sync(revision()) == head_revision()


def test_without_the_setting_migrations_break_behind_a_transaction_pooler(
    pgbouncer: PgBouncer, empty_database: str
) -> None:
    """The second process gets the first one's server connection, with its named statements."""
    url = pgbouncer.url(empty_database)
    assert run_gateway("migrate", env=gateway_env(url)).returncode == 0
    done = run_gateway("migrate", env=gateway_env(url))
    assert done.returncode != 0
    assert "already exists" in done.stderr


async def test_the_gateway_sends_only_startup_parameters_pgbouncer_accepts(
    pgbouncer: PgBouncer, database_url: str
) -> None:
    """PgBouncer refuses a connection with a startup parameter it does not track (unless listed in
    its ignore_startup_parameters, which the test's PgBouncer leaves empty, as a default one does)."""
    url = pgbouncer.url(database_url)
    engine = _engine(url, "transaction")
    try:
        async with engine.connect() as conn:
            names = await conn.scalar(text("SELECT current_setting('application_name')"))
        assert names == "smm-gateway"
    finally:
        await engine.dispose()
    with pytest.raises(asyncpg.PostgresError, match="unsupported startup parameter"):
        await asyncpg.connect(_dsn(url), statement_cache_size=0, server_settings={"jit": "off"})
