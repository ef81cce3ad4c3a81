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
    assert settings.database_pooler == "none"


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
        (
            "GATEWAY_DATABASE_POOLER",
            "session",
            "none (a direct connection, or a pooler in session mode) or transaction",
        ),
        ("GATEWAY_DATABASE_POOLER", "pgbouncer", "GATEWAY_DATABASE_POOLER"),
        ("GATEWAY_DATABASE_POOLER", "", "GATEWAY_DATABASE_POOLER"),
        ("GATEWAY_DATABASE_POOLER", "transactions", "GATEWAY_DATABASE_POOLER"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "expected"), [("transaction", "transaction"), (" Transaction ", "transaction"), ("NONE", "none")]
)
def test_the_database_pooler_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_POOLER", value)
    assert load_settings(_env_file=None).database_pooler == expected


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


# --- GATEWAY_PUBLIC_URL and GATEWAY_PANEL_NAME: written into the customers' API page and its clients ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("   ", None),
        ("https://panel.example.com", "https://panel.example.com"),
        ("https://panel.example.com/", "https://panel.example.com"),
        (" HTTPS://Panel.EXAMPLE.com:8443/smm/ ", "https://panel.example.com:8443/smm"),
        ("http://203.0.113.7:080", "http://203.0.113.7:80"),
        ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
    ],
)
def test_the_public_url_is_normalised(value: str, expected: str | None) -> None:
    assert make_settings(public_url=value).public_url == expected


@pytest.mark.parametrize(
    "value",
    [
        "panel.example.com",  # no scheme
        "ftp://panel.example.com",
        "javascript:alert(1)",
        "https://",
        "https://panel.example.com/api/v2",  # the base, not the endpoint
        "https://panel.example.com/api",
        "https://panel.example.com/?x=1",
        "https://panel.example.com/#top",
        "https://user:secret@panel.example.com",
        "https://panel.example.com:0",
        "https://panel.example.com:99999",
        "https://panel.exa\r\nmple.com",  # urlsplit() would quietly drop the line break
        "https://panel.example.com\r\nSet-Cookie: a=b",
        "https://panel.exa\tmple.com",
        "https://panel example.com",
        "https://panel.example.com/a b",
        "https://<script>alert(1)</script>.com",
        'https://panel.example.com/"onmouseover="x',
        "https://panel.example.com/'+system('id')+'",
        "https://пример.рф",
        "https://\u212aelvin.example",  # the Kelvin sign lower-cases to an ASCII k
        "https://panel.example.com/\u202egnp",
        "https://panel.example.com\x00.evil",
        "https://" + "a" * 100_000 + ".com",
        "https://" + "a." * 200 + "com",
    ],
)
def test_a_public_url_the_page_could_not_show_plainly_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, public_url=value)
    message = str(caught.value)
    assert message.startswith("invalid setting GATEWAY_PUBLIC_URL:")
    assert "\n" not in message
    assert len(message) < 300
    assert value.strip() == "https://" or value.strip() not in message  # the raw value is never echoed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme SMM", "Acme SMM"),
        ("  Acme SMM  ", "Acme SMM"),
        ("Ünïcødé Pänel 🚀", "Ünïcødé Pänel 🚀"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # fine as a name: the page escapes it
        ("A" * 80, "A" * 80),
    ],
)
def test_the_panel_name_takes_any_printable_text(value: str, expected: str) -> None:
    assert make_settings(panel_name=value).panel_name == expected


@pytest.mark.parametrize(
    "value",
    ["", "   ", "A" * 81, "A" * 1_000_000, "Acme\r\nSMM", "Acme\x00", "\u202eMS emcA", "Acme\tSMM", "\x1b[31mred"],
)
def test_a_panel_name_that_is_empty_huge_or_has_control_characters_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, panel_name=value)
    message = str(caught.value)
    assert message.startswith("invalid setting GATEWAY_PANEL_NAME:")
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("name", "value"),
    [("public_url", 443), ("public_url", ["https://a.example"]), ("panel_name", 7), ("panel_name", {"a": 1})],
)
def test_the_new_settings_refuse_the_wrong_type(name: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"GATEWAY_{name.upper()}"):
        load_settings(_env_file=None, **{name: value})


def test_the_new_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://Panel.example.com/")
    monkeypatch.setenv("GATEWAY_PANEL_NAME", "Acme SMM API")
    settings = load_settings(_env_file=None)
    assert (settings.public_url, settings.panel_name) == ("https://panel.example.com", "Acme SMM API")
    monkeypatch.setenv("GATEWAY_PANEL_NAME", "")
    with pytest.raises(SettingsError, match="GATEWAY_PANEL_NAME"):
        load_settings(_env_file=None)


def test_the_defaults_of_the_new_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_PUBLIC_URL", "GATEWAY_PANEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert (settings.public_url, settings.panel_name) == (None, "API")


# --- the margin guard and the alerts (issue 18) ------------------------------------------------

ALERT_SETTINGS = (
    "GATEWAY_MARGIN_POLICY",
    "GATEWAY_DRIFT_ALERT_PERCENT",
    "GATEWAY_QUEUED_ALERT_SECONDS",
    "GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS",
)


def test_the_defaults_of_the_alert_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALERT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.margin_policy == "alert"
    assert str(settings.drift_alert_percent) == "2"
    assert settings.queued_alert_seconds == 900
    assert settings.circuit_open_alert_seconds == 300


def test_the_alert_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MARGIN_POLICY", "reprice")
    monkeypatch.setenv("GATEWAY_DRIFT_ALERT_PERCENT", "0.5")
    monkeypatch.setenv("GATEWAY_QUEUED_ALERT_SECONDS", "60")
    monkeypatch.setenv("GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS", "604800")
    settings = load_settings(_env_file=None)
    assert settings.margin_policy == "reprice"
    assert str(settings.drift_alert_percent) == "0.5"
    assert (settings.queued_alert_seconds, settings.circuit_open_alert_seconds) == (60, 604800)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_MARGIN_POLICY", ""),
        ("GATEWAY_MARGIN_POLICY", "ALERT!"),
        ("GATEWAY_MARGIN_POLICY", "reprice;disable"),
        ("GATEWAY_MARGIN_POLICY", "désactiver"),
        ("GATEWAY_MARGIN_POLICY", "x" * 10_000),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "0"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "-2"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "1001"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "NaN"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "Infinity"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "1e999"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "two"),
        ("GATEWAY_DRIFT_ALERT_PERCENT", "２"),
        ("GATEWAY_QUEUED_ALERT_SECONDS", "59"),
        ("GATEWAY_QUEUED_ALERT_SECONDS", "-900"),
        ("GATEWAY_QUEUED_ALERT_SECONDS", "2592001"),
        ("GATEWAY_QUEUED_ALERT_SECONDS", "900.5"),
        ("GATEWAY_QUEUED_ALERT_SECONDS", "9" * 400),
        ("GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS", "9"),
        ("GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS", "604801"),
        ("GATEWAY_CIRCUIT_OPEN_ALERT_SECONDS", "five minutes"),
    ],
)
def test_bad_alert_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"invalid setting {name}:")
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("margin_policy", 1),
        ("margin_policy", ["alert"]),
        ("drift_alert_percent", [2]),
        ("drift_alert_percent", {"a": 1}),
        ("queued_alert_seconds", "soon"),
        ("circuit_open_alert_seconds", None),
    ],
)
def test_the_alert_settings_refuse_the_wrong_type(name: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"GATEWAY_{name.upper()}"):
        load_settings(_env_file=None, **{name: value})
