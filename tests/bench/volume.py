"""``make bench BENCH_ARGS="--only volume"``: what the gateway's cost does as its work grows.

Three figures (docs/BENCHMARKS.md, "Volume"):

- **status sync at volume**: N live orders (bulk-inserted, as placed orders are, spread over two
  providers and over one check interval, as in a steady state) followed by W ``gateway worker``
  processes against ``tests/bench/panel.py`` over loopback (answers of up to 100 ids, every order
  in progress). Over the measured window: answers applied per second (from the orders' own
  ``last_checked_at``), the workers' CPU per answer and Postgres' CPU per answer (the backends
  serving the bench database, from ``/proc``), and the status-check lag (the gauge's own query,
  sampled every second): its maximum must stay under the interval. Then every order is made
  overdue at once and the same is measured while the workers drain that backlog flat out: their
  capacity, which must exceed N / interval.
- **``services`` of a large catalog** for a customer with own rates and a discount: API-process
  CPU per request (``/proc``, wrk), against the same listing for a customer without either.
- **catalog sync** of a large catalog with edits (from the simulator over loopback): seconds and
  Postgres CPU of a first sync, an unchanged re-sync and a re-sync with every rate changed, each
  against the bare upstream fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg

from gateway.orders.store import STATUS_CHECK_LAG
from tests.bench import harness
from tests.bench.harness import Database, Process

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass
class VolumeFigures:
    orders: int
    workers: int
    interval: float
    seconds: float
    applied: int
    worker_cpu_seconds: float
    database_cpu_seconds: float
    max_lag: float
    end_lag: float
    seed_seconds: float
    # The backlog phase: every order overdue at once, so the workers run flat out.
    drain_seconds: float = 0.0
    drain_applied: int = 0
    drain_worker_cpu_seconds: float = 0.0
    drain_database_cpu_seconds: float = 0.0

    @property
    def capacity_per_second(self) -> float:
        return self.drain_applied / self.drain_seconds if self.drain_seconds else 0.0

    @property
    def needed_per_second(self) -> float:
        return self.orders / self.interval

    @property
    def applied_per_second(self) -> float:
        return self.applied / self.seconds if self.seconds else 0.0

    def per_answer_us(self, cpu_seconds: float) -> float:
        return 1e6 * cpu_seconds / max(self.applied, 1)


@dataclasses.dataclass
class ServicesFigures:
    services: int
    own_rates: int
    discount: str
    cpu_us: float  # API CPU per request, customer with own rates and a discount
    rate: float
    plain_cpu_us: float  # the same for a customer with neither
    plain_rate: float
    body_bytes: int
    cold_ms: float  # building one customer's listing after a catalog change (once per revision)


@dataclasses.dataclass
class SyncFigures:
    services: int
    fetch_seconds: float
    rows: list[tuple[str, float, float, dict[str, int]]]  # what, seconds, database CPU seconds, summary


# --- Postgres' CPU, from /proc ----------------------------------------------------------------


def _proc_cpu(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return None


class BackendCpu:
    """CPU time of the Postgres backends serving one database (``pg_stat_activity``), bar the
    measuring connection's own: what the gateway's statements cost the server. A backend that
    appears during the window counts in full; one that ends during it is lost (the pools keep
    theirs). Server-wide processes (WAL writer, checkpointer) are not counted: they are shared with
    whatever else runs on the server. Postgres must run on this machine (``/proc``)."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._start: dict[int, float] = {}

    async def _sample(self) -> dict[int, float]:
        pids = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self._database
        )
        sample = {}
        for row in pids:
            cpu = _proc_cpu(int(row["pid"]))
            if cpu is not None:
                sample[int(row["pid"])] = cpu
        return sample

    async def start(self) -> None:
        self._start = await self._sample()

    async def seconds(self) -> float:
        end = await self._sample()
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in end.items())


# --- status sync at volume ------------------------------------------------------------------------

_SEED_ORDERS = """
    INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, upstream_order_id, link,
                        quantity, rate, charge, cost, currency, status, state, submitted_at, placed_at,
                        next_check_at, created_at, updated_at)
    SELECT $1::bigint, CASE WHEN g % 2 = 0 THEN $2::bigint ELSE $3::bigint END,
           CASE WHEN g % 2 = 0 THEN $4::bigint ELSE $5::bigint END, 1, g,
           'https://example.com/v' || g, 1000, 1.00, 1.00, 0.50, 'USD', 'In progress', 'placed', now(), now(),
           now() + make_interval(secs => (g % $7::int)::float8 * $8::float8 / $7::int), now(), now()
    FROM generate_series(1, $6::int) AS g
"""


async def _seed_orders(db: Database, panel_url: str, orders: int, interval: float) -> float:
    """Two providers on the panel, a service each, one customer, and ``orders`` placed orders in
    progress whose next checks are spread evenly over the coming ``interval`` (a steady state)."""
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from tests.factories import make_customer, make_provider, make_service

    settings = Settings(_env_file=None, allow_private_upstreams=True)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, db.url)
    try:
        providers = [
            await make_provider(runtime, api_url=panel_url, api_key=harness.SIM_KEY, name=f"volume {i}")
            for i in range(2)
        ]
        services = [await make_service(runtime, provider_id) for provider_id in providers]
        customer_id, _ = await make_customer(runtime, balance=harness.BIG_BALANCE, name="volume")
    finally:
        await runtime.aclose()
    conn = await asyncpg.connect(db.dsn)
    try:
        started = time.perf_counter()
        # Upstream ids are unique per provider: even ids on one, odd on the other.
        slots = max(1, int(interval * 10))
        await conn.execute(
            _SEED_ORDERS, customer_id, services[0], services[1], providers[0], providers[1], orders, slots, interval
        )
        await conn.execute("ANALYZE orders")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _lag(conn: asyncpg.Connection) -> float:
    lag = await conn.fetchval(STATUS_CHECK_LAG.text)
    return max(0.0, float(lag)) if lag is not None else 0.0


async def _measure_sync(
    db: Database, workers: list[Process], database: str, seconds: float, warmup: float
) -> tuple[int, float, float, float, float, float]:
    """Over ``seconds`` after ``warmup``: answers applied, workers' CPU, Postgres' CPU, the
    largest lag seen (sampled each second), the lag at the end, and the window's length."""
    conn = await asyncpg.connect(db.dsn)
    try:
        await asyncio.sleep(warmup)
        backends = BackendCpu(conn, database)
        worker_cpu = sum(w.cpu_seconds() for w in workers)
        await backends.start()
        mark = await conn.fetchval("SELECT clock_timestamp()")
        started = time.monotonic()
        applied, max_lag, last_count = 0, 0.0, started
        while (now := time.monotonic()) - started < seconds:
            max_lag = max(max_lag, await _lag(conn))
            if now - last_count >= 5.0:
                # Each order is checked at most once in 5 s (the interval is far longer), so the
                # rows checked since the last mark are the answers applied since it.
                applied, mark = await _count_since(conn, mark, applied)
                last_count = now
            await asyncio.sleep(1.0)
        applied, mark = await _count_since(conn, mark, applied)
        elapsed = time.monotonic() - started
        database_cpu = await backends.seconds()
        worker_cpu = sum(w.cpu_seconds() for w in workers) - worker_cpu
        end_lag = await _lag(conn)
        return applied, worker_cpu, database_cpu, max(max_lag, end_lag), end_lag, elapsed
    finally:
        await conn.close()


async def _count_since(conn: asyncpg.Connection, mark: object, applied: int) -> tuple[int, object]:
    now = await conn.fetchval("SELECT clock_timestamp()")
    counted = await conn.fetchval(
        "SELECT count(*) FROM orders WHERE last_checked_at >= $1 AND last_checked_at < $2", mark, now
    )
    return applied + int(counted), now


@contextlib.contextmanager
def _panel(cpus: str | None) -> Iterator[str]:
    port = harness.free_port()
    panel = Process(
        "volume-panel", [sys.executable, "-m", "tests.bench.panel", "--port", str(port)], harness.base_env(), cpus
    )
    try:
        panel.wait_ready_tcp(port)
        yield f"http://127.0.0.1:{port}/api/v2"
    finally:
        panel.stop()


def status_sync(
    db: Database,
    database: str,
    *,
    orders: int,
    workers: int,
    interval: float,
    seconds: float,
    warmup: float,
    drain_seconds: float,
    panel_cpus: str | None,
    log: Callable[[str], None],
) -> VolumeFigures:
    """Follow ``orders`` live orders with ``workers`` worker processes; see the module docstring."""
    with _panel(panel_cpus) as panel_url:
        log(f"[volume] seeding {orders:,} live orders")
        seed_seconds = asyncio.run(_seed_orders(db, panel_url, orders, interval))
        env = harness.gateway_env(
            db,
            harness.free_port(),
            GATEWAY_STATUS_SYNC_INTERVAL_SECONDS=str(interval),
            GATEWAY_DB_POOL_SIZE="4",
            GATEWAY_DB_MAX_OVERFLOW="2",
        )
        command = [str(Path(sys.executable).parent / "gateway"), "worker"]
        started = [Process(f"volume-worker-{i}", command, env, None) for i in range(workers)]
        try:
            log(f"[volume] {workers} worker(s), {warmup:.0f} s warm-up, {seconds:.0f} s measured")
            applied, worker_cpu, db_cpu, max_lag, end_lag, elapsed = asyncio.run(
                _measure_sync(db, started, database, seconds, warmup)
            )
            log(f"[volume] backlog: every order overdue at once, drained within {drain_seconds:.0f} s at most")
            drained, drain_worker_cpu, drain_db_cpu, drain_elapsed = asyncio.run(
                _measure_drain(db, started, database, interval, drain_seconds)
            )
        finally:
            for worker in started:
                worker.stop()
    return VolumeFigures(
        orders=orders,
        workers=workers,
        interval=interval,
        seconds=elapsed,
        applied=applied,
        worker_cpu_seconds=worker_cpu,
        database_cpu_seconds=db_cpu,
        max_lag=max_lag,
        end_lag=end_lag,
        seed_seconds=seed_seconds,
        drain_seconds=drain_elapsed,
        drain_applied=drained,
        drain_worker_cpu_seconds=drain_worker_cpu,
        drain_database_cpu_seconds=drain_db_cpu,
    )


async def _retrying_deadlocks(conn: asyncpg.Connection, query: str, *args: object) -> object:
    """Run a statement that touches every order while the workers update batches of them (in
    another order): Postgres may pick it as a deadlock's victim; then it runs again."""
    for _ in range(10):
        try:
            return await conn.fetchval(query, *args)
        except asyncpg.DeadlockDetectedError:
            continue
    raise RuntimeError("the backlog could not be made: deadlocked ten times")


async def _measure_drain(
    db: Database, workers: list[Process], database: str, interval: float, limit: float
) -> tuple[int, float, float, float]:
    """Make every live order overdue at once and time the workers until each one has been
    checked (or ``limit`` seconds): their capacity. Returns answers applied, workers' CPU,
    Postgres' CPU and the seconds it took."""
    conn = await asyncpg.connect(db.dsn)
    try:
        backends = BackendCpu(conn, database)
        worker_cpu = sum(w.cpu_seconds() for w in workers)
        await backends.start()
        mark = await _retrying_deadlocks(
            conn,
            "WITH overdue AS (UPDATE orders SET next_check_at = now() - make_interval(secs => $1::float8)"
            " WHERE state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled') RETURNING 1)"
            " SELECT clock_timestamp() FROM (SELECT count(*) FROM overdue) AS done",
            interval,
        )
        started = time.monotonic()  # the workers see the backlog once the UPDATE commits
        # Drained: no live order is due any more and the count stood still over one poll (the
        # last leases are applied). Answers a worker had in flight when the backlog was made are
        # applied with the time their statement started, before the mark: they are not counted
        # (and not due again for an interval), so the figure errs low.
        checked, previous, ended = 0, -1, started
        while time.monotonic() - started < limit:
            await asyncio.sleep(0.5)  # each count reads every order: not too often
            checked = await conn.fetchval("SELECT count(*) FROM orders WHERE last_checked_at >= $1", mark)
            due = await conn.fetchval(
                "SELECT count(*) FROM orders WHERE state = 'placed'"
                " AND status NOT IN ('Completed', 'Partial', 'Canceled') AND next_check_at <= now()"
            )
            if checked != previous:
                ended = time.monotonic()
            elif due == 0:
                break
            previous = checked
        elapsed = ended - started
        database_cpu = await backends.seconds()
        return int(checked), sum(w.cpu_seconds() for w in workers) - worker_cpu, database_cpu, elapsed
    finally:
        await conn.close()


# --- a large catalog: sync, then services ---------------------------------------------------------


async def _catalog_sync(db: Database, database: str, count: int) -> tuple[SyncFigures, int]:
    """Sync ``count`` services from an in-process simulator three times (first, unchanged, every
    rate changed); returns the figures and the provider's id."""
    from gateway.catalog.sync import sync_provider
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from gateway.simulator.catalog import generate_catalog
    from gateway.simulator.config import SimulatorConfig
    from gateway.simulator.runner import SimulatorThread
    from tests.factories import make_provider

    catalog = generate_catalog(count, seed=7)
    settings = Settings(_env_file=None, allow_private_upstreams=True)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, db.url)
    conn = await asyncpg.connect(db.dsn)
    try:
        with SimulatorThread(SimulatorConfig(speed=0, catalog=catalog)) as sim:
            provider_id = await make_provider(runtime, api_url=sim.url, api_key=sim.api_key, name="large catalog")
            client = runtime.upstreams.client_for(provider_id, sim.url, sim.api_key)
            started = time.perf_counter()
            fetched = await client.services()
            fetch = time.perf_counter() - started
            if len(fetched) != count:
                raise RuntimeError(f"the simulator listed {len(fetched)} services, not {count}")
            rows = []
            for label in (f"first sync ({count:,} created)", "re-sync, nothing changed", "re-sync, every rate changed"):
                if label.startswith("re-sync, every"):
                    sim.state.replace_catalog([dataclasses.replace(s, rate=s.rate + Decimal("0.01")) for s in catalog])
                backends = BackendCpu(conn, database)
                await backends.start()
                started = time.perf_counter()
                summary = await sync_provider(runtime.sessions, runtime.providers, provider_id)
                seconds = time.perf_counter() - started
                rows.append((label, seconds, await backends.seconds(), summary.as_dict()))
        return SyncFigures(count, fetch, rows), provider_id
    finally:
        await conn.close()
        await runtime.aclose()


async def _pricing_customers(db: Database, provider_id: int, own_rates: int, discount: str) -> tuple[str, str]:
    """A customer with ``own_rates`` own rates (on the provider's first services) and a
    discount, and one with neither; returns their keys."""
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from tests.factories import make_customer

    settings = Settings(_env_file=None, allow_private_upstreams=True)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, db.url)
    try:
        priced_id, priced_key = await make_customer(
            runtime, balance="100", name="own rates", discount_percent=Decimal(discount)
        )
        _, plain_key = await make_customer(runtime, balance="100", name="list prices")
    finally:
        await runtime.aclose()
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute(
            """
            INSERT INTO customer_rates (customer_id, service_id, rate)
            SELECT $1, id, round(upstream_rate * 1.1, 4) FROM services WHERE provider_id = $2 ORDER BY id LIMIT $3
            """,
            priced_id,
            provider_id,
            own_rates,
        )
    finally:
        await conn.close()
    return priced_key, plain_key


def _cold_listing_ms(db: Database, key: str) -> float:
    """Building one customer's listing from a fresh price book (what the first ``services`` after
    a catalog change costs, once per revision and pricing), in-process, best of three."""
    from gateway.catalog.pricebook import Catalog
    from gateway.ledger.keys import hash_key
    from gateway.runtime import Runtime
    from gateway.settings import Settings

    async def measure() -> float:
        settings = Settings(_env_file=None, allow_private_upstreams=True)  # type: ignore[call-arg]
        runtime = Runtime.build(settings, db.url)
        conn = await asyncpg.connect(db.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT id, discount_percent FROM customers WHERE api_key_hash = $1", hash_key(key)
            )
            best = float("inf")
            for _ in range(3):
                catalog = Catalog(runtime.engine, settings.min_margin_percent)
                book = await catalog.book()
                started = time.perf_counter()
                book.listing_json(int(row["id"]), Decimal(row["discount_percent"]))
                best = min(best, time.perf_counter() - started)
            return 1e3 * best
        finally:
            await conn.close()
            await runtime.aclose()

    return asyncio.run(measure())


def large_catalog(
    db: Database,
    database: str,
    *,
    services: int,
    own_rates: int,
    discount: str,
    http_cpu: Callable[[int, list[str], str, Process], tuple[float, float]],
    gateway: Callable[[], contextlib.AbstractContextManager[tuple[int, Process]]],
    log: Callable[[str], None],
) -> tuple[SyncFigures, ServicesFigures]:
    """The catalog sync figures, then ``services`` on the synced catalog (``http_cpu`` runs wrk
    and returns (requests per second, server CPU µs per request); ``gateway`` serves the API)."""
    log(f"[volume] catalog sync of {services:,} services")
    sync, provider_id = asyncio.run(_catalog_sync(db, database, services))
    priced_key, plain_key = asyncio.run(_pricing_customers(db, provider_id, own_rates, discount))
    cold_ms = _cold_listing_ms(db, priced_key)
    log(f"[volume] services of {services:,} for a customer with {own_rates} own rates and {discount}% off")
    with gateway() as (port, process):
        rate, cpu = http_cpu(port, [f"key={priced_key}&action=services"], '"service"', process)
        plain_rate, plain_cpu = http_cpu(port, [f"key={plain_key}&action=services"], '"service"', process)
        body = _services_body_bytes(port, priced_key)
    return sync, ServicesFigures(
        services=services,
        own_rates=own_rates,
        discount=discount,
        cpu_us=cpu,
        rate=rate,
        plain_cpu_us=plain_cpu,
        plain_rate=plain_rate,
        body_bytes=body,
        cold_ms=cold_ms,
    )


def _services_body_bytes(port: int, key: str) -> int:
    import httpx

    answer = httpx.post(f"http://127.0.0.1:{port}/api/v2", data={"key": key, "action": "services"}, timeout=30.0)
    answer.raise_for_status()
    return len(answer.content)
