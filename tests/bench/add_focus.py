"""``add`` alone: the headline figures of ``make bench`` (the minimal baseline's ``add``, the
gateway's with the in-process upstream and with the loopback panel over HTTP, and ``balance`` on
the baseline and the in-process gateway, interleaved rounds, medians), without the rest of the run. The quick loop for work on the ``add`` path; ``make bench``
remains the record.

    python -m tests.bench.add_focus [--add-rounds 3] [--seconds 5] [--warmup 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.db import stop_embedded
from tests.bench.run import Bench, parse_args


def main(argv: Sequence[str] | None = None) -> int:
    bench = Bench(parse_args([*(sys.argv[1:] if argv is None else argv), "--workers", "1"]))
    try:
        bench.prepare()
        figures = bench.add_rounds(1)
    finally:
        if hasattr(bench, "simulator"):
            bench.simulator.stop()
        stop_embedded()
    print(f"median of {bench.add_rounds_count} interleaved rounds")
    for name, f in figures.items():
        base = figures["baseline balance" if "balance" in name else "baseline"]
        db = "" if f.database_cpu_us is None else f"   ~{f.database_cpu_us:.0f} µs database CPU/req"
        print(
            f"{name:10} {f.rate:8.0f} req/s ({f.rate / base.rate:.2f} x)"
            f"   {f.cpu_us:6.0f} µs CPU/req ({f.cpu_us / base.cpu_us:.2f} x){db}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
