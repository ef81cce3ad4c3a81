"""The console and an upstream that ends an order without saying how much was delivered: the
dashboard counts it, the order shows the held status and the anomaly, and the operator settles it."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import Console
from tests.console.test_console_browser import admin, expect, place_order, sign_in
from tests.processes import wait_for

pytestmark = pytest.mark.slow


def test_an_operator_settles_a_held_order_from_the_console(console: Console) -> None:
    page = console.page
    order_id = place_order(console, console.live.key, "https://instagram.com/held")
    with admin(console) as api:
        order = api.get(f"/orders/{order_id}").json()["order"]
        upstream_id = order["upstream_order_id"]
        console.live.sim.state.force_order(upstream_id, "Partial", remains=40)
        console.live.sim.state.sloppy_status(upstream_id, {"remains": "Unknown"})
        wait_for(lambda: api.get(f"/orders/{order_id}").json()["order"]["held_status"] == "Partial", timeout=30)

    console.go("#/dashboard")
    sign_in(console)
    expect(page.locator("#count-held .value")).to_have_text("1")
    expect(page.locator("#count-anomalies .value")).to_have_text("1")
    page.locator("#count-held").click()
    expect(page).to_have_url(re.compile(r"#/orders\?held=true$"))
    rows = page.locator("#orders-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("held: Partial")
    rows.get_by_role("link", name=f"Order {order_id}", exact=True).click()
    expect(page.locator("#order-held")).to_contain_text("Partial: waiting for a refund decision")
    expect(page.locator("#order-anomalies")).to_contain_text("partial_without_remains")
    expect(page.locator("#order-submitted")).not_to_have_text("—")
    console.shot("order-held")

    page.get_by_label("Units not delivered", exact=True).fill("1000000")
    page.get_by_role("button", name="Settle order").click()
    expect(page.get_by_role("alert")).to_contain_text("a whole number from 0 to 100")
    page.get_by_label("Units not delivered", exact=True).fill("40")
    page.get_by_label("Note for the ledger (optional)").fill("panel shows 60 delivered")
    page.get_by_role("button", name="Settle order").click()
    page.get_by_role("dialog", name="Settle the order?").get_by_role("button", name="Settle order").click()
    expect(page.get_by_role("status")).to_contain_text(f"Order #{order_id} settled: Partial")
    expect(page.locator("#order-status")).to_contain_text("Partial")
    expect(page.locator("#order-held")).to_have_text("—")
    with admin(console) as api:
        settled = api.get(f"/orders/{order_id}").json()
        assert settled["order"]["refunded"] != "0.00"
        assert settled["ledger"][-1]["note"] == "settled by the operator: panel shows 60 delivered"
