"""The benchmark harness still runs end to end (on one-second windows; the numbers mean nothing).

Not a timed test: it only checks that ``python -m tests.bench.run`` can seed, start every server,
drive every figure and write its table, so that ``make bench`` cannot rot unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="the benchmarks need wrk (apt-get install -y wrk)"),
]


def run_bench(doc: Path, *args: str) -> str:
    """``python -m tests.bench.run`` with ``args``, writing to ``doc``; the doc's text after it."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", *args, "--database", "gw_bench_smoke", "--doc", str(doc)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return doc.read_text()


def test_the_bench_runs_and_writes_its_table(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nnarrative kept\n\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\n")
    text = run_bench(
        doc,
        *("--seconds", "1", "--warmup", "0", "--open-loop-seconds", "1", "--add-rounds", "1", "--workers", "1"),
    )
    assert "narrative kept" in text
    assert "old" not in text.split("<!-- bench:results:start -->")[1]
    for figure in ("1 add", "2 reads", "3 status", "4 latency", "5 upstream hanging"):
        assert f"| {figure} |" in text, figure
    assert "Machine: nproc" in text


def test_the_volume_part_runs_and_writes_its_own_table(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\nnarrative kept\n\n<!-- bench:results:start -->\nthe main table\n<!-- bench:results:end -->\n"
        "\n<!-- bench:volume:start -->\nthe stale volume table\n<!-- bench:volume:end -->\n"
    )
    text = run_bench(
        doc,
        *("--only", "volume", "--volume-orders", "2000", "--volume-interval", "10", "--volume-seconds", "2"),
        *("--volume-warmup", "1", "--volume-drain-seconds", "60", "--catalog-services", "200", "--own-rates", "20"),
        *("--seconds", "1", "--warmup", "0"),
    )
    assert "narrative kept" in text
    assert "the main table" in text  # the default part's table is not this part's to rewrite
    volume = text.split("<!-- bench:volume:start -->")[1]
    assert "the stale volume table" not in volume
    for figure in ("status sync, steady state", "status sync, backlog", "services, 200 services", "catalog sync"):
        assert f"| {figure}" in volume, figure
    assert " checked in " in volume  # the backlog drained
