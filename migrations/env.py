"""Alembic environment: runs migrations on the gateway's async engine.

The URL is set by :func:`gateway.db.alembic_config`; when no URL is set there, the gateway's
settings decide (``GATEWAY_DATABASE_URL`` or the embedded Postgres).
"""

from __future__ import annotations

import asyncio
import logging.config
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from gateway.db import resolve_database_url
    from gateway.settings import load_settings

    return resolve_database_url(load_settings())


def _connect_args() -> dict[str, Any]:
    """How to connect: as :func:`gateway.db.alembic_config` says (the gateway's own pooler
    setting), else as the settings say (``alembic`` run by hand)."""
    connect_args: dict[str, Any] | None = config.attributes.get("connect_args")
    if connect_args is not None:
        return connect_args
    from gateway.db import engine_connect_args
    from gateway.settings import load_settings

    return engine_connect_args(load_settings().database_pooler)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    # Every pending migration runs in one transaction, which takes the lock first: two processes
    # starting at once (serve and worker, or several replicas) must not migrate concurrently, and a
    # transaction-scoped lock is the kind a transaction pooler (PgBouncer) keeps on one server
    # connection. (With a transaction per migration the lock went with the first commit, and the
    # next process ran the second migration alongside the first one's.) A migration that must run
    # outside a transaction (autocommit_block) would end the lock's transaction too: it must be
    # safe to run twice.
    with context.begin_transaction():
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(726354100)")
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool, connect_args=_connect_args())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
