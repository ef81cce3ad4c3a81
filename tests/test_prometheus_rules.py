"""deploy/prometheus/alerts.yml: valid for promtool, firing as its unit tests say, and naming only
metrics the gateway exports.

promtool comes from Debian's ``prometheus`` package, installed here when missing (and allowed);
where it cannot be installed the promtool tests are skipped with the reason shown.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"


def _install_promtool() -> str | None:
    """promtool's path, installing Debian's prometheus package if needed; None with a reason printed."""
    found = shutil.which("promtool")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        update = ["apt-get", "update"]
        subprocess.run(update, env=env, capture_output=True, timeout=900, check=False)
        subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    return shutil.which("promtool")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = _install_promtool()
    if path is None:
        pytest.skip("promtool is not installed and Debian's prometheus package could not be installed here")
    return path


def test_the_rules_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_rules_fire_on_their_conditions(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False, cwd=RULE_TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_every_metric_the_rules_read_is_exported(client: httpx.AsyncClient) -> None:
    names = set(re.findall(r"\b(gateway_[a-z_]+)", RULES.read_text()))
    assert names, "no metric names found in the rules"
    exported = (await client.get("/metrics")).text
    for name in sorted(names):
        assert name in exported, f"{name} is not in /metrics"
