"""Every stored provider key is masked, not only the ones this process called with: loaded at
start-up, learned on each price book rebuild and on every save through the admin API. Provider
URLs are normalised on save. And the suite's own guard (tests/conftest.py) does catch a leak."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.bootstrap import ensure_single_upstream
from gateway.catalog.providers import ProviderChanges, create_provider, require_provider, update_provider
from gateway.errors import Conflict
from gateway.observability.logs import HIDDEN_DETAIL, REDACTOR
from gateway.providers import ProviderDirectory
from gateway.runtime import Runtime, learn_provider_keys
from gateway.settings import Settings
from tests.conftest import KeyGuard, key_lines, make_settings, stored_provider_keys
from tests.factories import make_provider

log = logging.getLogger("gateway.tests.provider_keys")


def fresh_key() -> str:
    """A key no process has seen: the redactor cannot know it by name."""
    return "pk-" + secrets.token_hex(16)


async def store_behind_the_gateways_back(database_url: str, key: str, name: str = "hidden") -> int:
    """A provider row written by plain SQL: no code path of this process has seen its key."""
    conn = await asyncpg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False))
    try:
        return int(
            await conn.fetchval(
                "INSERT INTO providers (name, api_url, api_key) VALUES ($1, $2, $3) RETURNING id",
                name,
                "https://panel.example.com/api/v2",
                key,
            )
        )
    finally:
        await conn.close()


async def eventually(condition: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


# --- the guard itself ---------------------------------------------------------------------------


async def test_the_guard_catches_a_stored_key_the_redactor_does_not_know(
    database_url: str, provider_key_guard: KeyGuard, tmp_path: Path
) -> None:
    key = fresh_key()
    await store_behind_the_gateways_back(database_url, key)
    assert not REDACTOR.knows(key)
    log.debug("calling the panel with %s", key)  # at DEBUG: the gateway's loggers are captured at DEBUG
    log.info("retrying", extra={"url": f"https://panel.example.com/api/v2?key={quote(key.upper(), safe='')}"})
    process_output = tmp_path / "gateway.log"
    process_output.write_text(f"level=error msg=boom key={key}\n")
    provider_key_guard.output_files.append(process_output)

    keys = stored_provider_keys(database_url)
    assert key in keys
    leaks = provider_key_guard.leaks(keys)
    assert len(leaks) == 3, leaks
    assert all("<provider key>" in line and key not in line for line in leaks)  # the report masks it too
    assert sum(line.startswith("log: ") for line in leaks) == 2
    assert leaks[-1].startswith(f"{process_output}: ")

    # Left as is, the guard would fail this test at teardown.
    provider_key_guard.forget()
    assert provider_key_guard.leaks(keys) == []


def test_key_lines_ignore_short_keys_and_find_every_spelling() -> None:
    key = "Zq9+secret/KEY=value&42"
    found = key_lines(
        f"a {key}\nb {quote(key, safe='')}\nc {key.lower()}\nd nothing\ne short-1", [key, "short-1", "  "]
    )
    assert [line[0] for line in found] == ["a", "b", "c"]


# --- the keys the redactor learns ---------------------------------------------------------------


async def test_every_stored_key_is_learned_when_a_process_starts(database_url: str, settings: Settings) -> None:
    keys = [fresh_key() for _ in range(3)]
    for number, key in enumerate(keys):
        await store_behind_the_gateways_back(database_url, key, name=f"hidden {number}")
    runtime = Runtime.build(settings, database_url)
    try:
        runtime.start_background()
        await eventually(lambda: all(REDACTOR.knows(key) for key in keys))
    finally:
        await runtime.aclose()
    log.warning("a line naming %s", keys[0])  # masked by name now: the guard finds nothing


async def test_a_failed_read_of_the_keys_is_logged_and_retried(database_url: str, provider_key_guard: KeyGuard) -> None:
    engine = create_async_engine(make_url(database_url).set(database="gw_no_such_database"))
    directory = ProviderDirectory(engine, on_key=REDACTOR.add)
    task = asyncio.create_task(learn_provider_keys(directory, first_retry=0.01, max_retry=0.02))
    try:
        await eventually(lambda: provider_key_guard.text.count("could not read the provider keys") >= 3)
        assert not task.done()  # never fatal: it keeps trying
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.dispose()
    assert "level=warning logger=gateway.runtime" in provider_key_guard.text
    assert 'database \\"gw_no_such_database\\" does not exist" retry_in_s=' in provider_key_guard.text


async def test_the_provider_directory_learns_every_key_it_reads(runtime: Runtime, database_url: str) -> None:
    """A key another process stored is learned when this process next reads the providers
    (the catalog revision moved)."""
    key = fresh_key()
    seen: list[str] = []
    await ProviderDirectory(runtime.engine, on_key=seen.append).refresh()
    assert seen == []
    await store_behind_the_gateways_back(database_url, key)
    await ProviderDirectory(runtime.engine, on_key=seen.append).refresh()
    assert seen == [key]
    assert not REDACTOR.knows(key)
    await runtime.providers.directory.refresh()
    assert REDACTOR.knows(key)


async def test_a_key_is_learned_before_it_is_written(runtime: Runtime) -> None:
    taken = await make_provider(runtime, api_url="https://panel.example.com/api/v2", name="taken")
    other = await make_provider(runtime, api_url="https://other.example.com/api/v2", name="other")
    first, second = fresh_key(), fresh_key()
    seen: list[str] = []
    # Each write fails (a duplicate name): the key was learned before it.
    async with runtime.sessions() as session, session.begin():
        with pytest.raises(Conflict):
            await create_provider(
                session,
                ProviderChanges(name="taken", api_url="https://x.example.com/api/v2", api_key=first),
                on_key=seen.append,
            )
    async with runtime.sessions() as session, session.begin():
        provider = await require_provider(session, other)
        with pytest.raises(Conflict):
            await update_provider(session, provider, ProviderChanges(name="taken", api_key=second), on_key=seen.append)
    assert seen == [first, second]
    assert taken != other


# --- saving providers through the admin API -----------------------------------------------------


async def test_an_upper_case_url_is_saved_normalised_with_no_key_in_the_logs(
    client: httpx.AsyncClient, admin_headers: dict[str, str], provider_key_guard: KeyGuard
) -> None:
    # The reviewer's reproduction: it used to fail the database's CHECK (api_url ~ '^https?://')
    # with a 500 whose logged traceback quoted the row, key included.
    key = fresh_key()
    created = await client.post(
        "/admin/providers",
        json={"name": "upper", "api_url": "HTTP://Example.COM/api/v2", "api_key": key},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["api_url"] == "http://example.com/api/v2"
    assert REDACTOR.knows(key)

    provider_id = created.json()["id"]
    rotated = fresh_key()
    changed = await client.patch(
        f"/admin/providers/{provider_id}",
        json={"api_url": "HTTPS://Panel.Example.COM:8443/Api/V2?Lang=EN", "api_key": rotated},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["api_url"] == "https://panel.example.com:8443/Api/V2?Lang=EN"
    assert REDACTOR.knows(rotated)

    assert "path=/admin/providers" in provider_key_guard.text  # the requests' lines were captured
    assert provider_key_guard.leaks([key, rotated]) == []


async def test_a_database_refusal_of_a_save_logs_no_key_even_unknown_to_the_redactor(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    provider_key_guard: KeyGuard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A rule only the database knows, so that a save passes validation and fails on INSERT.
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text("ALTER TABLE providers ADD CONSTRAINT ck_test_refused CHECK (api_url NOT LIKE '%/refused%')")
        )
    monkeypatch.setattr(REDACTOR, "add", lambda secret: None)  # the key is never learned by name
    key = fresh_key()
    refused = await client.post(
        "/admin/providers",
        json={"name": "refused", "api_url": "https://panel.example.com/refused", "api_key": key},
        headers=admin_headers,
    )
    assert refused.status_code == 500
    assert not REDACTOR.knows(key)
    logged = provider_key_guard.text
    assert "unhandled error on POST /admin/providers" in logged
    assert 'violates check constraint \\"ck_test_refused\\"' in logged
    assert HIDDEN_DETAIL in logged
    assert key not in logged
    assert provider_key_guard.leaks([key]) == []


async def test_single_upstream_mode_finds_its_provider_however_the_url_was_stored(
    runtime: Runtime, database_url: str
) -> None:
    # A row saved before URLs were normalised; already synced, so no upstream is called.
    legacy = await make_provider(runtime, api_url="http://Panel.EXAMPLE:9/api/v2", name="legacy")
    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE providers SET last_sync_at = now() WHERE id = :id"), {"id": legacy})
    key = fresh_key()
    # (An upper-case scheme is refused by the settings themselves, before this code runs.)
    settings = make_settings(upstream_url="http://PANEL.example:9/api/v2", upstream_key=key)
    single = Runtime.build(settings, database_url)
    try:
        assert await ensure_single_upstream(single.settings, single.sessions, single.providers) == legacy
    finally:
        await single.aclose()
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, api_url, api_key FROM providers ORDER BY id"))).all()
    assert [(row.id, row.api_url, row.api_key) for row in rows] == [(legacy, "http://Panel.EXAMPLE:9/api/v2", key)]


async def test_single_upstream_mode_stores_the_url_normalised(runtime: Runtime, database_url: str) -> None:
    settings = make_settings(upstream_url="http://LocalHost:9/Api/V2", upstream_key=fresh_key())
    single = Runtime.build(settings, database_url)
    try:
        provider_id = await ensure_single_upstream(
            single.settings, single.sessions, single.providers
        )  # its first sync fails (nothing listens): logged
    finally:
        await single.aclose()
    async with runtime.engine.connect() as conn:
        stored = await conn.scalar(text("SELECT api_url FROM providers WHERE id = :id"), {"id": provider_id})
    assert stored == "http://localhost:9/Api/V2"
