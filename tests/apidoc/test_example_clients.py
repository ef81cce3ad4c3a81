"""The example clients as a customer gets them: downloaded from the API page of a running gateway
(with its simulated upstream), run as they are (PHP with php-cli and curl, Python with nothing
installed), and every answer checked against the example answer the page shows for that action."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from gateway import errors
from gateway.lifecycle import OrderStatus, RefillStatus
from tests.apidoc.pagetext import documented_answers, shape_problems
from tests.clients.conftest import LiveGateway
from tests.clients.test_real_clients import CANCELABLE, REFILLABLE, complete, ensure_php

DRIVER = Path(__file__).parent / "php" / "drive_example.php"
NO_SUCH_ID = 424242


def download(live: LiveGateway, name: str, target: Path) -> Path:
    response = httpx.get(f"{live.proc.url}/api/{name}", timeout=15)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    path = target / name
    path.write_text(response.text)
    return path


@pytest.fixture
def documented(live: LiveGateway) -> dict[str, Any]:
    """The page's example answers, by action form (``status``, ``status-multi``, ...)."""
    page = httpx.get(f"{live.proc.url}/api", timeout=15)
    assert page.status_code == 200
    assert f'id="endpoint-url">{live.api}<' in page.text
    return documented_answers(page.text)


def assert_as_documented(documented: dict[str, Any], form: str, answer: Any) -> None:
    if isinstance(answer, dict):
        assert "error" not in answer, (form, answer)
    problems = shape_problems(answer, documented[form], form)
    assert not problems, problems


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/api/v2"


# --- Python ----------------------------------------------------------------------------------------


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("downloaded_smm_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_example_against_a_running_gateway(
    live: LiveGateway, documented: dict[str, Any], tmp_path: Path
) -> None:
    path = download(live, "example.py", tmp_path)
    module = load_module(path)
    assert live.api == module.API_URL
    api = module.Api(live.key)  # the endpoint it came with

    services = api.services()
    assert_as_documented(documented, "services", services)
    assert {s["service"] for s in services} == set(live.services.values())
    assert api.balance() == {"balance": "100.00", "currency": "USD"}
    assert_as_documented(documented, "balance", api.balance())

    first = api.order(service=live.services[REFILLABLE], link="https://instagram.com/p/py-a", quantity=100)
    assert_as_documented(documented, "add", first)
    second = api.order(service=live.services[CANCELABLE], link="https://instagram.com/p/py-b", quantity=200)
    assert_as_documented(documented, "add", second)
    status = api.status(first["order"])
    assert_as_documented(documented, "status", status)
    assert status["status"] in list(OrderStatus)
    statuses = api.multi_status([first["order"], second["order"], NO_SUCH_ID])
    assert_as_documented(documented, "status-multi", statuses)
    assert [item["order"] for item in statuses] == [first["order"], second["order"], NO_SUCH_ID]
    assert statuses[2]["error"] == errors.INCORRECT_ORDER

    complete(live, first["order"])
    refill = api.refill(first["order"])
    assert_as_documented(documented, "refill", refill)
    assert_as_documented(documented, "refill-multi", api.multi_refill([first["order"], second["order"], NO_SUCH_ID]))
    refill_status = api.refill_status(refill["refill"])
    assert_as_documented(documented, "refill-status", refill_status)
    assert refill_status["status"] in list(RefillStatus)
    refill_statuses = api.multi_refill_status([refill["refill"], NO_SUCH_ID])
    assert_as_documented(documented, "refill-status-multi", refill_statuses)
    assert refill_statuses[1] == {"refill": NO_SUCH_ID, "status": {"error": errors.REFILL_NOT_FOUND}}

    canceled = api.cancel([second["order"], NO_SUCH_ID])
    assert_as_documented(documented, "cancel", canceled)
    assert canceled == [
        {"order": second["order"], "canceled": True},
        {"order": NO_SUCH_ID, "canceled": False, "error": errors.INCORRECT_ORDER},
    ]
    refused = api.order(service=999999, link="https://instagram.com/p/x", quantity=100)
    assert refused == {"error": errors.INCORRECT_SERVICE}

    # The canceled order's refund lands with the worker's next status sync: wait for it, so the
    # balance the script prints is the one read after it.
    deadline = time.monotonic() + 60
    while api.status(second["order"])["status"] != "Canceled":
        assert time.monotonic() < deadline, "the canceled order never became Canceled"
        time.sleep(0.1)
    # Run as a script, the way its docstring says.
    done = subprocess.run(
        [sys.executable, str(path), live.key], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["balance:", api.balance()["balance"], "USD"]
    assert len(lines) == 1 + len(services)


def test_the_python_example_gives_up_after_its_timeout(live: LiveGateway, tmp_path: Path, blackhole: str) -> None:
    module = load_module(download(live, "example.py", tmp_path))
    api = module.Api(live.key, api_url=blackhole, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OSError, match="timed out"):
        api.balance()
    assert time.monotonic() - started < 10


# --- PHP -------------------------------------------------------------------------------------------


def php_drive(php: str, example: Path, key: str, step: str, *args: object) -> Any:
    done = subprocess.run(
        [php, str(DRIVER), str(example), key, step, *map(str, args)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def test_the_php_example_against_a_running_gateway(
    live: LiveGateway, documented: dict[str, Any], tmp_path: Path
) -> None:
    php = ensure_php()
    example = download(live, "example.php", tmp_path)
    assert f"public $api_url = '{live.api}';" in example.read_text()
    lint = subprocess.run([php, "-l", str(example)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    placed = php_drive(php, example, live.key, "place", live.services[REFILLABLE], live.services[CANCELABLE])
    for form in ("services", "balance", "add", "status", "status-multi"):
        assert_as_documented(documented, form, placed[form])
    assert_as_documented(documented, "add", placed["add_b"])
    assert placed["balance"] == {"balance": "100.00", "currency": "USD"}
    assert {s["service"] for s in placed["services"]} == set(live.services.values())
    first, second = placed["add"]["order"], placed["add_b"]["order"]
    assert placed["status-multi"][2] == {"order": NO_SUCH_ID, "error": errors.INCORRECT_ORDER}
    assert placed["refused"] == {"error": errors.INCORRECT_SERVICE}

    complete(live, first)
    followed = php_drive(php, example, live.key, "follow", first, second)
    for form in ("refill", "refill-multi", "refill-status", "refill-status-multi", "cancel"):
        assert_as_documented(documented, form, followed[form])
    assert followed["refill-multi"][2] == {"order": NO_SUCH_ID, "refill": {"error": errors.INCORRECT_ORDER}}
    assert followed["refill-status"]["status"] in list(RefillStatus)
    assert followed["cancel"] == [
        {"order": second, "canceled": True},
        {"order": NO_SUCH_ID, "canceled": False, "error": errors.INCORRECT_ORDER},
    ]


def test_the_php_example_gives_up_after_its_timeout(live: LiveGateway, tmp_path: Path, blackhole: str) -> None:
    php = ensure_php()
    example = download(live, "example.php", tmp_path)
    seen = php_drive(php, example, live.key, "timeout", blackhole, 1)
    assert seen["thrown"] is not None
    assert "timed out" in seen["thrown"].lower()
    assert seen["seconds"] < 10


# --- the running server and a hostile Host header ---------------------------------------------------


def raw_get(port: int, path: str, host: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/api", "/api/example.php", "/api/example.py"])
def test_the_running_gateway_never_writes_back_a_hostile_host(live: LiveGateway, path: str) -> None:
    port = live.proc.port
    assert port is not None
    fallback = f"http://127.0.0.1:{port}/api/v2".encode()
    for host in (
        b"<script>alert(1)</script>",
        b"evil.example:0",
        b"evil.example/<b>x",
        b"evil.example';system('id');'",
        "пример.рф".encode(),
        b"a" * 6000,
        b"\xff\xfe",
    ):
        answer = raw_get(port, path, host)
        head, _, body = answer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        assert status in (b"200", b"400"), (host, head)
        if status == b"200":
            assert fallback in body, host
        for marker in (b"<script", b"evil", b"system(", b"aaaaaaaaaa", "пример".encode(), b"\xff\xfe"):
            assert marker not in answer, (host, marker)
    assert fallback in raw_get(port, path, b"127.0.0.1:" + str(port).encode())
    assert b"http://smm.example.net/api/v2" in raw_get(port, path, b"smm.example.net")
