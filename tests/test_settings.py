"""Settings: names of ADMIN-API.md, bad values refused with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.settings import SettingsError, load_settings
from tests.conftest import make_settings


def test_defaults_match_the_documented_table(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    settings = load_settings(_env_file=None)
    assert settings.database_url is None
    assert str(settings.data_dir) == "var"
    assert settings.admin_token is None
    assert settings.currency == "USD"
    assert settings.v2_dialect == "documented"
    assert settings.upstream_url is None
    assert settings.allow_private_upstreams is False
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("GATEWAY_DATABASE_URL", "not a url", "GATEWAY_DATABASE_URL"),
        ("GATEWAY_DATABASE_URL", "mysql://root@localhost/x", "GATEWAY_DATABASE_URL"),
        ("GATEWAY_V2_DIALECT", "klingon", "GATEWAY_V2_DIALECT"),
        ("GATEWAY_PORT", "-1", "GATEWAY_PORT"),
        ("GATEWAY_PORT", "70000", "GATEWAY_PORT"),
        ("GATEWAY_PORT", "eighty", "GATEWAY_PORT"),
        ("GATEWAY_CURRENCY", "US", "GATEWAY_CURRENCY"),
        ("GATEWAY_CURRENCY", "€€€", "GATEWAY_CURRENCY"),
        ("GATEWAY_ALLOW_PRIVATE_UPSTREAMS", "maybe", "GATEWAY_ALLOW_PRIVATE_UPSTREAMS"),
        ("GATEWAY_MIN_MARGIN_PERCENT", "-5", "GATEWAY_MIN_MARGIN_PERCENT"),
        ("GATEWAY_UPSTREAM_URL", "ftp://panel.example/api/v2", "GATEWAY_UPSTREAM_URL"),
        ("GATEWAY_IDEMPOTENCY_TTL_SECONDS", "0", "GATEWAY_IDEMPOTENCY_TTL_SECONDS"),
        ("GATEWAY_IDEMPOTENCY_TTL_SECONDS", "59", "GATEWAY_IDEMPOTENCY_TTL_SECONDS"),
        ("GATEWAY_IDEMPOTENCY_TTL_SECONDS", "2592001", "GATEWAY_IDEMPOTENCY_TTL_SECONDS"),
        ("GATEWAY_IDEMPOTENCY_TTL_SECONDS", "a day", "GATEWAY_IDEMPOTENCY_TTL_SECONDS"),
        ("GATEWAY_IDEMPOTENCY_TTL_SECONDS", "１２０", "GATEWAY_IDEMPOTENCY_TTL_SECONDS"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_upstream_url_and_key_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "https://panel.example/api/v2")
    monkeypatch.delenv("GATEWAY_UPSTREAM_KEY", raising=False)
    with pytest.raises(SettingsError, match="GATEWAY_UPSTREAM_KEY"):
        load_settings(_env_file=None)


def test_database_url_gets_the_asyncpg_driver() -> None:
    settings = load_settings(_env_file=None, database_url="postgresql://u:p@db.example:5432/gw")
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db.example:5432/gw"


def test_cli_refuses_a_bad_setting_with_one_line_and_no_traceback() -> None:
    env = {**os.environ, "GATEWAY_PORT": "-3"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "GATEWAY_PORT" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_single_upstream_url_is_normalised_like_a_saved_provider_url() -> None:
    settings = make_settings(upstream_url=" HTTPS://Panel.EXAMPLE/API/v2 ", upstream_key="k" * 16)
    assert settings.upstream_url == "https://panel.example/API/v2"
