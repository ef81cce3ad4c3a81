"""Database errors in logs: what Postgres and SQLAlchemy echo of a row or a statement's values is
hidden, whether or not the redactor knows the key in it; the message and the constraint stay.

The errors are real ones, from the test's Postgres through asyncpg, through SQLAlchemy engines
and through the hot path's pool, logged with a redactor that knows no key at all.
"""

from __future__ import annotations

import io
import logging
import secrets
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db import HotPathPool, create_engine
from gateway.models import Provider
from gateway.observability.logs import HIDDEN_DETAIL, HIDDEN_PARAMETERS, KeyValueFormatter, Redactor
from tests.conftest import make_settings

CHECK = "ck_providers_api_url_http"
INSERT = "INSERT INTO providers (name, api_url, api_key) VALUES ($1, $2, $3)"


class Lines:
    """Log lines of one logger, through a redactor of their own that knows no secret: what it
    hides, it hides by shape."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(Redactor())
        self.handler.setFormatter(KeyValueFormatter())
        self.log = logging.getLogger("gateway.tests.database_errors")

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def lines() -> Iterator[Lines]:
    captured = Lines()
    captured.log.addHandler(captured.handler)
    yield captured
    captured.log.removeHandler(captured.handler)


@pytest.fixture
def key() -> str:
    return "pk-" + secrets.token_hex(16)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False))
    yield connection
    await connection.close()


@pytest.fixture
async def plain_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine that shows bound values in its errors, as SQLAlchemy's default (and Alembic's) does."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


def log_every_way(lines: Lines, exc: BaseException) -> None:
    """The ways code puts an error in a log line: a traceback, its text in the message, in a field."""
    lines.log.error("saving the provider failed", exc_info=exc)
    lines.log.warning("saving the provider failed: %s", exc)
    lines.log.warning("saving the provider failed: %r", exc)
    lines.log.warning("worker step failed; continuing", extra={"error": str(exc), "errors": [str(exc)], "exc": exc})
    lines.log.warning("saving the provider failed", stack_info=True, extra={"detail": getattr(exc, "detail", None)})


async def test_asyncpg_check_violation_echoing_the_row(conn: asyncpg.Connection, lines: Lines, key: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await conn.execute(INSERT, "panel", "HTTP://panel.example.com/api/v2", key)
    assert key in str(caught.value)  # "Failing row contains (..., <key>, ...)": what must not reach a log
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert f'new row for relation \\"providers\\" violates check constraint \\"{CHECK}\\"' in lines.text
    assert f"DETAIL:  {HIDDEN_DETAIL}" in lines.text
    assert "Failing row contains (" not in lines.text


async def test_asyncpg_unique_violation_echoing_the_key(conn: asyncpg.Connection, lines: Lines, key: str) -> None:
    # The value is in the index key this time: "Key (name)=(<value>) already exists."
    await conn.execute(INSERT, key, "https://panel.example.com/api/v2", "k1-" + secrets.token_hex(8))
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await conn.execute(INSERT, key, "https://other.example.com/api/v2", "k2-" + secrets.token_hex(8))
    assert key in str(caught.value)
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert "uq_providers_name" in lines.text
    assert f"Key (name)={HIDDEN_DETAIL}" in lines.text


async def test_a_row_value_with_blank_lines_does_not_end_the_detail_early(
    conn: asyncpg.Connection, lines: Lines, key: str
) -> None:
    # A blank line is where a traceback's next exception starts; the key comes after one here.
    after_blank_line = "tail-" + secrets.token_hex(8)
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await conn.execute(INSERT, f"first line\n\n{after_blank_line}", "HTTP://panel.example.com/api/v2", key)
    assert key in caught.value.detail
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert after_blank_line not in lines.text


async def test_sqlalchemy_parameters_and_the_drivers_detail(plain_engine: AsyncEngine, lines: Lines, key: str) -> None:
    async with plain_engine.connect() as connection:
        with pytest.raises(IntegrityError) as caught:
            await connection.execute(
                Provider.__table__.insert().values(name="panel", api_url="HTTP://panel.example.com/api/v2", api_key=key)
            )
    assert "[parameters: " in str(caught.value)
    assert key in str(caught.value)
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert HIDDEN_PARAMETERS in lines.text
    assert f"DETAIL:  {HIDDEN_DETAIL}" in lines.text  # the chained asyncpg error of the traceback
    assert CHECK in lines.text
    assert "[SQL: INSERT INTO providers" in lines.text  # the statement itself carries no value


async def test_the_gateway_engine_hides_parameters(database_url: str, lines: Lines, key: str) -> None:
    engine = create_engine(database_url, make_settings())
    try:
        async with engine.connect() as connection:
            with pytest.raises(IntegrityError) as caught:
                await connection.execute(
                    text("INSERT INTO providers (name, api_url, api_key) VALUES (:name, :url, :key)"),
                    {"name": "panel", "url": "HTTP://panel.example.com/api/v2", "key": key},
                )
    finally:
        await engine.dispose()
    assert key not in str(caught.value)
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    # ...but the traceback still chains the driver's error, with the row.
    assert key in "".join(traceback.format_exception(caught.value))
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert CHECK in lines.text


async def test_hot_path_errors_are_dbapi_errors_and_log_no_row(database_url: str, lines: Lines, key: str) -> None:
    hot = HotPathPool(database_url, 2)
    try:
        with pytest.raises(DBAPIError) as caught:
            await hot.fetchrow(
                text("INSERT INTO providers (name, api_url, api_key) VALUES (:name, :url, :key) RETURNING id"),
                name="panel",
                url="HTTP://panel.example.com/api/v2",
                key=key,
            )
    finally:
        await hot.close()
    assert isinstance(caught.value.orig, asyncpg.CheckViolationError)
    assert key in str(caught.value)  # the wrapped driver error's text, DETAIL included
    log_every_way(lines, caught.value)
    assert key not in lines.text
    assert CHECK in lines.text


def _elsewhere(database_url: str, **parts: Any) -> str:
    return make_url(database_url).set(**parts).render_as_string(False)


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        ({"host": "127.0.0.1", "port": 1}, OSError),  # nothing listens: refused
        ({"database": "gw_no_such_database"}, asyncpg.InvalidCatalogNameError),
    ],
)
async def test_hot_path_connection_failures_are_dbapi_errors(
    database_url: str, where: dict[str, Any], cause: type[BaseException]
) -> None:
    hot = HotPathPool(_elsewhere(database_url, **where), 2)
    try:
        with pytest.raises(DBAPIError) as caught:
            await hot.fetchrow(text("SELECT 1"))
        assert isinstance(caught.value.orig, cause)
        with pytest.raises(DBAPIError):  # a later call retries the connection, and fails the same way
            await hot.fetch(text("SELECT 1"))
    finally:
        await hot.close()


async def test_hot_path_connect_timeouts_are_dbapi_errors(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow_server(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError

    monkeypatch.setattr(asyncpg, "connect", slow_server)
    hot = HotPathPool(database_url, 2)
    with pytest.raises(DBAPIError) as caught:
        await hot.fetchrow(text("SELECT 1"))
    assert isinstance(caught.value.orig, TimeoutError)


def test_the_scrubbing_keeps_ordinary_text_whole() -> None:
    redactor = Redactor()
    for ordinary in (
        "order 12 placed",
        "Key rotation done for customer 4",
        'duplicate key value violates unique constraint "uq_providers_name"',
        "[SQL parameters hidden due to hide_parameters=True]",
    ):
        assert redactor.scrub(ordinary) == ordinary
    once = redactor.scrub("error\nDETAIL:  Failing row contains (1, x).\nnext line")
    assert once == f"error\nDETAIL:  {HIDDEN_DETAIL}\nnext line"
    assert redactor.scrub(once) == once  # a record may pass two redacting handlers
