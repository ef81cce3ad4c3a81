"""Real clients against a real gateway process: the seed document's PHP style (curl, form POST,
json_decode) and a Python ``requests`` client (form POST, raising on any non-2xx)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.clients.conftest import LiveGateway
from tests.reliability.test_crash import Db

PHP_DIR = Path(__file__).parent / "php"
REFILLABLE = 101  # refill and cancel enabled, min 50
CANCELABLE = 102  # cancel enabled


def ensure_php() -> str:
    """The php binary with curl; installed from Debian's packages when missing (as root)."""
    php = shutil.which("php")
    if php is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300, env=env, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "php-cli", "php-curl"],
            capture_output=True,
            timeout=600,
            env=env,
            check=False,
        )
        php = shutil.which("php")
    if php is None:
        pytest.skip("php could not be installed here (no php binary, no root apt-get)")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True).stdout
    if "curl" not in modules:
        pytest.skip("php has no curl extension and php-curl could not be installed")
    return php


def php_run(php: str, live: LiveGateway, service: int, step: str, *ids: int) -> Any:
    done = subprocess.run(
        [php, str(PHP_DIR / "run.php"), live.api, live.key, str(service), step, *map(str, ids)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def complete(live: LiveGateway, order_id: int) -> None:
    db = Db(live.database_url)
    upstream = db.value("SELECT upstream_order_id FROM orders WHERE id = $1", order_id)
    live.sim.state.force_order(upstream, "Completed")
    db.fetch("UPDATE orders SET next_check_at = now() WHERE id = $1", order_id)
    import time

    deadline = time.monotonic() + 20
    while db.value("SELECT status FROM orders WHERE id = $1", order_id) != "Completed":
        assert time.monotonic() < deadline, "the worker did not sync the order"
        time.sleep(0.1)


def test_php_client(live: LiveGateway) -> None:
    php = ensure_php()
    placed = php_run(php, live, live.services[REFILLABLE], "place")
    assert placed["balance"] == {"balance": "100.00", "currency": "USD"}
    assert placed["services"] == len(live.services)
    assert isinstance(placed["order"], int)
    assert placed["status"]["status"] == "Pending"
    assert placed["bad"] == {"error": "Incorrect service ID"}
    second = php_run(php, live, live.services[CANCELABLE], "place")["order"]
    complete(live, placed["order"])
    seen = php_run(php, live, 0, "follow", placed["order"], second)
    assert [item["status"] for item in seen["multi"]] == ["Completed", "Pending"]
    refill_id = seen["refill"]["refill"]
    assert isinstance(refill_id, int)
    assert seen["multiRefill"][1] == {"order": second, "refill": {"error": "Refill is not available for this order"}}
    assert seen["refillStatus"] == {"status": "Pending"}
    assert seen["multiRefillStatus"] == [
        {"refill": refill_id, "status": "Pending"},
        {"refill": 424242, "status": {"error": "Refill not found"}},
    ]
    assert seen["cancel"] == [
        {"order": second, "canceled": True},
        {"order": 424242, "canceled": False, "error": "Incorrect order ID"},
    ]


class RequestsClient:
    """How Python SMM clients are usually written: requests, form data, raise on non-2xx."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.session = requests.Session()

    def _call(self, action: str, **params: Any) -> Any:
        response = self.session.post(self.url, data={"key": self.key, "action": action, **params}, timeout=30)
        response.raise_for_status()
        return response.json()

    def services(self) -> Any:
        return self._call("services")

    def balance(self) -> Any:
        return self._call("balance")

    def add(self, service: int, link: str, quantity: int) -> Any:
        return self._call("add", service=service, link=link, quantity=quantity)

    def status(self, order: int) -> Any:
        return self._call("status", order=order)

    def statuses(self, orders: list[int]) -> Any:
        return self._call("status", orders=",".join(map(str, orders)))

    def refill(self, order: int) -> Any:
        return self._call("refill", order=order)

    def refill_status(self, refill: int) -> Any:
        return self._call("refill_status", refill=refill)

    def cancel(self, orders: list[int]) -> Any:
        return self._call("cancel", orders=",".join(map(str, orders)))


def test_requests_client(live: LiveGateway) -> None:
    client = RequestsClient(live.api, live.key)
    assert {s["service"] for s in client.services()} == set(live.services.values())
    assert client.balance()["balance"] == "100.00"
    first = int(client.add(live.services[REFILLABLE], "https://instagram.com/a", 100)["order"])
    second = int(client.add(live.services[CANCELABLE], "https://instagram.com/b", 200)["order"])
    assert client.status(first)["status"] == "Pending"
    complete(live, first)
    assert [s["status"] for s in client.statuses([first, second])] == ["Completed", "Pending"]
    refill = int(client.refill(first)["refill"])
    assert client.refill_status(refill) == {"status": "Pending"}
    assert client.cancel([second]) == [{"order": second, "canceled": True}]
    # Errors never raise: they are HTTP 200 with the message.
    assert client.add(999999, "https://instagram.com/c", 100) == {"error": "Incorrect service ID"}
    assert RequestsClient(live.api, "wrong").balance() == {"error": "Invalid API key"}
