"""Benchmark: what writing an add's upstream attempts with its outcome costs the database.

Recording a placed order used to be one UPDATE, its call-log row going to the database later in
a batch of up to 500 rows. Now the row is written by the same statement (``MARK_PLACED``), so it
is durable as soon as the outcome is. This runs, with pgbench in one session on one database:

- the statement as it was (the UPDATE alone, text kept here as the baseline),
- the call log's batch insert of 500 rows (the old path's share per add: 1/500 of it),
- ``MARK_PLACED`` as the gateway runs it now (UPDATE + one call-log row),

and prints the database time per add of each path (the inverse of pgbench's rate at 16 clients)
and their ratio, plus the Python time to encode the row. Run: ``python -m tests.bench.record_cost``
(``GATEWAY_BENCH_DATABASE_URL``, ``GATEWAY_TEST_DATABASE_URL``, or the embedded Postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import timeit

import asyncpg

from gateway.db import stop_embedded
from gateway.orders.store import MARK_PLACED
from gateway.providers.calllog import INSERT_CALLS_SQL, call_row
from gateway.upstream import AttemptRecord
from tests.bench import harness

ORDERS = 20_000
BATCH = 500
CLIENTS = 16

# The statement that recorded a placed order before the attempts were written with it (the
# state test widened so that every run of it updates a row, as the real one does once).
BEFORE = """
UPDATE orders SET state = 'placed', upstream_order_id = :upstream, placed_at = now(),
                  next_check_at = now() + make_interval(secs => :delay), last_error = NULL,
                  updated_at = now()
WHERE id = :id AND state = ANY(:from_states)
RETURNING id
"""

SET_ID = f"\\set id random(1, {ORDERS})\n\\set upstream :id\n\\set delay 5\n"


def _row(order_id: int) -> dict[str, object]:
    record = AttemptRecord(provider_id=1, action="add", outcome="ok", http_status=200, duration=0.004)
    return {**call_row(record), "order_id": order_id}


async def _seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO customers (id, name, api_key_hash, api_key_hint, balance)
                VALUES (1, 'bench', decode(repeat('ab', 32), 'hex'), 'smm_ab', 0);
            INSERT INTO providers (id, name, api_url, api_key) VALUES (1, 'p', 'http://up.example/api/v2', 'bench-key-0');
            INSERT INTO services (id, provider_id, upstream_service_id, type, upstream_type, upstream_name,
                                  upstream_category, upstream_rate, upstream_min, upstream_max)
                VALUES (1, 1, 1, 'Default', 'Default', 'Likes', 'Instagram', 0.5, 10, 100000);
            """
        )
        await conn.execute(
            f"""
            INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, link, quantity, rate,
                                charge, cost, currency, state, submitted_at)
            SELECT 1, 1, 1, 1, 'https://i.com/' || n, 1000, 0.5, 0.5, 0.5, 'USD', 'submitting', now()
            FROM generate_series(1, {ORDERS}) AS n
            """
        )
        await conn.execute("VACUUM ANALYZE orders")
    finally:
        await conn.close()


def _per_add_us(tps: float) -> float:
    return 1e6 / tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    db = asyncio.run(harness.fresh_database("gw_bench_record"))
    try:
        asyncio.run(_seed(db.dsn))
        defines = {"from_states": "{submitting,placed}", "calls": json.dumps([_row(1)])}
        run = {
            "before": SET_ID + BEFORE.strip() + ";\n",
            "now": SET_ID + MARK_PLACED.text.strip() + ";\n",
            "batch": INSERT_CALLS_SQL.strip().replace(":calls", "'" + json.dumps([_row(i) for i in range(BATCH)]) + "'")
            + ";\n",
        }
        results = {}
        for name in ("before", "now", "batch", "before", "now"):  # interleaved: drift hits both
            result = harness.pgbench(
                db.dsn, run[name], clients=CLIENTS, seconds=args.seconds, cpus=None, defines=defines
            )
            results.setdefault(name, []).append(result.tps)
        before = max(results["before"])
        now = max(results["now"])
        batch_rows = max(results["batch"]) * BATCH
        before_us = _per_add_us(before) + _per_add_us(batch_rows)
        now_us = _per_add_us(now)
        encode = timeit.timeit(lambda: json.dumps([_row(7)]), number=20_000) / 20_000 * 1e6
        print(f"{CLIENTS} pgbench clients, {args.seconds:g} s per run, best of the runs shown")
        print(f"  record placed, before (UPDATE):              {before:9,.0f}/s  {_per_add_us(before):6.1f} us")
        print(
            f"  call log, batch of {BATCH} rows (per row):      {batch_rows:9,.0f}/s  {_per_add_us(batch_rows):6.1f} us"
        )
        print(f"  before, per add (UPDATE + 1/{BATCH} batch):                  {before_us:6.1f} us")
        print(f"  record placed, now (UPDATE + call row):      {now:9,.0f}/s  {now_us:6.1f} us")
        print(f"  ratio now / before, database time per add:                 {now_us / before_us:6.2f}")
        print(f"  Python: building and encoding the row per add:             {encode:6.1f} us")
    finally:
        stop_embedded()


if __name__ == "__main__":
    main()
