"""``gateway demo`` as a user runs it: one command, then the printed curl commands work; Ctrl-C stops
it cleanly; a second run reuses the data and the same customer key."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import GatewayProcess
from tests.reliability.test_crash import Db
from tests.test_cli import free_port


@dataclass
class Banner:
    api: str
    page: str
    key: str
    token: str
    service: int
    quantity: int
    upstream: str


def start_demo(database_url: str, data_dir: Path, log_path: Path) -> tuple[GatewayProcess, Banner]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_DATABASE_URL": database_url, "GATEWAY_DATA_DIR": str(data_dir)})
    proc = GatewayProcess(["demo", "--port", str(free_port())], env, log_path)
    deadline = time.monotonic() + 60
    while "Ctrl-C stops everything." not in proc.log():
        if proc.process.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise AssertionError(f"the demo did not come up:\n{proc.log()}")
        time.sleep(0.05)
    output = proc.log()

    def field(pattern: str) -> str:
        found = re.search(pattern, output)
        assert found, (pattern, output)
        return found.group(1)

    banner = Banner(
        api=field(r"API URL\s+(\S+)"),
        page=field(r"API page\s+(\S+)"),
        key=field(r"customer key\s+(\S+)"),
        token=field(r"admin token\s+(\S+)"),
        service=int(field(r"action=add -d service=(\d+)")),
        quantity=int(field(r"-d quantity=(\d+)")),
        upstream=field(r"a simulated panel at (\S+)"),
    )
    # The curl lines are the real thing: the same URL and key.
    assert f"curl -s {banner.api} -d key={banner.key} -d action=services" in output
    assert f"curl -s {banner.api} -d key={banner.key} -d action=balance" in output
    return proc, banner


def v2(banner: Banner, **params: object) -> Any:
    response = httpx.post(banner.api, data={"key": banner.key, **params}, timeout=15)
    assert response.status_code == 200
    return response.json()


def add(banner: Banner) -> int:
    answer = v2(
        banner, action="add", service=banner.service, link="https://instagram.com/demo", quantity=banner.quantity
    )
    assert "order" in answer, answer
    return int(answer["order"])


def test_demo_runs_twice_on_the_same_data(database_url: str, tmp_path: Path) -> None:
    db = Db(database_url)
    data_dir = tmp_path / "data"

    proc, first = start_demo(database_url, data_dir, tmp_path / "first.log")
    try:
        services = v2(first, action="services")
        assert first.service in {s["service"] for s in services}
        assert v2(first, action="balance") == {"balance": "100.00", "currency": "USD"}
        first_order = add(first)
        base = first.api.removesuffix("/api/v2")
        # The customers' API page the banner points at, showing the same endpoint.
        assert first.page == f"{base}/api"
        page = httpx.get(first.page, timeout=15)
        assert page.status_code == 200
        assert f">{first.api}<" in page.text
        orders = httpx.get(f"{base}/admin/orders", headers={"Authorization": f"Bearer {first.token}"}, timeout=15)
        assert [o["id"] for o in orders.json()] == [first_order]
    finally:
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0, proc.log()
    for name in ("demo-customer-key", "demo-admin-token"):
        path = data_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (data_dir / "demo-customer-key").read_text().strip() == first.key

    proc, second = start_demo(database_url, data_dir, tmp_path / "second.log")
    try:
        assert (second.key, second.token) == (first.key, first.token)
        balance = v2(second, action="balance")
        assert balance["balance"] != "100.00"  # the first run's order was charged
        second_order = add(second)
    finally:
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log()

    assert db.value("SELECT count(*) FROM providers") == 1
    assert db.value("SELECT api_url FROM providers WHERE name = 'demo-simulator'") == second.upstream
    assert db.value("SELECT count(*) FROM customers") == 1
    assert db.value("SELECT count(*) FROM markup_rules WHERE scope = 'global'") == 1
    assert db.value("SELECT count(*) FROM ledger_entries WHERE kind = 'deposit'") == 1
    # The second run's simulator numbers its orders past the first run's.
    upstream_ids = [
        db.value("SELECT upstream_order_id FROM orders WHERE id = $1", o) for o in (first_order, second_order)
    ]
    assert upstream_ids[0] < upstream_ids[1]
