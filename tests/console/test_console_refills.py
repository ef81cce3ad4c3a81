"""The console's refills page in headless Chromium against a real gateway process (with its worker):
two refills whose answer never came back, one resolved as placed (and then followed by the worker to
Completed), one as failed (the customer sees Rejected)."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.simulator.faults import FaultRule
from tests.console.conftest import ADMIN_TOKEN, Console
from tests.console.test_console_browser import admin, assert_token_stayed_in_the_tab, expect, nav, place_order, sign_in
from tests.processes import wait_for

pytestmark = pytest.mark.slow


def completed_order(console: Console, link: str) -> tuple[int, int]:
    """An order of the refill-enabled service, completed upstream: (id, upstream order id)."""
    order_id = place_order(console, console.live.key, link)
    with admin(console) as api:
        upstream_order_id = api.get(f"/orders/{order_id}").json()["order"]["upstream_order_id"]
        console.live.sim.state.force_order(upstream_order_id, "Completed")
        wait_for(lambda: api.get(f"/orders/{order_id}").json()["order"]["status"] == "Completed", timeout=30)
    return order_id, upstream_order_id


def refill(console: Console, order_id: int, fault: FaultRule) -> int:
    """A refill request whose answer is lost to ``fault``: the gateway's refill id."""
    console.live.sim.set_faults(fault)
    try:
        answer = httpx.post(
            console.live.api,
            data={"key": console.live.key, "action": "refill", "order": str(order_id)},
            timeout=30,
        ).json()
    finally:
        console.live.sim.clear_faults()
    assert "refill" in answer, answer
    return int(answer["refill"])


def refill_status(console: Console, refill_id: int) -> object:
    return httpx.post(
        console.live.api,
        data={"key": console.live.key, "action": "refill_status", "refill": str(refill_id)},
        timeout=30,
    ).json()


def test_an_operator_resolves_unknown_refills_from_the_console(console: Console) -> None:
    page = console.page
    placed_order, placed_upstream_order = completed_order(console, "https://instagram.com/refill-a")
    failed_order, _ = completed_order(console, "https://instagram.com/refill-b")
    # The upstream took this one, but its answer was cut off.
    arrived = refill(console, placed_order, FaultRule(kind="drop", action="refill", when="after"))
    # This one never got an answer at all.
    lost = refill(console, failed_order, FaultRule(kind="hang", action="refill"))
    assert refill_status(console, arrived) == {"status": "Pending"}

    console.go("#/dashboard")
    sign_in(console)
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.locator("#count-unknown-refills .value")).to_have_text("2")
    nav(console, "Refills")
    expect(page).to_have_url(re.compile(r"#/refills$"))
    expect(page.get_by_role("heading", name="Refills", level=1)).to_be_visible()
    expect(page.get_by_label("State")).to_have_value("unknown")
    rows = page.locator("#refills-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"#{failed_order}")  # newest first
    expect(rows.get_by_role("link", name=f"Order {placed_order}", exact=True)).to_have_attribute(
        "href", f"#/orders/{placed_order}"
    )
    console.shot("refills")

    # Placed: the operator found it upstream.
    rows.get_by_role("link", name=f"Refill {arrived}", exact=True).click()
    expect(page.get_by_role("heading", name=f"Refill #{arrived}")).to_be_visible()
    expect(page.locator("#refill-state")).to_have_text("unknown")
    expect(page.locator("#refill-upstream-order-id")).to_have_text(str(placed_upstream_order))
    expect(page.locator("#refill-calls")).to_contain_text("unknown")  # the refill call, attributed to it
    console.shot("refill")
    upstream_id = page.get_by_label("Upstream refill ID")
    upstream_id.fill("12x")
    page.get_by_role("button", name="Resolve refill").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the upstream refill ID")
    expect(upstream_id).to_have_attribute("aria-invalid", "true")
    expect(upstream_id).to_be_focused()
    upstream_refill_id = console.live.sim.state.refills_of(placed_upstream_order)[0].refill_id
    # Done upstream already: the worker's first check after the resolve (at once) sees it.
    console.live.sim.state.force_refill(upstream_refill_id, "Completed")
    upstream_id.fill(str(upstream_refill_id))
    page.get_by_role("button", name="Resolve refill").click()
    expect(page.get_by_role("status")).to_contain_text(f"Refill #{arrived} resolved: placed")
    expect(page.locator("#refill-state")).to_have_text("placed")
    expect(page.locator("#refill-upstream-id")).to_have_text(str(upstream_refill_id))
    expect(page.get_by_role("button", name="Resolve refill")).to_have_count(0)
    wait_for(lambda: refill_status(console, arrived) == {"status": "Completed"}, timeout=30)
    console.go(f"#/refills/{arrived}")
    expect(page.locator("#refill-status")).to_have_text("Completed")

    # Failed: nothing arrived upstream; asked to confirm, then Rejected for the customer.
    page.get_by_role("link", name="← Refills").click()
    rows = page.locator("#refills-table tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=f"Refill {lost}", exact=True).click()
    expect(page.locator("#refill-state")).to_have_text("unknown")
    page.get_by_label(re.compile("It was not placed")).check()
    expect(page.get_by_label("Upstream refill ID")).to_be_disabled()
    page.get_by_role("button", name="Resolve refill").click()
    confirm = page.get_by_role("dialog", name="Mark the refill failed?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#refill-state")).to_have_text("unknown")  # nothing sent
    page.get_by_role("button", name="Resolve refill").click()
    page.get_by_role("dialog", name="Mark the refill failed?").get_by_role("button", name="Mark failed").click()
    expect(page.get_by_role("status")).to_contain_text(f"Refill #{lost} resolved: failed")
    expect(page.locator("#refill-state")).to_have_text("failed")
    expect(page.locator("#refill-status")).to_have_text("Rejected")
    assert refill_status(console, lost) == {"status": "Rejected"}

    # Nothing waits any more; every state is one choice away.
    nav(console, "Refills")
    expect(page.locator("#refills-table")).to_contain_text("No refill waits for the operator.")
    page.get_by_label("State").select_option("all")
    page.get_by_role("button", name="Apply filter").click()
    expect(page).to_have_url(re.compile(r"#/refills\?state=all$"))
    expect(page.locator("#refills-table tbody tr")).to_have_count(2)
    with admin(console) as api:
        audit = api.get("/audit", params={"entity": "refill"}).json()
    assert sorted((a["entity_id"], a["after"]["state"]) for a in audit) == sorted(
        [(str(arrived), "placed"), (str(lost), "failed")]
    )
    assert_token_stayed_in_the_tab(console, ADMIN_TOKEN)
