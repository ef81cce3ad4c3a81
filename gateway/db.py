"""Database access: the engine, sessions, migrations, and the embedded Postgres.

``GATEWAY_DATABASE_URL`` selects an external Postgres. Without it, an embedded Postgres (the
``pgserver`` package: real PostgreSQL binaries shipped in a wheel) keeps its files under
``GATEWAY_DATA_DIR``; it is started on demand, reused by every process of this machine that points
at the same directory, and stopped when the last of them exits.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.resources
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import TextClause, event, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.dberrors import raised_by_server
from gateway.settings import DatabasePooler, Settings

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


# Startup parameters of every connection. PgBouncer passes on the few it tracks (application_name
# among them) and refuses a connection that sends any other, unless its ignore_startup_parameters
# lists it: a per-connection setting (jit, search_path, a timeout) belongs in the statement's own
# transaction (SET LOCAL) instead, which a transaction pooler cannot mix up between clients.
SERVER_SETTINGS = {"application_name": "smm-gateway"}


def asyncpg_options(pooler: DatabasePooler) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect()`` (and pools) behind ``pooler``.

    Without a pooler asyncpg's statement cache stays on: each statement is parsed once per
    connection, then only bound and executed, which is what makes asyncpg fast. A prepared
    statement lives on one server connection, though, and a transaction pooler gives each
    transaction (each autocommit statement, too) whichever server connection is free: a statement
    prepared on one is then executed on another ("prepared statement "__asyncpg_stmt_1__" does not
    exist"), or two clients' statements of the same name meet on one ("already exists"). With the
    cache off asyncpg (0.31 and later) uses only the unnamed statement, parsed again in the same
    round trip as every execution, so nothing outlives the statement.
    """
    options: dict[str, Any] = {"server_settings": dict(SERVER_SETTINGS)}
    if pooler == "transaction":
        options["statement_cache_size"] = 0
    return options


def engine_connect_args(pooler: DatabasePooler) -> dict[str, Any]:
    """``connect_args`` of a SQLAlchemy asyncpg engine behind ``pooler``.

    SQLAlchemy's asyncpg dialect keeps its own cache of asyncpg prepared statements per
    connection, turned off as well behind a transaction pooler. (The other recipe its documentation
    gives for PgBouncer, a unique name per statement, is not used: every statement would still be a
    named one, left on whichever server connection the transaction got (asyncpg closes it later,
    on whichever server connection it holds then), and outside a transaction its prepare and its
    execution could reach two different server connections.)
    """
    connect_args = asyncpg_options(pooler)
    if pooler == "transaction":
        connect_args["prepared_statement_cache_size"] = 0
    return connect_args


# SQLSTATEs of a prepared statement missing on the server connection (26000) or already there
# (42P05): what a transaction pooler does to cached statements.
_POOLER_SQLSTATES = frozenset({"26000", "42P05"})


class PoolerHint:
    """Says once (per engine or pool) what those errors mean: the database is behind a
    transaction pooler that ``GATEWAY_DATABASE_POOLER`` does not mention. An operator who put
    PgBouncer in front and forgot the setting gets the fix in the log, not only failed requests."""

    def __init__(self) -> None:
        self.given = False

    def consider(self, exc: BaseException) -> None:
        if self.given:
            return
        error: BaseException | None = exc
        for _ in range(5):  # SQLAlchemy's error, its adapted driver error, asyncpg's own
            if error is None:
                return
            if getattr(error, "sqlstate", None) in _POOLER_SQLSTATES:
                break
            error = getattr(error, "orig", None) or error.__cause__
        else:
            return
        self.given = True
        log.error(
            "a prepared statement was missing on the database connection, or already there: the"
            " database looks to be behind a pooler in transaction mode (PgBouncer); if so, set"
            " GATEWAY_DATABASE_POOLER=transaction"
        )


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    """The process' async engine. Statement caching stays on unless the database is behind a
    transaction pooler (``GATEWAY_DATABASE_POOLER``; see :func:`asyncpg_options`).

    Bound values never go into an error's text (``[parameters: ...]``): an INSERT of a provider
    carries its API key, and an error's text ends up in tracebacks and logs.
    """
    engine = create_async_engine(
        url,
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args=engine_connect_args(settings.database_pooler),
    )
    if settings.database_pooler == "none":
        hint = PoolerHint()
        event.listen(engine.sync_engine, "handle_error", lambda context: hint.consider(context.original_exception))
    return engine


# What the hot path turns into DBAPIError: the server's errors, and failing to reach it at all
# (refused or unreachable: OSError; connect timeout: TimeoutError; a broken protocol state:
# InternalClientError), so that a caller handles one error type for "the database said no".
_HOT_PATH_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)

_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


def asyncpg_sql(statement: TextClause) -> tuple[str, tuple[str, ...]]:
    """A ``text()`` statement as asyncpg runs it: the SQL with ``$n`` placeholders, and the
    parameter names in their order. SQLAlchemy's own compiler does it (the same text the engine
    would send), so a ``:name`` inside a literal or a ``::`` cast is never taken for a parameter."""
    compiled = statement.compile(dialect=_ASYNCPG)
    return compiled.string, tuple(compiled.positiontup or ())


async def _init_hot_connection(conn: asyncpg.Connection) -> None:
    # The same JSON text SQLAlchemy's JSONB type writes. A codec is the client's own state (asyncpg
    # looks the type up with a read-only query): nothing is left on the server connection.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _reusable_after(exc: BaseException) -> bool:
    """Whether a connection whose statement raised ``exc`` is fit for the next one: only when
    the server refused the statement (autocommit: nothing is left open). A failure on the way
    (lost connection, timeout, cancellation mid-statement) leaves the protocol state unknown."""
    return isinstance(exc, asyncpg.PostgresError) and raised_by_server(exc)


class HotPathPool:
    """The connections for the few single statements of the customer hot path (the key lookup,
    the charge, recording placed orders, the status read): asyncpg connections, kept by a pool
    of this class' own.

    Through SQLAlchemy each of those costs 100-150 µs more CPU than through asyncpg itself (the
    execution context and result wrapping, plus a BEGIN and a ROLLBACK around every read), which
    on a v2 call of one to three statements was most of the request (docs/BENCHMARKS.md); and
    asyncpg's own ``Pool`` costs another 20-40 µs a statement (an acquire context with its
    timeout, a task per release, the connection's reset protocol), for guarantees a single
    autocommit statement does not need. Each statement here is one autocommit statement, atomic
    on its own; anything that needs a transaction of several statements stays on the SQLAlchemy
    engine. The SQL stays in the domain's queries module as ``text()`` constructs; this only runs
    their text.

    No reset runs between two statements: nothing here leaves session state (SET, LISTEN,
    advisory locks, cursors), and behind a transaction pooler a reset would run on whichever
    server connection the pooler picked, another client's.

    Up to ``max_size`` connections, opened as they are needed and reused most-recent-first (the
    rest go idle and are closed after ``idle_seconds``); a caller finding all of them busy waits
    its turn. A connection goes back only when its statement ended cleanly or the server refused
    it; after any other failure (lost connection, cancellation mid-statement) it is closed.
    Closed by ``Runtime.aclose()``. Database errors, and failures to connect, come out as
    SQLAlchemy's ``DBAPIError``, like everywhere else.
    """

    def __init__(self, url: str, max_size: int, pooler: DatabasePooler = "none", idle_seconds: float = 300.0) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._max_size = max_size
        self._options = asyncpg_options(pooler)
        self._pooler_hint = PoolerHint() if pooler == "none" else None
        self._idle_seconds = idle_seconds
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # (connection, idle since)
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._closed = False
        self._statements: dict[TextClause, tuple[str, tuple[str, ...]]] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self._dsn, **self._options)
        try:
            await _init_hot_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the hot-path pool is closed")
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if not conn.is_closed() and now - since < self._idle_seconds:
                return conn
            self._discard(conn)
        if self._open >= self._max_size:
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    handed = waiter.result()
                    if handed is not None:
                        self._release(handed)  # handed over just as we gave up: pass it on
                    else:
                        self._open -= 1  # the same for a free slot
                        self._wake_one()
                raise
            if conn is not None:
                return conn
            # a slot was freed (a connection closed): open a new one in it, unless closed meanwhile
            if self.closed:
                self._open -= 1
                raise asyncpg.InterfaceError("the hot-path pool is closed")
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def _release(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed():
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        now = time.monotonic()
        while self._idle and now - self._idle[0][1] >= self._idle_seconds:  # the longest idle first
            self._discard(self._idle.pop(0)[0])
        self._idle.append((conn, now))

    def _discard(self, conn: asyncpg.Connection) -> None:
        """Close ``conn`` and free its slot for a waiter."""
        conn.terminate()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        if self._closed:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def _run(self, method: str, sql: str, arguments: list[Any], statement_timeout: float | None = None) -> Any:
        try:
            conn = await self._acquire()
        except _HOT_PATH_ERRORS as exc:
            raise DBAPIError(sql, None, exc) from exc
        try:
            # asyncpg's own timeout: it cancels the statement on the server too (asyncio's would
            # only stop waiting, leaving the connection mid-protocol).
            result = await getattr(conn, method)(sql, *arguments, timeout=statement_timeout)
        except BaseException as exc:
            if _reusable_after(exc):
                self._release(conn)
            else:
                self._discard(conn)
            if isinstance(exc, _HOT_PATH_ERRORS):
                self._database_error(exc)
                raise DBAPIError(sql, None, exc) from exc
            raise
        self._release(conn)
        return result

    def _arguments(self, statement: TextClause, params: dict[str, Any]) -> tuple[str, list[Any]]:
        compiled = self._statements.get(statement)
        if compiled is None:
            compiled = self._statements[statement] = asyncpg_sql(statement)
        sql, names = compiled
        return sql, [params[name] for name in names]

    async def fetchrow(
        self, statement: TextClause, *, statement_timeout: float | None = None, **params: Any
    ) -> asyncpg.Record | None:
        """The first row of ``statement`` (run on its own, autocommit), or None. After
        ``statement_timeout`` seconds the statement is cancelled and the call fails (whether it
        committed is then unknown: only for statements whose callers can find out)."""
        sql, arguments = self._arguments(statement, params)
        row: asyncpg.Record | None = await self._run("fetchrow", sql, arguments, statement_timeout)
        return row

    async def fetch(
        self, statement: TextClause, *, statement_timeout: float | None = None, **params: Any
    ) -> list[asyncpg.Record]:
        """Every row of ``statement`` (run on its own, autocommit); ``statement_timeout`` as for
        :meth:`fetchrow`."""
        sql, arguments = self._arguments(statement, params)
        return list(await self._run("fetch", sql, arguments, statement_timeout))

    def _database_error(self, exc: BaseException) -> None:
        if self._pooler_hint is not None:
            self._pooler_hint.consider(exc)

    async def close(self) -> None:
        """Close the idle connections now and the busy ones as their statements end; callers
        still waiting for a connection get an error."""
        self._closed = True
        # The waiters first: nothing below may hand them a connection or a slot any more.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the hot-path pool is closed"))
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout=10)
            except (TimeoutError, *_HOT_PATH_ERRORS):
                conn.terminate()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def migrations_directory() -> Path:
    """Where the migration scripts are: the ``gateway.migrations`` package, which the wheel ships
    (the repository's top-level ``migrations/``, mapped to that name by pyproject.toml; an editable
    install maps it to the same directory), so no source tree or working directory is involved."""
    scripts = importlib.resources.files("gateway.migrations")
    if not isinstance(scripts, Path):  # e.g. a zipped install: Alembic needs real files
        raise RuntimeError(f"the migrations must be installed as files, found {scripts!r}")
    return scripts


def alembic_config(url: str, pooler: DatabasePooler = "none") -> Any:
    """The Alembic configuration of this package, pointed at ``url`` (behind ``pooler``).

    Built in code, not read from ``alembic.ini`` (that file is for developers running ``alembic``
    by hand in the repository): an installed gateway has no source tree.
    """
    from alembic.config import Config

    config = Config()
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("script_location", str(migrations_directory()).replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    config.attributes["connect_args"] = engine_connect_args(pooler)
    return config


def migrate(url: str, pooler: DatabasePooler = "none") -> None:
    """Apply every migration up to head (blocking; run it before serving). Processes migrating
    at once wait for each other (a transaction-scoped advisory lock: migrations/env.py)."""
    from alembic import command

    command.upgrade(alembic_config(url, pooler), "head")


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql+asyncpg:///unused")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        return await revision_of(conn)


async def revision_of(conn: AsyncConnection) -> str | None:
    """:func:`current_revision` on a connection the caller holds."""
    exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return None
    revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    return str(revision) if revision is not None else None
