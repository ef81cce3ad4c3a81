"""The console and the gateway's own alerts: an upstream price rise under the margin floor and an
order with an unknown outcome show in the dashboard's banner and on the alerts page; the operator
acknowledges one; the margin alert closes when the price comes back.

``CONSOLE_SCREENSHOTS_DIR=docs/console`` saves ``alerts.png`` and ``alerts-banner.png`` there.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import httpx
import pytest

from gateway.simulator.catalog import default_catalog
from gateway.simulator.faults import FaultRule
from tests.console.conftest import Console
from tests.console.test_console_browser import SERVICE, admin, expect, sign_in
from tests.processes import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def live_env() -> dict[str, str]:
    return {"GATEWAY_MIN_MARGIN_PERCENT": "10", "GATEWAY_MARGIN_POLICY": "disable"}


def _catalog(factor: Decimal) -> list[object]:
    return [dataclasses.replace(s, rate=s.rate * factor) if s.service_id == SERVICE else s for s in default_catalog()]


def test_an_operator_sees_alerts_in_the_banner_acknowledges_one_and_watches_it_close(console: Console) -> None:
    page = console.page
    service_id = console.live.services[SERVICE]
    upstream = next(s for s in default_catalog() if s.service_id == SERVICE)
    with admin(console) as api:
        (provider,) = api.get("/providers").json()
        fixed = api.patch(f"/services/{service_id}", json={"rate": str(upstream.rate * Decimal("1.2"))})
        assert fixed.status_code == 200, fixed.text
        # The upstream doubles its price: the fixed rate falls under the floor; policy disable.
        console.live.sim.state.replace_catalog(_catalog(Decimal(2)))  # type: ignore[arg-type]
        summary = api.post(f"/providers/{provider['id']}/sync").json()
        assert summary["margin_alerts"] == 1
        assert summary["margin_off_sale"] == 1
        # And an order whose outcome is unknown: the worker's alert step opens that one.
        console.live.sim.set_faults(FaultRule(kind="drop", action="add", when="after"))
    order_id = _unknown_order(console)
    console.live.sim.clear_faults()
    with admin(console) as api:
        wait_for(lambda: len(api.get("/alerts", params={"open": "true"}).json()) == 2, timeout=60)

    console.go("#/dashboard")
    sign_in(console)
    banner = page.locator("#alerts-banner")
    expect(banner).to_contain_text("2 open alerts")
    expect(banner).to_contain_text("Margin below the floor")
    expect(banner).to_contain_text("Orders with an unknown outcome")
    console.shot("alerts-banner", selector="#alerts-banner")
    banner.get_by_role("link", name="Review alerts").click()
    expect(page).to_have_url(re.compile(r"#/alerts$"))
    rows = page.locator("#alerts-table tbody tr")
    expect(rows).to_have_count(2)
    margin_row = rows.filter(has_text="Margin below the floor")
    expect(margin_row).to_contain_text("Off sale until the price is back")
    expect(margin_row).to_contain_text("fixed rate")
    unknown_row = rows.filter(has_text="Orders with an unknown outcome")
    expect(unknown_row.get_by_role("link", name=f"#{order_id}")).to_be_visible()
    console.shot("alerts")

    margin_row.get_by_role("button", name=re.compile(r"Acknowledge alert")).click()
    expect(page.get_by_role("status")).to_contain_text("acknowledged")
    expect(rows.filter(has_text="Margin below the floor")).to_contain_text("Acknowledged by")

    # The upstream's price comes back: the alert closes and the service is on sale again.
    with admin(console) as api:
        console.live.sim.state.replace_catalog(_catalog(Decimal(1)))  # type: ignore[arg-type]
        api.post(f"/providers/{provider['id']}/sync").raise_for_status()
        assert api.get(f"/services/{service_id}").json()["for_sale"] is True
    console.go("#/alerts?show=closed")
    closed = page.locator("#alerts-table tbody tr")
    expect(closed).to_have_count(1)
    expect(closed).to_contain_text("Margin below the floor")
    expect(closed).to_contain_text("Closed")
    assert not console.traffic.problems, console.traffic.problems


def _unknown_order(console: Console) -> int:
    """An order whose add reached the upstream but whose answer was lost (on a service still on sale)."""
    with admin(console) as api:
        services = api.get("/services", params={"enabled": "true"}).json()
    service = next(s for s in services if s["for_sale"] and s["type"] == "Default" and s["min"] <= 100 <= s["max"])
    answer = httpx.post(
        console.live.api,
        data={
            "key": console.live.key,
            "action": "add",
            "service": str(service["id"]),
            "link": "https://i.com/unknown",
            "quantity": "100",
        },
        timeout=30,
    ).json()
    assert "order" in answer, answer
    return int(answer["order"])
