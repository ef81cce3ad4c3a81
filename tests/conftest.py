"""Test harness: every test gets a real Postgres.

``GATEWAY_TEST_DATABASE_URL`` selects a server (any database on it; the tests create their own
databases next to it); otherwise an embedded Postgres under ``var/test-postgres`` is used. The
schema is built once per run by the Alembic migrations into a template database, and every test
that asks for ``database_url`` gets a fresh clone of it: tests can commit, run concurrently and
kill processes without seeing each other.

Every test also runs under a guard (:func:`provider_key_guard`): its log lines, formatted and
redacted as in production, and the output of the gateway processes it starts must not hold a
provider key.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import asyncpg
import httpx
import pytest
from litestar import Litestar
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.db import embedded_server, migrate
from gateway.observability.logs import (
    MIN_SECRET_LENGTH,
    REDACTOR,
    KeyValueFormatter,
    RequestIdFilter,
    library_levels,
)
from gateway.runtime import Runtime
from gateway.settings import DatabasePooler, Settings
from gateway.simulator.config import DEFAULT_API_KEY
from tests.pgbouncer import PgBouncer, PgBouncerUnavailable, start_pgbouncer
from tests.upstream.helpers import API_KEY as ADAPTER_TEST_KEY

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token-0123456789-abcdefghij"
_counter = itertools.count()


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(False)


def _sqlalchemy_url(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg", database=database).render_as_string(False)


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code, whatever loop is running."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A maintenance URL (``postgresql+asyncpg://.../postgres``) of the server tests run on."""
    external = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+asyncpg").render_as_string(False)
        return
    server = embedded_server(ROOT / "var" / "test-data")
    # Durability buys nothing in tests and costs seconds.
    server.psql("ALTER SYSTEM SET fsync = off;")
    server.psql("ALTER SYSTEM SET synchronous_commit = off;")
    server.psql("ALTER SYSTEM SET full_page_writes = off;")
    server.psql("SELECT pg_reload_conf();")
    yield make_url(server.get_uri()).set(drivername="postgresql+asyncpg").render_as_string(False)


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    """A database migrated to head by Alembic, cloned by every test."""
    name = f"gw_tpl_{os.getpid()}"
    dsn = _asyncpg_dsn(server_url)
    _run_sync(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    url = _sqlalchemy_url(server_url, name)
    # migrate() runs its own event loop; keep it off the test loop's thread.
    _run_sync(asyncio.to_thread(migrate, url))
    yield name
    _run_sync(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own (SQLAlchemy asyncpg URL)."""
    name = f"gw_t_{os.getpid()}_{next(_counter)}"
    dsn = _asyncpg_dsn(server_url)
    _run_sync(_execute(dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _sqlalchemy_url(server_url, name)
    _run_sync(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the test server (tests/pgbouncer.py), for the
    whole run. Where it is not installed or does not start, the tests that ask for it are skipped
    and say why (``pytest -rs``)."""
    try:
        bouncer = start_pgbouncer(server_url)
    except PgBouncerUnavailable as exc:
        pytest.skip(f"PgBouncer unavailable: {exc}")
    try:
        yield bouncer
    finally:
        bouncer.stop()


@dataclass(frozen=True)
class DatabaseRoute:
    """How the gateway under test reaches this test's database: ``url`` and the
    ``GATEWAY_DATABASE_POOLER`` that goes with it."""

    url: str
    pooler: DatabasePooler

    @property
    def env(self) -> dict[str, str]:
        """The pooler setting for a gateway process (its URL is passed as ``url``)."""
        return {"GATEWAY_DATABASE_POOLER": self.pooler}


@pytest.fixture(params=["direct", "pgbouncer"])
def database_route(request: pytest.FixtureRequest, database_url: str) -> DatabaseRoute:
    """This test's database directly, then through PgBouncer in transaction mode (with the
    gateway told so): a test taking it runs once each way."""
    if request.param == "direct":
        return DatabaseRoute(database_url, "none")
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return DatabaseRoute(bouncer.url(database_url), "transaction")


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    """A database of this test's own with no schema at all (for the migrations themselves)."""
    name = f"gw_empty_{os.getpid()}_{next(_counter)}"
    dsn = _asyncpg_dsn(server_url)
    _run_sync(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    yield make_url(server_url).set(database=name).render_as_string(False)
    _run_sync(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: no .env file, a known admin token, private upstreams allowed."""
    values: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "allow_private_upstreams": True,
        "rate_limit_per_minute": 0,
        "serve_worker": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def runtime(settings: Settings, database_url: str) -> AsyncIterator[Runtime]:
    """The engine and session factory on this test's database, without an app."""
    rt = Runtime.build(settings, database_url)
    try:
        yield rt
    finally:
        await rt.aclose()


@pytest.fixture
def app(settings: Settings, database_url: str) -> Litestar:
    return create_app(settings, database_url=database_url)


@contextlib.asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to the app in this event loop, with its lifespan run around it.

    (Litestar's own test client runs the app through a blocking portal, which would freeze this
    loop and with it an in-process simulator the app calls.)
    """
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await to_app.get()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))  # type: ignore[arg-type]
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await lifespan


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# --- the provider-key guard ---------------------------------------------------------------------

# Provider keys that tests use without storing them in their database (whose keys are read from it).
UNSTORED_TEST_KEYS = frozenset(
    {
        DEFAULT_API_KEY,  # the simulator's
        ADAPTER_TEST_KEY,  # the adapter tests' fake panel
        "upstream-key",  # tests.factories.make_provider
        "secret-upstream-key",  # tests/catalog/test_admin_catalog.py
        "Zq9+secret/KEY=value&42",  # tests/upstream/test_redaction.py
        "bench-upstream-key",  # tests/bench/harness.py
        "thread-key",  # tests/simulator/test_runners.py
        "new-key-123",  # tests/operations/test_single_upstream.py
        "old-key-123",
    }
)


def key_lines(text: str, keys: Iterable[str]) -> list[str]:
    """The lines of ``text`` holding one of ``keys`` (raw or URL-encoded, in any case), with the
    key itself masked. Keys shorter than the redactor's minimum are ignored, as it ignores them."""
    spellings = {
        spelling.lower()
        for key in (k.strip() for k in keys)
        if len(key) >= MIN_SECRET_LENGTH
        for spelling in (key, quote_plus(key), quote(key, safe=""))
    }
    lowered = text.lower()
    if not any(spelling in lowered for spelling in spellings):  # the common case: one pass each, no regex
        return []
    found = re.compile("|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True)), re.IGNORECASE)
    return [found.sub("<provider key>", line)[:1000] for line in text.splitlines() if found.search(line)]


class KeyGuard:
    """One test's log lines, through the production pipeline (request ids, the redactor, the
    key=value format), and the gateway processes it started; :meth:`leaks` looks for keys."""

    def __init__(self, output_files: list[Path]) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(KeyValueFormatter())
        self.handler.addFilter(RequestIdFilter())
        self.handler.addFilter(REDACTOR)
        self.output_files = output_files

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def leaks(self, keys: Iterable[str]) -> list[str]:
        """Every line holding one of ``keys``, prefixed with where it was (key masked)."""
        keys = list(keys)
        found = [f"log: {line}" for line in key_lines(self.text, keys)]
        for path in self.output_files:
            with contextlib.suppress(FileNotFoundError):  # a test may delete its temporary directory
                found += [f"{path}: {line}" for line in key_lines(path.read_text(errors="replace"), keys)]
        return found

    def forget(self) -> None:
        """Drop what was captured so far (for a test that leaks on purpose)."""
        self.stream.seek(0)
        self.stream.truncate()
        self.output_files.clear()


def stored_provider_keys(database_url: str) -> set[str]:
    async def read() -> set[str]:
        conn = await asyncpg.connect(_asyncpg_dsn(database_url))
        try:
            return {row["api_key"] for row in await conn.fetch("SELECT api_key FROM providers")}
        except asyncpg.UndefinedTableError:  # a test that took the schema down
            return set()
        finally:
            await conn.close()

    keys: set[str] = _run_sync(read())
    return keys


@pytest.fixture(autouse=True)
def provider_key_guard(request: pytest.FixtureRequest) -> Iterator[KeyGuard]:
    """Fails the test when a provider key reaches a log line: its own (the ``gateway`` loggers at
    DEBUG, the libraries at production's levels) or a gateway process'. The keys are the test
    database's, read at the end, and :data:`UNSTORED_TEST_KEYS`."""
    # Requested from here, the database is set up before this fixture and so torn down after it:
    # still there when the keys are read. Tests without one stay cheap.
    database = request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    from tests import processes  # not at the top: it imports tests.test_cli, which imports this module

    processes.output_files.clear()
    guard = KeyGuard(processes.output_files)
    levels = {"": logging.INFO, "gateway": logging.DEBUG, **library_levels(logging.INFO)}
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    root.addHandler(guard.handler)
    try:
        yield guard
    finally:
        root.removeHandler(guard.handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    keys = set(UNSTORED_TEST_KEYS)
    if database is not None:
        keys |= stored_provider_keys(database)
    leaks = guard.leaks(keys)
    processes.output_files.clear()
    if leaks:
        shown = "\n".join(leaks[:20]) + (f"\n... and {len(leaks) - 20} more" if len(leaks) > 20 else "")
        pytest.fail(f"a provider key reached the logs ({len(leaks)} lines):\n{shown}", pytrace=False)
