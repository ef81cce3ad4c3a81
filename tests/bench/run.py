"""``make bench``: the gateway's throughput and latency, each figure as a ratio to a baseline
measured in the same run on the same machine, printed and written to docs/BENCHMARKS.md.

Baselines: pgbench running the gateway's own SQL (the charge statement, the key lookup) at the
same concurrency, and a minimal Litestar + asyncpg app (tests/bench/baseline_app.py) serving the
same requests with nothing but the key lookup and the charge. Figures (docs/BENCHMARKS.md says
what each one means and what limits it):

1. ``add`` throughput, upstream in-process and the simulator over loopback, 200 customers and one
   hot customer;
2. ``balance`` and ``services``;
3. ``status`` of 100 ids per call vs one id per call, in statuses per second;
4. latency under open-loop load at 70% of the measured maximum;
5. ``balance`` and ``status`` with the upstream hanging (circuit open) vs healthy;
6. the same table with the API on as many processes as the machine has cores.

    python -m tests.bench.run [--seconds 5] [--warmup 2] [--workers 1,2] [--doc docs/BENCHMARKS.md]

``--only volume`` runs the volume part instead (tests/bench/volume.py: the status sync of 100,000
live orders with two workers, ``services`` and sync of a 5,000-service catalog), on a database of
its own, and rewrites only its own results in the doc (``make bench BENCH_ARGS="--only volume"``).

Uses GATEWAY_BENCH_DATABASE_URL (or GATEWAY_TEST_DATABASE_URL), else the embedded Postgres under
var/bench-data. Needs ``wrk`` (Debian: ``apt-get install -y wrk``); pgbench ships with the embedded
Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx

from gateway.db import stop_embedded
from gateway.ledger.customers import CUSTOMER_BY_KEY_HASH
from gateway.orders.store import CHARGE_AND_CREATE
from tests.bench import harness, volume
from tests.bench.harness import Database, LoadResult, Process, Seed

DOC = harness.ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
CATALOG_REVISION = "SELECT revision FROM catalog_revision WHERE id = 1"
CONNECTIONS = 16  # HTTP connections, and pgbench clients: the same concurrency everywhere
CUSTOMERS = 200
CATALOG = 500
# Two cores: one for the API, one for the database and the load. One API process is pinned to
# CPU 0; wrk, pgbench and the open-loop generator to CPU 1, and so is the embedded Postgres (an
# external one floats). The simulator floats.
SERVER_CPUS = "0"
LOAD_CPUS = "1"
DATABASE_CPUS = "1"
OPEN_LOOP_SHARE = 0.7
ADD_ROUNDS = 3  # default interleaved rounds of the headline add figures (median of each)
TRICKLE_RATE = 20.0  # adds per second kept flowing while the upstream hangs (figure 5)


@dataclasses.dataclass
class Row:
    figure: str
    what: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    target: str = ""
    minimum: float | None = None  # the ratio must be at least this
    maximum: float | None = None  # ... or at most this
    note: str = ""
    valid: bool = True  # False: the run measured something else (the note says what)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else 0.0

    @property
    def met(self) -> str:
        if self.minimum is None and self.maximum is None:
            return ""
        if not self.valid:
            return "n/a"
        inclusive = self.target.startswith("≤")
        below = self.maximum is None or (self.ratio <= self.maximum if inclusive else self.ratio < self.maximum)
        ok = (self.minimum is None or self.ratio >= self.minimum) and below
        return "yes" if ok else "**no**"


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:,.0f} {unit}"


# --- request bodies ----------------------------------------------------------------------------


def add_bodies(seed: Seed, customers: Sequence[tuple[int, str]]) -> list[str]:
    return [
        f"key={key}&action=add&service={seed.service_id}&link=https%3A%2F%2Fexample.com%2Fp{i}&quantity={seed.quantity}"
        for i, (_, key) in enumerate(customers)
    ]


def action_bodies(customers: Sequence[tuple[int, str]], action: str) -> list[str]:
    return [f"key={key}&action={action}" for _, key in customers]


def status_bodies(seed: Seed, per_call: int) -> list[str]:
    key = seed.status_customer[1]
    ids = seed.status_order_ids
    if per_call == 1:
        return [f"key={key}&action=status&order={i}" for i in ids]
    return [f"key={key}&action=status&orders=" + "%2C".join(map(str, ids[:per_call]))]


# --- the bench -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AddFigures:
    rate: float  # requests per second
    cpu_us: float  # API process CPU per request
    database_cpu_us: float | None  # the embedded Postgres' CPU per request (None: an external server)

    @staticmethod
    def median(samples: Sequence[AddFigures]) -> AddFigures:
        databases = [s.database_cpu_us for s in samples if s.database_cpu_us is not None]
        return AddFigures(
            statistics.median(s.rate for s in samples),
            statistics.median(s.cpu_us for s in samples),
            statistics.median(databases) if databases else None,
        )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.seconds: float = args.seconds
        self.warmup: float = args.warmup
        self.open_loop_seconds: float = args.open_loop_seconds
        self.add_rounds_count: int = args.add_rounds
        self.workers: list[int] = args.workers
        self.database: str = args.database
        self.db: Database
        self.seed: Seed
        self.sim_port = harness.free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.pgbench_cache: dict[str, float] = {}

    # -- load ---------------------------------------------------------------------------------

    def http(self, port: int, bodies: Sequence[str], expect: str, connections: int = CONNECTIONS) -> LoadResult:
        return self.http_cpu(port, bodies, expect, None, connections)[0]

    def http_cpu(
        self, port: int, bodies: Sequence[str], expect: str, server: Process | None, connections: int = CONNECTIONS
    ) -> tuple[LoadResult, float]:
        """A closed-loop run, and the server's CPU time per request in µs over its measured window
        (``server``'s process group, from /proc: robust on a shared machine, unlike throughput)."""
        script = harness.wrk_script(bodies, expect=expect)
        url = f"http://127.0.0.1:{port}/api/v2"
        if self.warmup > 0:
            harness.wrk(url, script, connections=connections, seconds=self.warmup, cpus=LOAD_CPUS)
        cpu_before = server.cpu_seconds() if server is not None else 0.0
        result = harness.wrk(url, script, connections=connections, seconds=self.seconds, cpus=LOAD_CPUS)
        cpu = server.cpu_seconds() - cpu_before if server is not None else 0.0
        if result.errors:
            raise RuntimeError(f"{result.errors} failed requests on port {port}: {result.sample_error}")
        return result, 1e6 * cpu / max(result.requests, 1)

    def bare_json(self, port: int) -> LoadResult:
        script = harness.wrk_script([""], path="/json", method="GET", expect='"balance"')
        url = f"http://127.0.0.1:{port}/json"
        if self.warmup > 0:
            harness.wrk(url, script, connections=CONNECTIONS, seconds=self.warmup, cpus=LOAD_CPUS)
        return harness.wrk(url, script, connections=CONNECTIONS, seconds=self.seconds, cpus=LOAD_CPUS)

    def latency(self, port: int, bodies: Sequence[str], rate: float, expect: str) -> dict[str, float]:
        """Open-loop latency at ``rate``: the better (lower p99) of two runs, since interference
        from anything else on the machine can only add to a latency, never take from it."""
        runs = [
            harness.open_loop(
                f"http://127.0.0.1:{port}/api/v2",
                bodies,
                rate=rate,
                seconds=self.open_loop_seconds,
                connections=64,
                cpus=LOAD_CPUS,
                expect=expect,
            )
            for _ in range(2)
        ]
        return min(runs, key=lambda run: run["p99_ms"])

    def pgbench_charge(self, hot: bool) -> float:
        key = "charge-hot" if hot else "charge-many"
        if key in self.pgbench_cache:
            return self.pgbench_cache[key]
        ids = [c for c, _ in self.seed.customers]
        if hot:
            header = f"\\set customer_id {self.seed.hot[0]}\n"
        else:
            low, high = min(ids), max(ids)
            assert sorted(ids) == list(range(low, high + 1)), "the bench customers' ids are not contiguous"
            header = f"\\set customer_id random({low}, {high})\n"
        # pgbench draws the customer, so the account check compares each row's key hash with
        # itself (the same work as with the caller's) and the seeded customers have no allowlist.
        charge = CHARGE_AND_CREATE.text.strip().replace(":key_hash", "api_key_hash").replace(":allowed_ips", "NULL")
        script = header + charge + ";\n"
        # The price book's revision as it is now (pointing the provider elsewhere moves it).
        defines = {**self.charge_values, "revision": str(asyncio.run(self._scalar(CATALOG_REVISION)))}
        orders_before = asyncio.run(self._scalar("SELECT count(*) FROM orders"))
        tps = harness.pgbench(
            self.db.dsn, script, clients=CONNECTIONS, seconds=self.seconds, cpus=LOAD_CPUS, defines=defines
        ).tps
        charged = asyncio.run(self._scalar("SELECT count(*) FROM orders")) - orders_before
        if charged < 0.5 * tps * self.seconds:
            # A guard of the statement refused them (a stale value above): a no-op measured fast.
            raise RuntimeError(f"pgbench's charges created {charged} orders at {tps:.0f} tps: they changed nothing")
        self.pgbench_cache[key] = tps
        return tps

    async def _scalar(self, sql: str) -> int:
        conn = await asyncpg.connect(self.db.dsn)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    def pgbench_lookup(self) -> float:
        if "lookup" not in self.pgbench_cache:
            key_hash = hashlib.sha256(self.seed.hot[1].encode()).hexdigest()
            script = CUSTOMER_BY_KEY_HASH.text.strip() + ";\n"
            self.pgbench_cache["lookup"] = harness.pgbench(
                self.db.dsn,
                script,
                clients=CONNECTIONS,
                seconds=self.seconds,
                cpus=LOAD_CPUS,
                defines={"hash": "\\x" + key_hash},
            ).tps
        return self.pgbench_cache["lookup"]

    # -- servers ------------------------------------------------------------------------------

    def server_cpus(self, workers: int) -> str | None:
        return SERVER_CPUS if workers == 1 else None

    @contextlib.contextmanager
    def gateway(
        self, workers: int, *, upstream: str, worker: bool = False, **env: str
    ) -> Iterator[tuple[int, Process]]:
        """A gateway on its own port: ``upstream`` "inprocess" (tests.bench.launcher, the upstream
        an httpx.MockTransport) or "simulator"/"panel" (``gateway serve``, the upstream over loopback:
        the simulator, or tests.bench.panel, a separate server answering every add at once)."""
        port = harness.free_port()
        settings = harness.gateway_env(
            self.db, port, GATEWAY_DB_POOL_SIZE=str(CONNECTIONS), GATEWAY_SERVE_WORKER=str(worker).lower(), **env
        )
        if upstream == "inprocess":
            command = [sys.executable, "-m", "tests.bench.launcher", "--port", str(port), "--workers", str(workers)]
        else:
            command = [str(Path(sys.executable).parent / "gateway"), "serve", "--workers", str(workers)]
            if not worker:
                command.append("--no-worker")
        with contextlib.ExitStack() as stack:
            if upstream == "panel":
                stack.enter_context(self.panel_upstream())
            process = Process(f"gateway-{upstream}-{workers}", command, settings, self.server_cpus(workers))
            stack.enter_context(harness.running(process, f"http://127.0.0.1:{port}/health"))
            yield port, process

    @contextlib.contextmanager
    def panel_upstream(self) -> Iterator[None]:
        """The seeded provider pointed at tests.bench.panel for as long as this lasts (the panel on
        the load generators' CPU: it costs a fraction of the gateway's work per add)."""
        port = harness.free_port()
        panel = Process(
            "panel", [sys.executable, "-m", "tests.bench.panel", "--port", str(port)], harness.base_env(), LOAD_CPUS
        )
        try:
            panel.wait_ready_tcp(port)
            asyncio.run(self._provider_url(f"http://127.0.0.1:{port}/api/v2"))
            yield
        finally:
            asyncio.run(self._provider_url(f"{self.sim_url}/api/v2"))
            panel.stop()

    async def _provider_url(self, url: str) -> None:
        conn = await asyncpg.connect(self.db.dsn)
        try:
            await conn.execute("UPDATE providers SET api_url = $1 WHERE id = $2", url, self.seed.provider_id)
        finally:
            await conn.close()

    @contextlib.contextmanager
    def baseline_app(self, workers: int) -> Iterator[tuple[int, Process]]:
        port = harness.free_port()
        env = harness.base_env()
        env.update({"BENCH_DSN": self.db.dsn, "BENCH_POOL_SIZE": str(CONNECTIONS)})
        command = [sys.executable, "-m", "tests.bench.baseline_app", "--port", str(port), "--workers", str(workers)]
        process = Process(f"baseline-{workers}", command, env, self.server_cpus(workers))
        with harness.running(process, f"http://127.0.0.1:{port}/health"):
            yield port, process

    # -- the figures --------------------------------------------------------------------------

    def add_rounds(self, workers: int) -> dict[str, AddFigures]:
        """``add`` with 200 customers on the minimal baseline, the gateway with the in-process
        upstream and the gateway with the loopback panel, in ``--add-rounds`` interleaved rounds:
        the median of each figure. The headline ratios compare these three; interleaving puts
        whatever else the machine was doing on all of them alike, and the median drops a round
        it hit hardest."""
        bodies = add_bodies(self.seed, self.seed.customers)
        balances = action_bodies(self.seed.customers, "balance")
        samples: dict[str, list[AddFigures]] = {
            "baseline": [],
            "inprocess": [],
            "panel": [],
            "baseline balance": [],
            "balance": [],
        }

        def measure_balance(name: str, port: int, process: Process) -> None:
            # In the same rounds as the adds, on the same servers: both apps meet the database
            # as the adds left it (a gateway measured after more adds than the baseline would
            # look up keys among more dead row versions).
            result, cpu = self.http_cpu(port, balances, '"balance"', process)
            samples[name].append(AddFigures(result.rate, cpu, None))

        def measure(name: str, port: int, process: Process) -> None:
            db_before = harness.embedded_postgres_cpu_seconds()
            result, cpu = self.http_cpu(port, bodies, '"order"', process)
            db_after = harness.embedded_postgres_cpu_seconds()
            db = None
            if db_before is not None and db_after is not None:
                # the warm-up is in the window too: spread over every request sent in it
                db = 1e6 * (db_after - db_before) / max(result.rate * (self.seconds + self.warmup), 1)
            samples[name].append(AddFigures(result.rate, cpu, db))

        for _ in range(self.add_rounds_count):
            with self.baseline_app(workers) as (port, process):
                measure("baseline", port, process)
                measure_balance("baseline balance", port, process)
            for upstream in ("inprocess", "panel"):
                with self.gateway(workers, upstream=upstream) as (port, process):
                    measure(upstream, port, process)
                    if upstream == "inprocess":
                        measure_balance("balance", port, process)
        return {name: AddFigures.median(values) for name, values in samples.items()}

    def table(self, workers: int) -> list[Row]:
        rows: list[Row] = []
        seed = self.seed
        many, hot = seed.customers, [seed.hot]
        log = self.log

        log(
            f"[{workers} process(es)] add: minimal baseline, in-process and loopback panel,"
            f" {self.add_rounds_count} rounds"
        )
        adds = self.add_rounds(workers)
        base_add_many, base_add_cpu = adds["baseline"].rate, adds["baseline"].cpu_us
        add_many_rate, add_many_cpu = adds["inprocess"].rate, adds["inprocess"].cpu_us
        panel_many_rate, panel_many_cpu = adds["panel"].rate, adds["panel"].cpu_us
        base_balance, base_balance_cpu = adds["baseline balance"].rate, adds["baseline balance"].cpu_us
        balance_rate, balance_cpu = adds["balance"].rate, adds["balance"].cpu_us

        log(f"[{workers} process(es)] minimal baseline app")
        with self.baseline_app(workers) as (port, _):
            base_add_hot = self.http(port, add_bodies(seed, hot), '"order"').rate
            base_services = self.http(port, action_bodies(many, "services"), '"service"').rate
            bare = self.bare_json(port).rate

        log(f"[{workers} process(es)] pgbench")
        pg_many, pg_hot = self.pgbench_charge(hot=False), self.pgbench_charge(hot=True)
        pg_lookup = self.pgbench_lookup()

        log(f"[{workers} process(es)] gateway, upstream in-process")
        with self.gateway(workers, upstream="inprocess") as (port, _):
            add_hot = self.http(port, add_bodies(seed, hot), '"order"').rate
            add_latency = self.latency(port, add_bodies(seed, many), OPEN_LOOP_SHARE * add_many_rate, '"order"')

        log(f"[{workers} process(es)] gateway serve, upstream = simulator over loopback")
        with self.gateway(workers, upstream="simulator") as (port, _):
            sim_many = self.http(port, add_bodies(seed, many), '"order"')
            sim_hot = self.http(port, add_bodies(seed, hot), '"order"')
            services = self.http(port, action_bodies(many, "services"), '"service"')
            status_one = self.http(port, status_bodies(seed, 1), '"status"')
            status_hundred = self.http(port, status_bodies(seed, 100), '"status"')
            status_latency = self.latency(port, status_bodies(seed, 1), OPEN_LOOP_SHARE * status_one.rate, '"status"')

        log(f"[{workers} process(es)] upstream hanging, circuit open")
        healthy, hanging, breaker_note = self.circuit_open(workers)

        f1 = "1 add"
        for label, rate, pg, base, name in (
            ("in-process upstream, 200 customers", add_many_rate, pg_many, base_add_many, "many"),
            ("in-process upstream, 1 hot customer", add_hot, pg_hot, base_add_hot, "hot"),
            ("simulator over loopback, 200 customers", sim_many.rate, pg_many, base_add_many, "many"),
            ("simulator over loopback, 1 hot customer", sim_hot.rate, pg_hot, base_add_hot, "hot"),
        ):
            headline = name == "many" and label.startswith("in-process")
            who = "200 customers" if name == "many" else "1 hot customer"
            rows.append(Row(f1, f"add, {label}", rate, "req/s", f"pgbench, charge SQL, {who}", pg, "≥ 0.25", 0.25))
            rows.append(
                Row(
                    f1,
                    f"add, {label}",
                    rate,
                    "req/s",
                    f"minimal baseline add, {who}",
                    base,
                    "≥ 0.8" if headline else "",
                    0.8 if headline else None,
                )
            )
        rows += [
            Row(
                f1,
                "add, minimal panel over loopback (HTTP), 200 customers",
                panel_many_rate,
                "req/s",
                "minimal baseline add, 200 customers",
                base_add_many,
            ),
            Row(
                f1,
                "add CPU per request, minimal panel over loopback (HTTP), 200 customers",
                panel_many_cpu,
                "µs",
                "minimal baseline add, 200 customers",
                base_add_cpu,
                "≤ 2",
                maximum=2.0,
            ),
            Row(
                f1,
                "add CPU per request, in-process upstream, 200 customers",
                add_many_cpu,
                "µs",
                "minimal baseline add, 200 customers",
                base_add_cpu,
            ),
        ]
        gateway_db, baseline_db = adds["inprocess"].database_cpu_us, adds["baseline"].database_cpu_us
        if gateway_db is not None and baseline_db is not None:
            rows.append(
                Row(
                    f1,
                    "add, Postgres CPU per request (all its processes), in-process upstream, 200 customers",
                    gateway_db,
                    "µs",
                    "minimal baseline add, 200 customers",
                    baseline_db,
                )
            )
        for row in rows:
            if row.what.endswith("in-process upstream, 200 customers") or "minimal panel" in row.what:
                row.note = f"median of {self.add_rounds_count} interleaved rounds"
        f2 = "2 reads"
        balance_rows = [
            Row(f2, "balance CPU per request", balance_cpu, "µs", "minimal baseline balance", base_balance_cpu),
            Row(f2, "balance", balance_rate, "req/s", "minimal baseline balance", base_balance, "≥ 0.9", 0.9),
        ]
        for row in balance_rows:
            row.note = f"median of {self.add_rounds_count} interleaved rounds, with the adds' servers"
        rows += [
            *balance_rows,
            Row(f2, "balance", balance_rate, "req/s", "bare Litestar JSON endpoint", bare),
            Row(f2, "balance", balance_rate, "req/s", "pgbench, key lookup SQL", pg_lookup),
            Row(
                f2,
                f"services ({seed.services_for_sale} services)",
                services.rate,
                "req/s",
                "minimal baseline services",
                base_services,
            ),
            Row(
                f2,
                f"services ({seed.services_for_sale} services)",
                services.rate,
                "req/s",
                "bare Litestar JSON endpoint",
                bare,
            ),
            Row(f2, "minimal baseline balance", base_balance, "req/s", "bare Litestar JSON endpoint", bare),
        ]
        rows.append(
            Row(
                "3 status",
                "status, 100 ids per call",
                100 * status_hundred.rate,
                "statuses/s",
                "status, 1 id per call",
                status_one.rate,
                "≥ 20",
                20.0,
            )
        )
        for label, latency in (("add (in-process upstream)", add_latency), ("status (1 id)", status_latency)):
            note = (
                f"{latency['target_rate']:,.0f} req/s offered, {latency['achieved_rate']:,.0f} done, "
                f"p99.9 {latency['p999_ms']:.1f} ms, max {latency['max_ms']:.1f} ms, "
                f"generator send lag p99 {latency['send_lag_p99_ms']:.1f} ms"
            )
            if latency["late_sends"]:
                note += f", {latency['late_sends']:.0f} sends found every connection busy"
            generator_bound = latency["send_lag_p99_ms"] > latency["p99_ms"] / 2
            if generator_bound:
                note += "; the generator could not keep its schedule: this measures the load generator, not the API"
            if latency["errors"]:
                note += f", {latency['errors']:.0f} errors: {latency['error_sample']}"
            rows.append(
                Row(
                    "4 latency",
                    f"{label} p99 at 70% of max",
                    latency["p99_ms"],
                    "ms",
                    "p50",
                    latency["p50_ms"],
                    "< 5",
                    maximum=5.0,
                    note=note,
                    valid=not generator_bound,
                )
            )
        for action in ("balance", "status"):
            rows.append(
                Row(
                    "5 upstream hanging",
                    f"{action}, circuit open",
                    hanging[action],
                    "req/s",
                    f"{action}, upstream healthy",
                    healthy[action],
                    "≥ 0.9",
                    0.9,
                    note=breaker_note,
                )
            )
        return rows

    def circuit_open(self, workers: int) -> tuple[dict[str, float], dict[str, float], str]:
        """Balance and status throughput on a `gateway serve` (worker on) with the upstream healthy,
        then hanging with the circuit open, a trickle of adds flowing throughout."""
        seed = self.seed
        healthy: dict[str, float] = {}
        hanging: dict[str, float] = {}
        env = {
            "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "1",
            "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.4",
            "GATEWAY_UPSTREAM_BREAKER_FAILURES": "2",
            "GATEWAY_UPSTREAM_BREAKER_RESET_SECONDS": "600",
        }
        trickle_seconds = 2 * (self.warmup + self.seconds) + 2
        with self.gateway(workers, upstream="simulator", worker=True, **env) as (port, _process):
            url = f"http://127.0.0.1:{port}/api/v2"
            for phase, into in (("healthy", healthy), ("hanging", hanging)):
                if phase == "hanging":
                    note = self.open_breaker(url)
                with self.trickle(url, trickle_seconds) as trickle:
                    into["balance"] = self.http(port, action_bodies(seed.customers, "balance"), '"balance"').rate
                    into["status"] = self.http(port, status_bodies(seed, 1), '"status"').rate
                summary = trickle()
                if phase == "hanging":
                    note += (
                        f"; adds at {TRICKLE_RATE:.0f}/s meanwhile: p50 {summary['p50_ms']:.1f} ms,"
                        f" p99 {summary['p99_ms']:.1f} ms"
                    )
            httpx.delete(f"{self.sim_url}/control/faults", timeout=5)
        return healthy, hanging, note

    def open_breaker(self, url: str) -> str:
        """Make the simulator hang on everything, and fail adds until every process' circuit is open
        (an add then answers at once: queued, not sent)."""
        httpx.put(f"{self.sim_url}/control/faults", json=[{"kind": "hang"}], timeout=5).raise_for_status()
        body = add_bodies(self.seed, self.seed.customers[:1])[0]
        headers = {"Content-Type": "application/x-www-form-urlencoded"}

        def add(_: int) -> float:
            started = time.perf_counter()
            httpx.post(url, content=body, headers=headers, timeout=10)
            return time.perf_counter() - started

        for _attempt in range(5):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(add, range(8)))
            probes = [add(i) for i in range(8)]
            if max(probes) < 0.5:
                return f"circuit open: adds answered in ≤ {1000 * max(probes):.0f} ms"
        return "circuit NOT confirmed open in every process"

    @contextlib.contextmanager
    def trickle(self, url: str, seconds: float) -> Iterator[Callable[[], dict[str, float]]]:
        """A constant trickle of adds in the background; yields a function returning its summary."""
        result: dict[str, float] = {}
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(
                harness.open_loop,
                url,
                add_bodies(self.seed, self.seed.customers),
                rate=TRICKLE_RATE,
                seconds=seconds,
                connections=8,
                cpus=LOAD_CPUS,
                expect='"order"',
            )
            yield lambda: result
            result.update(future.result())

    # -- the run ------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    def prepare(self) -> None:
        self.log("database, simulator, seed")
        for stale in [
            *harness.WORK.glob("wrk-*.lua"),
            *harness.WORK.glob("pgbench-*.sql"),
            *harness.WORK.glob("bodies-*.json"),
        ]:
            stale.unlink(missing_ok=True)
        self.db = asyncio.run(harness.fresh_database(self.database))
        self.postgres_pinned = harness.pin_embedded_postgres(DATABASE_CPUS)
        self.simulator = harness.start_simulator(self.sim_port, CATALOG, None)
        self.simulator.wait_ready(f"{self.sim_url}/control/state")
        self.seed = asyncio.run(harness.seed(self.db, f"{self.sim_url}/api/v2", CUSTOMERS))
        self.charge_values = asyncio.run(self._charge_values())

    async def _charge_values(self) -> dict[str, str]:
        """What the gateway bound for one of its own orders, as pgbench ``-D`` values."""
        conn = await asyncpg.connect(self.db.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT service_id, provider_id, upstream_service_id, route_priority, link, quantity,"
                " params::text AS params,"
                " rate, charge, cost, currency FROM orders WHERE id = $1",
                self.seed.status_order_ids[0],
            )
        finally:
            await conn.close()
        values = {k: str(v) for k, v in dict(row).items()}
        values["request_id"] = "pgbench"
        values["discount"] = "0"
        return values

    def run(self) -> dict[int, list[Row]]:
        started = time.monotonic()
        self.prepare()
        try:
            tables = {workers: self.table(workers) for workers in self.workers}
        finally:
            self.simulator.stop()
            if self.postgres_pinned:
                harness.pin_embedded_postgres(f"0-{harness.cpu_count() - 1}")
        self.elapsed = time.monotonic() - started
        return tables


# --- output -------------------------------------------------------------------------------------


def render(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | measured | value | baseline | baseline value | ratio | target | met |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for row in rows:
        what = row.what + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.figure} | {what} | {fmt(row.value, row.unit)} | {row.baseline} | "
            f"{fmt(row.baseline_value, row.unit if row.unit != 'statuses/s' else 'req/s')} | "
            f"{row.ratio:.2f} | {row.target} | {row.met} |"
        )
    return "\n".join(lines)


def results_section(tables: dict[int, list[Row]], machine: dict[str, str], seconds: float, command: str) -> str:
    parts = [
        START,
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} in {seconds / 60:.1f} minutes by `{command}`.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "",
    ]
    for workers, rows in tables.items():
        title = "one API process (pinned to CPU 0)" if workers == 1 else f"{workers} API processes (unpinned)"
        parts += [f"#### {title}", "", render(rows), ""]
    parts.append(END)
    return "\n".join(parts)


def write_doc(path: Path, section: str, markers: tuple[str, str] = (START, END), heading: str = "Results") -> None:
    """Put ``section`` (which begins and ends with ``markers``) in place of the doc's part
    between those markers, or under a new ``heading`` at its end."""
    start, end = markers
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- the volume part (--only volume) ------------------------------------------------------------

VOLUME_START, VOLUME_END = "<!-- bench:volume:start -->", "<!-- bench:volume:end -->"


def run_volume(args: argparse.Namespace) -> tuple[list[str], float, str]:
    """The volume figures (tests/bench/volume.py) on a database of their own; returns the table's
    lines, the run's seconds and the database's DSN."""
    started = time.monotonic()
    name = f"{args.database}_volume"
    bench = Bench(args)
    bench.db = asyncio.run(harness.fresh_database(name))
    bench.postgres_pinned = harness.pin_embedded_postgres(DATABASE_CPUS)
    try:
        sync = volume.status_sync(
            bench.db,
            name,
            orders=args.volume_orders,
            workers=args.volume_workers,
            interval=args.volume_interval,
            seconds=args.volume_seconds,
            warmup=args.volume_warmup,
            drain_seconds=args.volume_drain_seconds,
            panel_cpus=LOAD_CPUS,
            log=bench.log,
        )

        def http_cpu(port: int, bodies: list[str], expect: str, server: Process) -> tuple[float, float]:
            result, cpu = bench.http_cpu(port, bodies, expect, server)
            return result.rate, cpu

        catalog_sync, services = volume.large_catalog(
            bench.db,
            name,
            services=args.catalog_services,
            own_rates=min(args.own_rates, args.catalog_services),
            discount="5",
            http_cpu=http_cpu,
            gateway=lambda: bench.gateway(1, upstream="simulator"),
            log=bench.log,
        )
    finally:
        if bench.postgres_pinned:
            harness.pin_embedded_postgres(f"0-{harness.cpu_count() - 1}")
    return volume_table(sync, catalog_sync, services), time.monotonic() - started, bench.db.dsn


def volume_table(
    sync: volume.VolumeFigures, catalog_sync: volume.SyncFigures, services: volume.ServicesFigures
) -> list[str]:
    per_worker = sync.applied_per_second / max(sync.workers, 1)
    needed = sync.needed_per_second
    lines = [
        "| figure | value | target | met |",
        "|---|---:|---|---|",
        f"| status sync: live orders, providers, workers, check interval | {sync.orders:,}, 2, {sync.workers},"
        f" {sync.interval:.0f} s (needs {needed:,.0f} answers/s) | | |",
        f"| status sync, steady state: answers applied per second, all workers ({sync.seconds:.0f} s window;"
        f" the demand) | {sync.applied_per_second:,.0f} ({per_worker:,.0f} per worker) | | |",
        f"| status sync, steady state: worker CPU per answer, Postgres backend CPU per answer |"
        f" {sync.per_answer_us(sync.worker_cpu_seconds):,.0f} µs,"
        f" {sync.per_answer_us(sync.database_cpu_seconds):,.0f} µs | | |",
        f"| status sync, backlog (every order overdue at once): answers applied per second, all workers"
        f" ({sync.drain_applied:,} checked in {sync.drain_seconds:.1f} s; the capacity) | {sync.capacity_per_second:,.0f}"
        f" ({sync.capacity_per_second / max(sync.workers, 1):,.0f} per worker) | ≥ {needed:,.0f} |"
        f" {_yes(sync.capacity_per_second >= needed)} |",
        f"| status sync, backlog: worker CPU per answer, Postgres backend CPU per answer |"
        f" {1e6 * sync.drain_worker_cpu_seconds / max(sync.drain_applied, 1):,.0f} µs,"
        f" {1e6 * sync.drain_database_cpu_seconds / max(sync.drain_applied, 1):,.0f} µs | | |",
        f"| status sync, steady state: oldest-overdue lag, max over the window (sampled each second) / at its end |"
        f" {sync.max_lag:.1f} s / {sync.end_lag:.1f} s | < {sync.interval:.0f} s | {_yes(sync.max_lag < sync.interval)} |",
        f"| status sync: seeding {sync.orders:,} orders (one INSERT ... SELECT) | {sync.seed_seconds:.1f} s | | |",
        f"| services, {services.services:,} services, {services.own_rates} own rates and {services.discount}% off:"
        f" API CPU per request | {services.cpu_us:,.0f} µs | ≤ 2,000 µs | {_yes(services.cpu_us <= 2000)} |",
        f"| services, the same: requests per second (one API process) | {services.rate:,.0f} | | |",
        f"| services, {services.services:,} services at list prices: API CPU per request, requests per second |"
        f" {services.plain_cpu_us:,.0f} µs, {services.plain_rate:,.0f}/s | | |",
        f"| services: answer size | {services.body_bytes / 1024:,.0f} KiB | | |",
        f"| services: building one customer's listing after a catalog change (once per revision and pricing) |"
        f" {services.cold_ms:,.1f} ms | | |",
        f"| catalog sync: baseline, the upstream's services fetched and parsed | {catalog_sync.fetch_seconds:.2f} s"
        " | | |",
    ]
    for label, seconds, db_cpu, summary in catalog_sync.rows:
        ratio = seconds / catalog_sync.fetch_seconds if catalog_sync.fetch_seconds else 0.0
        changed = ", ".join(f"{k} {v}" for k, v in summary.items() if v)
        lines.append(
            f"| catalog sync: {label} | {seconds:.2f} s ({ratio:.1f} × the fetch), Postgres CPU {db_cpu:.2f} s"
            f" ({changed or 'nothing changed'}) | | |"
        )
    return lines


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def volume_section(lines: list[str], machine: dict[str, str], seconds: float, command: str) -> str:
    return "\n".join(
        [
            VOLUME_START,
            f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} in {seconds / 60:.1f} minutes by `{command}`.",
            "",
            "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
            "",
            *lines,
            "",
            VOLUME_END,
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window of each closed-loop run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each closed-loop run")
    parser.add_argument("--open-loop-seconds", type=float, default=8.0)
    parser.add_argument(
        "--add-rounds",
        type=int,
        default=ADD_ROUNDS,
        help="interleaved rounds of the headline add figures (baseline, in-process, loopback panel); medians",
    )
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=sorted({1, harness.cpu_count()}),
        help="API process counts, one table each (default: 1 and the number of cores)",
    )
    parser.add_argument("--database", default=harness.DATABASE, help="the database the run creates (and drops first)")
    parser.add_argument("--doc", type=Path, default=DOC, help="where to write the results (default docs/BENCHMARKS.md)")
    parser.add_argument(
        "--only",
        choices=["table", "volume"],
        default="table",
        help="table: figures 1-6 (the default run); volume: status sync at volume, a large catalog's services and sync",
    )
    volume = parser.add_argument_group("volume (--only volume)")
    volume.add_argument("--volume-orders", type=int, default=100_000, help="live orders to follow")
    volume.add_argument("--volume-workers", type=int, default=2, help="gateway worker processes")
    volume.add_argument("--volume-interval", type=float, default=60.0, help="status check interval, seconds")
    volume.add_argument("--volume-seconds", type=float, default=90.0, help="measured window of the status sync")
    volume.add_argument("--volume-warmup", type=float, default=15.0, help="before the window")
    volume.add_argument(
        "--volume-drain-seconds", type=float, default=120.0, help="longest wait for the backlog to drain"
    )
    volume.add_argument("--catalog-services", type=int, default=5000, help="services in the large catalog")
    volume.add_argument("--own-rates", type=int, default=500, help="own rates of the priced customer")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("the benchmarks need wrk (Debian/Ubuntu: apt-get install -y wrk)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    command = (
        "make bench"
        if argv is None and len(sys.argv) == 1
        else "python -m tests.bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    if args.only == "volume":
        try:
            lines, seconds, dsn = run_volume(args)
            machine = harness.machine_description(dsn)
        finally:
            stop_embedded()
        machine["load average (1 min) before/after"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
        print("\n".join(lines))
        write_doc(
            args.doc, volume_section(lines, machine, seconds, command), (VOLUME_START, VOLUME_END), "Results: volume"
        )
        print(f"\nwritten to {args.doc}")
        return 0
    bench = Bench(args)
    try:
        tables = bench.run()
        machine = harness.machine_description(bench.db.dsn)
    finally:
        stop_embedded()  # the embedded Postgres, when this run started it
    machine["load average (1 min) before/after"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
    machine["CPUs"] = f"API (one process) on {SERVER_CPUS}, load generators on {LOAD_CPUS}, Postgres on " + (
        DATABASE_CPUS if bench.postgres_pinned else "any (external server, not pinned)"
    )
    for workers, rows in tables.items():
        print(f"\n{workers} API process(es)\n")
        print(render(rows))
    write_doc(args.doc, results_section(tables, machine, bench.elapsed, command))
    print(f"\nwritten to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
