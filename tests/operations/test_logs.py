"""Structured logs: the line formats, the request id, redaction; then a whole gateway process at
DEBUG, whose captured output must hold none of the secrets the scenario used."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gateway.observability.logs import REDACTOR, accept_request_id, configure_logging, request_context
from gateway.settings import Settings
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import FaultRule
from gateway.simulator.runner import SimulatorThread
from gateway.upstream import UpstreamRegistry
from tests.conftest import make_settings
from tests.operations.conftest import FOLLOWERS, add_order
from tests.processes import gateway
from tests.reliability.conftest import wait_for
from tests.reliability.test_crash import Db

log = logging.getLogger("gateway.tests.logs")


class Captured:
    """Logging configured into a buffer."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handlers: list[logging.Handler] = []

    def configure(self, settings: Settings) -> None:
        self.handlers.append(configure_logging(settings, self.stream))

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return self.text.splitlines()


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Restores what configure_logging changes, so later tests see logging as it was."""
    names = ["", "pgserver", "alembic", "uvicorn", "sqlalchemy", "httpx", "httpcore"]
    levels = {name: logging.getLogger(name).level for name in names}
    result = Captured()
    yield result
    for handler in result.handlers:
        logging.getLogger().removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_key_value_lines_carry_the_request_id_and_stay_on_one_line(captured: Captured) -> None:
    captured.configure(make_settings(log_level="DEBUG"))
    with request_context("req-42"):
        log.info("order placed", extra={"order_id": 7, "note": "two words"})
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        log.exception("it broke")
    first, second = captured.lines()
    assert first.startswith("ts=")
    assert ' level=info logger=gateway.tests.logs request_id=req-42 msg="order placed"' in first
    assert first.endswith('order_id=7 note="two words"')
    assert " request_id=" not in second
    assert "level=error" in second
    assert 'exc="Traceback' in second
    assert "\\nValueError: first line\\nsecond line" in second


def test_json_lines(captured: Captured) -> None:
    captured.configure(make_settings(log_json=True))
    with request_context("req-json"):
        log.warning("upstream slow", extra={"provider": 3, "duration_ms": 812.5})
    log.debug("not at INFO")
    (line,) = captured.lines()
    record = json.loads(line)
    assert record["level"] == "warning"
    assert record["request_id"] == "req-json"
    assert record["msg"] == "upstream slow"
    assert record["provider"] == 3
    assert record["duration_ms"] == 812.5


async def test_secrets_are_redacted(captured: Captured) -> None:
    admin_token = "operator-" + secrets.token_hex(16)
    upstream_key = "upstream-" + secrets.token_hex(8)
    captured.configure(
        make_settings(admin_token=admin_token, upstream_url="http://x.test/api/v2", upstream_key=upstream_key)
    )
    provider_key = "provider key/" + secrets.token_hex(8)
    registry = UpstreamRegistry(on_key=REDACTOR.add)
    registry.client_for(1, "http://panel.test/api/v2", provider_key)
    await registry.aclose()
    customer_key = "smm_" + secrets.token_urlsafe(24)
    named_token = "adm_" + secrets.token_urlsafe(32)
    log.info("admin %s upstream %s", admin_token, upstream_key)
    log.info("provider %s encoded %s", provider_key, "provider+key%2F" + provider_key.split("/")[1])
    log.info("customer", extra={"key": customer_key, "token": named_token})
    try:
        raise RuntimeError(f"failed with {customer_key}")
    except RuntimeError:
        log.exception("boom")
    output = captured.text
    for secret in (admin_token, upstream_key, provider_key, customer_key, named_token, provider_key.split("/")[1]):
        assert secret not in output
    assert output.count("[redacted]") >= 7
    assert REDACTOR.scrub("hint smm_abcdef") == "hint smm_abcdef"  # a key's hint is not the key


def test_request_ids_from_clients_are_taken_only_when_plain() -> None:
    assert accept_request_id("abc-123_x.y") == "abc-123_x.y"
    for bad in (None, "", "a b", 'x"y', "x" * 65, "line\nbreak"):
        generated = accept_request_id(bad)
        assert generated != bad
        assert len(generated) == 32


async def test_no_secret_reaches_the_logs_of_a_whole_scenario(database_url: str, tmp_path: Path) -> None:
    db = Db(database_url)
    admin_token = "adm-token-" + secrets.token_hex(16)
    sim_key = "sim-key-" + secrets.token_hex(12)
    admin = {"Authorization": f"Bearer {admin_token}"}
    customer_keys: list[str] = []
    with (
        SimulatorThread(SimulatorConfig(speed=0, api_key=sim_key)) as sim,
        gateway(
            database_url, tmp_path / "gateway.log", GATEWAY_LOG_LEVEL="DEBUG", GATEWAY_ADMIN_TOKEN=admin_token
        ) as gw,
        httpx.Client(base_url=gw.url, timeout=20) as http,
    ):
        provider = http.post(
            "/admin/providers", json={"name": "sim", "api_url": sim.url, "api_key": sim_key}, headers=admin
        ).json()
        assert http.post(f"/admin/providers/{provider['id']}/sync", headers=admin).json()["created"] > 0
        service = next(
            s["id"] for s in http.get("/admin/services", headers=admin).json() if s["upstream_service"] == FOLLOWERS
        )
        for name in ("alice", "bob"):
            customer = http.post("/admin/customers", json={"name": name, "balance": "50"}, headers=admin).json()
            customer_keys.append(customer["api_key"])
        alice, bob = customer_keys

        placed = add_order(gw.url, alice, service, **{"X-Request-ID": "trace-logs-1"})
        assert placed.headers["x-request-id"] == "trace-logs-1"
        assert "order" in placed.json()
        assert "balance" in http.get("/api/v2", params={"key": bob, "action": "balance"}).json()
        assert "error" in http.post("/api/v2", data={"key": "smm_" + "y" * 32, "action": "balance"}).json()

        sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
        assert "order" in add_order(gw.url, bob, service).json()  # queued
        sim.set_faults(FaultRule(kind="http_5xx", action="add"))
        unknown = add_order(gw.url, bob, service).json()["order"]  # the outcome is unknown
        sim.clear_faults()
        assert db.value("SELECT state FROM orders WHERE id = $1", unknown) == "unknown"
        resolved = http.post(f"/admin/orders/{unknown}/resolve", json={"outcome": "failed"}, headers=admin)
        assert resolved.status_code in (200, 201), resolved.text
        rotated = http.post(f"/admin/customers/{customer['id']}/rotate-key", headers=admin).json()["api_key"]
        customer_keys.append(rotated)
        assert http.post("/api/v2", data={"key": rotated, "action": "balance"}).json()["balance"] == "49.55"
        wait_for(lambda: db.value("SELECT count(*) FROM upstream_calls") >= 4)
    assert db.value("SELECT balance FROM customers WHERE name = 'bob'") == Decimal("49.55")  # one queued charge

    output = gw.log()
    assert "level=debug" in output
    for secret in [admin_token, sim_key, *customer_keys]:
        assert secret not in output, f"a secret leaked into the logs: {secret[:6]}..."
    traced = [line for line in output.splitlines() if "request_id=trace-logs-1" in line]
    assert any("logger=gateway.upstream.attempts" in line and "action=add" in line for line in traced), traced
    assert any("logger=gateway.http" in line and "path=/api/v2" in line for line in traced), traced
    assert db.value("SELECT request_id FROM orders ORDER BY id LIMIT 1") == "trace-logs-1"
    assert db.value("SELECT request_id FROM upstream_calls WHERE action = 'add' ORDER BY id LIMIT 1") == "trace-logs-1"
