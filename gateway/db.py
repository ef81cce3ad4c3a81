"""Database access: the engine, sessions, migrations, and the embedded Postgres.

``GATEWAY_DATABASE_URL`` selects an external Postgres. Without it, an embedded Postgres (the
``pgserver`` package: real PostgreSQL binaries shipped in a wheel) keeps its files under
``GATEWAY_DATA_DIR``; it is started on demand, reused by every process of this machine that points
at the same directory, and stopped when the last of them exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "gateway"
_embedded_lock = threading.Lock()
_embedded_servers: dict[Path, Any] = {}


class DatabaseUnavailable(RuntimeError):
    """The database could not be started or reached; the message says why, without secrets."""


def embedded_server(data_dir: Path) -> Any:
    """Start (or join) the embedded Postgres whose files live under ``data_dir/postgres``."""
    pgdata = (data_dir / "postgres").resolve()
    with _embedded_lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            try:
                import pgserver
            except ImportError as exc:  # pragma: no cover - a dependency of the package
                raise DatabaseUnavailable("the embedded Postgres needs the 'pgserver' package") from exc
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            try:
                server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
            except Exception as exc:
                raise DatabaseUnavailable(f"could not start the embedded Postgres in {pgdata}: {exc}") from exc
            _embedded_servers[pgdata] = server
        return server


def embedded_url(data_dir: Path, database: str = EMBEDDED_DATABASE) -> str:
    """An asyncpg URL for a database of the embedded server, creating the database if absent."""
    server = embedded_server(data_dir)
    uri = make_url(server.get_uri())
    if not database.replace("_", "").isalnum():
        raise DatabaseUnavailable(f"bad embedded database name {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 - checked above
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return uri.set(drivername="postgresql+asyncpg", database=database).render_as_string(False)


def resolve_database_url(settings: Settings) -> str:
    """The URL this process should use: the external one, or the embedded server's."""
    url = settings.async_database_url
    if url is not None:
        return url
    return embedded_url(settings.data_dir)


def stop_embedded() -> None:
    """Release this process' hold on every embedded server (the last holder stops it)."""
    with _embedded_lock:
        for server in _embedded_servers.values():
            try:
                server.cleanup()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.warning("embedded Postgres did not stop cleanly", exc_info=True)
        _embedded_servers.clear()


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    """The process' async engine. Statement caching stays on: it is what makes asyncpg fast."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "smm-gateway"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back on any error."""
    async with sessions() as session, session.begin():
        yield session


def alembic_config(url: str) -> Any:
    """The Alembic configuration of this package, pointed at ``url``."""
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    ini = root / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(root / "migrations"))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def migrate(url: str) -> None:
    """Apply every migration up to head (blocking; run it before serving)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql+asyncpg:///unused")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return str(revision) if revision is not None else None
