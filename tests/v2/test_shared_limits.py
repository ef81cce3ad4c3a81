"""Limits shared through Redis (GATEWAY_REDIS_URL): two processes hold one limit; Redis down, each
process still limits on its own.

Redis: the one on 127.0.0.1:6379 when it answers, else a ``redis-server`` started for the tests;
skipped, saying why, only where neither can be had."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.errors import TOO_MANY_REQUESTS
from gateway.v2.ratelimit import RateLimited, RateLimiter
from gateway.v2.sharedlimit import SharedLimiter
from tests.processes import gateway
from tests.test_cli import free_port

ADMIN = {"Authorization": "Bearer reliability-admin-token-0123456789abcdef"}


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if _answers(6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis on 127.0.0.1:6379 and no redis-server to start one")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def limiter(url: str, namespace: str, per_minute: int = 10) -> SharedLimiter:
    return SharedLimiter(
        url,
        RateLimiter(per_minute),
        per_minute=per_minute,
        invalid_per_minute=3,
        invalid_global_per_minute=1000,
        namespace=namespace,
    )


async def test_two_limiters_on_one_redis_hold_one_limit(redis_url: str) -> None:
    namespace = uuid.uuid4().hex
    first, second = limiter(redis_url, namespace), limiter(redis_url, namespace)
    waits: list[int] = []
    for i in range(30):
        try:
            await (first if i % 2 else second).customer(7)
        except RateLimited as exc:
            waits.append(int(exc.headers["Retry-After"]))
    assert len(waits) == 20
    assert min(waits) >= 1
    # Another gateway on the same Redis (another database) has buckets of its own.
    other = limiter(redis_url, uuid.uuid4().hex)
    await other.customer(7)
    # Guesses from one address, shared too; checking does not use one up.
    for _ in range(3):
        await first.before_lookup("198.51.100.1")
        await second.invalid_key("198.51.100.1")
    with pytest.raises(RateLimited):
        await first.before_lookup("198.51.100.1")
    await second.before_lookup("198.51.100.2")
    for shared in (first, second, other):
        await shared.aclose()


async def test_redis_down_each_process_limits_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    down = limiter(f"redis://127.0.0.1:{free_port()}/0", uuid.uuid4().hex, per_minute=5)
    results = []
    for _ in range(7):
        try:
            await down.customer(1)
            results.append("ok")
        except RateLimited:
            results.append("limited")
    assert results == ["ok"] * 5 + ["limited"] * 2
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1
    await down.aclose()


@pytest.mark.slow
def test_two_gateway_processes_share_one_limit(database_url: str, redis_url: str) -> None:
    env = {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_RATE_LIMIT_PER_MINUTE": "10"}
    with gateway(database_url, worker=False, **env) as one, gateway(database_url, worker=False, **env) as two:
        customer = httpx.post(f"{one.url}/admin/customers", json={"name": "shared"}, headers=ADMIN, timeout=30).json()
        answers = [
            httpx.post(
                f"{(one if i % 2 else two).url}/api/v2",
                data={"key": customer["api_key"], "action": "balance"},
                timeout=30,
            ).json()
            for i in range(30)
        ]
    ok = sum("balance" in a for a in answers)
    # One limit of 10 a minute for both (in-process limits would have let 20 through); the calls
    # take a few seconds, in which the bucket may refill by one.
    assert 10 <= ok <= 11, answers
    assert answers.count({"error": TOO_MANY_REQUESTS}) == 30 - ok
