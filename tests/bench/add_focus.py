"""``add`` alone, A/B-friendly: the minimal baseline's ``add`` and the gateway's (in-process
upstream, and the loopback panel over HTTP), interleaved for a few rounds, each as throughput and
as API-process CPU per request (/proc). The quick loop for work on the ``add`` path; ``make
bench`` remains the record.

    python -m tests.bench.add_focus [--rounds 3] [--seconds 5] [--warmup 2]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence

from gateway.db import stop_embedded
from tests.bench import harness
from tests.bench.run import Bench, add_bodies, parse_args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rounds = 3
    if "--rounds" in argv:
        at = argv.index("--rounds")
        rounds = int(argv[at + 1])
        del argv[at : at + 2]
    bench = Bench(parse_args([*argv, "--workers", "1"]))
    figures: dict[str, list[tuple[float, float]]] = {"baseline": [], "inprocess": [], "panel": []}
    db_cpu: dict[str, list[float]] = {name: [] for name in figures}

    def measure(name: str, port: int, process: harness.Process) -> None:
        db_before = harness.embedded_postgres_cpu_seconds()
        result, cpu = bench.http_cpu(port, bodies, '"order"', process)
        db_after = harness.embedded_postgres_cpu_seconds()
        figures[name].append((result.rate, cpu))
        if db_before is not None and db_after is not None:
            # the warm-up is inside the window: divide by everything wrk sent in it
            db_cpu[name].append(1e6 * (db_after - db_before) / (result.rate * (bench.seconds + bench.warmup)))

    try:
        bench.prepare()
        bodies = add_bodies(bench.seed, bench.seed.customers)
        for round_no in range(rounds):
            with bench.baseline_app(1) as (port, process):
                measure("baseline", port, process)
            for upstream in ("inprocess", "panel"):
                with bench.gateway(1, upstream=upstream) as (port, process):
                    measure(upstream, port, process)
            bench.log(
                f"round {round_no + 1}: "
                + ", ".join(f"{k} {v[-1][0]:.0f}/s {v[-1][1]:.0f} µs" for k, v in figures.items())
            )
    finally:
        bench.simulator.stop()
        stop_embedded()
    base_rate = statistics.median(r for r, _ in figures["baseline"])
    base_cpu = statistics.median(c for _, c in figures["baseline"])
    for name, values in figures.items():
        rate = statistics.median(r for r, _ in values)
        cpu = statistics.median(c for _, c in values)
        db = f"   ~{statistics.median(db_cpu[name]):.0f} µs database CPU/req" if db_cpu[name] else ""
        print(
            f"{name:10} {rate:8.0f} req/s ({rate / base_rate:.2f} x)   {cpu:6.0f} µs CPU/req ({cpu / base_cpu:.2f} x){db}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
