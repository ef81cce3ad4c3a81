"""The plumbing of ``python -m tests.bench.run``: the database, seed data, server processes, and the
load tools (wrk, pgbench, the open-loop generator), each returning plain numbers.

Nothing here decides what is measured; :mod:`tests.bench.run` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "var" / "bench"
DATABASE = "gw_bench"
ADMIN_TOKEN = "bench-admin-token-0123456789-abcdefgh"
SIM_KEY = "bench-upstream-key"
BIG_BALANCE = "1000000000"


# --- the machine and its tools -----------------------------------------------------------------


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinned(command: Sequence[str], cpus: str | None) -> list[str]:
    """``command`` under ``taskset -c cpus`` (when taskset exists and cpus is given)."""
    if cpus is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", cpus, *command]


def find_tool(name: str) -> str | None:
    """``pgbench``: the one shipped with the embedded Postgres first, then PATH and Debian's."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError):
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def machine_description(dsn: str) -> dict[str, str]:
    """nproc, CPU model, memory, Postgres and Python versions (for the report)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break

    async def server_facts() -> dict[str, str]:
        conn = await asyncpg.connect(dsn)
        try:
            facts = {"postgres": str(await conn.fetchval("SHOW server_version"))}
            for name in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
                facts[name] = str(await conn.fetchval(f"SHOW {name}"))
            return facts
        finally:
            await conn.close()

    facts = asyncio.run(server_facts())
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    http = "httptools" if _importable("httptools") else "h11"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "postgres": facts["postgres"],
        "postgres_settings": ", ".join(f"{k}={v}" for k, v in facts.items() if k != "postgres"),
        "python": sys.version.split()[0],
        "uvicorn": f"{_version('uvicorn')} ({loop}, {http})",
        "litestar": _version("litestar"),
        "sqlalchemy": _version("sqlalchemy"),
        "asyncpg": _version("asyncpg"),
    }


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the database --------------------------------------------------------------------------------


@dataclasses.dataclass
class Database:
    url: str  # postgresql+asyncpg://... of the bench database (what the gateway is given)
    dsn: str  # postgresql://... (asyncpg, libpq: pgbench)
    embedded: Any = None  # the pgserver handle, kept alive for the run


def server_url() -> tuple[str, Any]:
    """The Postgres server to run on: GATEWAY_BENCH_DATABASE_URL, GATEWAY_TEST_DATABASE_URL, or
    an embedded one under var/bench-data (the same way the tests pick theirs)."""
    external = os.environ.get("GATEWAY_BENCH_DATABASE_URL") or os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if external:
        return external, None
    from gateway.db import embedded_server

    server = embedded_server(ROOT / "var" / "bench-data")
    return server.get_uri(), server


def libpq_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(False)


async def fresh_database(name: str = DATABASE) -> Database:
    """A new, migrated database ``name`` (dropped first if a previous run left one)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    from gateway.db import migrate

    base, embedded = await asyncio.to_thread(server_url)
    conn = await asyncpg.connect(libpq_dsn(base))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    url = make_url(base).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    await asyncio.to_thread(migrate, url)
    return Database(url=url, dsn=libpq_dsn(base, name), embedded=embedded)


@dataclasses.dataclass
class Seed:
    """What the seeding made: ids and keys the load scripts use."""

    provider_id: int
    service_id: int  # a Default service the adds order
    quantity: int
    services_for_sale: int
    customers: list[tuple[int, str]]  # the many customers (id, key)
    hot: tuple[int, str]  # the one hot customer
    status_customer: tuple[int, str]
    status_order_ids: list[int]


def mock_upstream() -> httpx.MockTransport:
    """An upstream that answers every ``add`` at once with a fresh order id (nothing else is asked).

    Ids are unique across processes (the process id in the high bits), as a real panel's are: the
    gateway refuses a second order with an upstream id another order already has.
    """
    counter = itertools.count((os.getpid() << 32) + 1)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"order": next(counter)})

    return httpx.MockTransport(answer)


async def seed(db: Database, sim_url: str, customers: int) -> Seed:
    """Provider, catalog (synced from the simulator with the product's sync), customers with large
    balances (the product's factory), and 100 placed orders for the status figures (placed by the
    product's own ``place_order`` against an instant in-process upstream)."""
    from gateway.catalog.sync import sync_provider
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from tests.factories import make_customer, make_provider, place

    settings = Settings(_env_file=None, allow_private_upstreams=True, rate_limit_per_minute=0)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, db.url, transport_factory=lambda _pid: mock_upstream())
    try:
        provider_id = await make_provider(runtime, api_url=sim_url, api_key=SIM_KEY, name="bench upstream")
        # The sync must reach the real simulator: a runtime without the mock transport.
        sync_runtime = Runtime.build(settings, db.url)
        try:
            await sync_provider(sync_runtime.sessions, sync_runtime.providers, provider_id)
        finally:
            await sync_runtime.aclose()
        book = await runtime.catalog.book()
        candidates = sorted(
            (s for s in book.services.values() if s.for_sale and s.type == "Default" and not s.dripfeed),
            key=lambda s: (s.min, s.id),
        )
        service = candidates[0]
        many = [await make_customer(runtime, balance=BIG_BALANCE, name=f"bench {i}") for i in range(customers)]
        hot = await make_customer(runtime, balance=BIG_BALANCE, name="bench hot")
        status_customer = await make_customer(runtime, balance=BIG_BALANCE, name="bench status")
        order_ids = []
        params = {"service": str(service.id), "link": "https://example.com/status", "quantity": str(service.min)}
        for _ in range(100):
            order_ids.append(await place(runtime, status_customer[0], params))
        return Seed(
            provider_id=provider_id,
            service_id=service.id,
            quantity=service.min,
            services_for_sale=sum(1 for s in book.services.values() if s.for_sale),
            customers=many,
            hot=hot,
            status_customer=status_customer,
            status_order_ids=order_ids,
        )
    finally:
        await runtime.aclose()


# --- processes ------------------------------------------------------------------------------------


class Process:
    """A server process the bench started (its own session, so its children stop with it)."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str], cpus: str | None) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = WORK / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            pinned(command, cpus),
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children the server left behind (uvicorn workers) are in the same process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by this server and the processes of its group
        (uvicorn's workers), from ``/proc``: what a request costs the server, whatever else the
        machine is doing meanwhile."""
        return group_cpu_seconds(self.popen.pid)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{self.tail()}")

    def wait_ready_tcp(self, port: int, timeout: float = 30.0) -> None:
        """Wait until something accepts connections on ``port`` (a server with no health route)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on port {port}:\n{self.tail()}")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in process group ``pgid`` (Linux ``/proc``; 0 elsewhere)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5, pgrp
                ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15, utime and stime
    return ticks / _CLOCK_TICKS


def _process_cpu_ticks(pid: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return 0


def embedded_postgres_cpu_seconds() -> float | None:
    """CPU time (user + system) of the bench's embedded Postgres so far: the postmaster and its
    live backends (a backend's time leaves with it, so measure across a window in which the
    servers keep their pooled connections). None for an external server."""
    pid_file = ROOT / "var" / "bench-data" / "postgres" / "postmaster.pid"
    if os.environ.get("GATEWAY_BENCH_DATABASE_URL") or os.environ.get("GATEWAY_TEST_DATABASE_URL"):
        return None
    if not pid_file.exists():
        return None
    postmaster = pid_file.read_text().split()[0]
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True, check=False).stdout.split()
    return sum(_process_cpu_ticks(pid) for pid in [postmaster, *children]) / _CLOCK_TICKS


def pin_embedded_postgres(cpus: str) -> bool:
    """Pin the embedded Postgres (postmaster and backends; new backends inherit) to ``cpus``.
    Only the bench's own embedded server: an external one is not ours to touch."""
    pid_file = ROOT / "var" / "bench-data" / "postgres" / "postmaster.pid"
    if os.environ.get("GATEWAY_BENCH_DATABASE_URL") or os.environ.get("GATEWAY_TEST_DATABASE_URL"):
        return False
    if shutil.which("taskset") is None or not pid_file.exists():
        return False
    postmaster = pid_file.read_text().split()[0]
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True, check=False).stdout.split()
    for pid in [postmaster, *children]:
        subprocess.run(["taskset", "-a", "-c", "-p", cpus, pid], capture_output=True, check=False)
    return True


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gateway_env(db: Database, port: int, **extra: str) -> dict[str, str]:
    """The settings every gateway server of the bench runs with (no .env is read: cwd has none
    that matters, and every value the bench depends on is set here)."""
    env = base_env()
    env.update(
        {
            "GATEWAY_DATABASE_URL": db.url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
            "GATEWAY_SERVE_WORKER": "false",
            "GATEWAY_ALLOW_PRIVATE_UPSTREAMS": "true",
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_CATALOG_SYNC_INTERVAL_SECONDS": "0",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running(process: Process, ready_url: str) -> Iterator[Process]:
    try:
        process.wait_ready(ready_url)
        yield process
    finally:
        process.stop()


def start_simulator(port: int, catalog_size: int, cpus: str | None) -> Process:
    command = [
        sys.executable,
        "-m",
        "gateway.simulator",
        "--port",
        str(port),
        "--key",
        SIM_KEY,
        "--speed",
        "0",
        "--balance",
        BIG_BALANCE,
        "--catalog-size",
        str(catalog_size),
        "--seed",
        "7",
    ]
    return Process("simulator", command, base_env(), cpus)


# --- load: wrk --------------------------------------------------------------------------------

_WRK_SCRIPT = r"""
local bodies = {%(bodies)s}
local path = "%(path)s"
local method = "%(method)s"
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local expect = %(expect)s
local counter = 0
app_errors = 0
sample = ""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counter = math.random(#bodies)
end

function request()
  counter = counter + 1
  local body = bodies[(counter %% #bodies) + 1]
  if method == "GET" then
    return wrk.format("GET", path)
  end
  return wrk.format(method, path, headers, body)
end

function response(status, hdrs, body)
  if status ~= 200 or (expect ~= nil and not string.find(body, expect, 1, true)) then
    app_errors = app_errors + 1
    if sample == "" then sample = tostring(status) .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local errors = 0
  local first = ""
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("app_errors")
    local s = thread:get("sample")
    if first == "" and s ~= nil then first = s end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %%d, \"duration_us\": %%d, \"socket_errors\": %%d, \"app_errors\": %%d, "
    .. "\"p50_us\": %%d, \"p99_us\": %%d, \"sample\": %%q}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, errors,
    latency:percentile(50), latency:percentile(99), first))
end
"""


@dataclasses.dataclass
class LoadResult:
    rate: float  # completed requests per second
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    sample_error: str = ""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(bodies: Sequence[str], *, path: str = "/api/v2", method: str = "POST", expect: str | None) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    text = _WRK_SCRIPT % {
        "bodies": ", ".join(_lua_string(b) for b in bodies),
        "path": path,
        "method": method,
        "expect": "nil" if expect is None else _lua_string(expect),
    }
    handle, name = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=WORK)
    with os.fdopen(handle, "w") as file:
        file.write(text)
    return Path(name)


def wrk(url: str, script: Path, *, connections: int, seconds: float, cpus: str | None, threads: int = 1) -> LoadResult:
    """A closed-loop run of wrk; raises when wrk is missing or every request failed."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    command = [
        binary,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(pinned(command, cpus), capture_output=True, text=True, check=False)
    match = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    data = json.loads(match.group(1))
    seconds_run = data["duration_us"] / 1e6
    ok = data["requests"] - data["app_errors"]
    return LoadResult(
        rate=ok / seconds_run,
        requests=data["requests"],
        errors=data["app_errors"] + data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        sample_error=data["sample"],
    )


# --- load: pgbench --------------------------------------------------------------------------------


@dataclasses.dataclass
class PgbenchResult:
    tps: float
    transactions: int
    failed: int


def pgbench(
    dsn: str, script: str, *, clients: int, seconds: float, cpus: str | None, defines: dict[str, str]
) -> PgbenchResult:
    """``pgbench -M prepared`` running ``script`` (a custom script file) on ``clients`` connections."""
    binary = find_tool("pgbench")
    if binary is None:
        raise RuntimeError("pgbench not found (it ships with pgserver, or: apt-get install -y postgresql-client)")
    WORK.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="pgbench-", suffix=".sql", dir=WORK)
    with os.fdopen(handle, "w") as file:
        file.write(script)
    command = [binary, "-n", "-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(max(1, round(seconds)))]
    for key, value in defines.items():
        command += ["-D", f"{key}={value}"]
    command += ["-f", name, dsn]
    done = subprocess.run(pinned(command, cpus), capture_output=True, text=True, check=False)
    tps = re.search(r"^tps = ([0-9.]+)", done.stdout, re.MULTILINE)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or tps is None or count is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return PgbenchResult(float(tps.group(1)), int(count.group(1)), int(failed.group(1)) if failed else 0)


# --- load: open loop ------------------------------------------------------------------------------


def open_loop(
    url: str, bodies: Sequence[str], *, rate: float, seconds: float, connections: int, cpus: str | None, expect: str
) -> dict[str, float]:
    """Constant-rate load from :mod:`tests.bench.openloop` in its own process; its JSON summary."""
    WORK.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="bodies-", suffix=".json", dir=WORK)
    with os.fdopen(handle, "w") as file:
        json.dump(list(bodies), file)
    command = [
        sys.executable,
        "-m",
        "tests.bench.openloop",
        "--url",
        url,
        "--bodies",
        name,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
        "--expect",
        expect,
    ]
    done = subprocess.run(pinned(command, cpus), capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"open-loop generator failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
