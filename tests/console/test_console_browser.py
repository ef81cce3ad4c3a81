"""The operator console in headless Chromium against a real gateway process (with its worker) and
a simulated upstream: an operator's day, from sign-in to resolving an order whose outcome is unknown.

``CONSOLE_SCREENSHOTS_DIR=docs/console`` also saves screenshots of the main pages there.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.catalog.pricing import floor_rate
from gateway.money import HUNDRED, format_money, round_resale_rate
from gateway.simulator.faults import FaultRule
from tests.console.conftest import ADMIN_TOKEN, Console
from tests.orders.test_webhooks import Receiver, receiver, verify  # noqa: F401 - receiver is a fixture

pytestmark = pytest.mark.slow

SERVICE = 101  # the simulator's first service: refill and cancel, min 50
MIN_MARGIN = Decimal(10)  # the gateway's GATEWAY_MIN_MARGIN_PERCENT in these tests


@pytest.fixture
def live_env() -> dict[str, str]:
    """A pricing floor, so the markup preview has to apply it like the server."""
    return {"GATEWAY_MIN_MARGIN_PERCENT": str(MIN_MARGIN)}


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions, imported late: the fixtures install playwright when missing."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def admin(console: Console) -> httpx.Client:
    return httpx.Client(
        base_url=f"{console.live.proc.url}/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )


def place_order(console: Console, key: str, link: str) -> int:
    answer = httpx.post(
        console.live.api,
        data={
            "key": key,
            "action": "add",
            "service": str(console.live.services[SERVICE]),
            "link": link,
            "quantity": "100",
        },
        timeout=30,
    ).json()
    assert "order" in answer, answer
    return int(answer["order"])


def sign_in(console: Console, token: str = ADMIN_TOKEN) -> None:
    page = console.page
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def nav(console: Console, name: str) -> None:
    console.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    expect(console.page.locator("main h1")).to_be_visible()


def assert_token_stayed_in_the_tab(console: Console, token: str) -> None:
    traffic = console.traffic
    assert traffic.urls, "no traffic recorded"
    assert not [url for url in traffic.urls if token in url], "the token appeared in a URL"
    assert not [body for body in traffic.bodies if token in body], "the token was sent in a request body"
    for url, _authorization in traffic.authorized:
        assert url.startswith(f"{console.live.proc.url}/admin/"), f"a token went to {url}"
    assert (f"{console.live.proc.url}/admin/system", f"Bearer {token}") in traffic.authorized
    storage = console.page.evaluate("() => JSON.stringify(localStorage) + document.cookie")
    assert token not in storage
    assert not traffic.problems, traffic.problems


def test_an_operator_runs_the_gateway_from_the_console(console: Console) -> None:
    page = console.page
    console.page.goto(console.url)
    expect(page.get_by_label("Admin token")).to_be_visible()
    console.shot("sign-in")
    sign_in(console)

    # Dashboard, empty.
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.locator("#count-queued .value")).to_have_text("0")
    assert page.evaluate("() => sessionStorage.length") == 1

    # A customer: created in the console, the key read from the dialog it is shown once in.
    nav(console, "Customers")
    page.get_by_label("Name", exact=True).fill("Acme Reseller")
    page.get_by_role("button", name="Create customer").click()
    dialog = page.get_by_role("dialog", name="API key of Acme Reseller")
    expect(dialog).to_be_visible()
    key = dialog.locator("[data-secret=api-key]").inner_text().strip()
    assert len(key) >= 20
    dialog.get_by_role("button", name="Copy key").click()
    expect(dialog.get_by_text(re.compile("Copied to the clipboard|copy it by hand"))).to_be_visible()
    dialog.get_by_role("button", name="I have saved it").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#customers-table")).to_contain_text("Acme Reseller")
    console.shot("customers")
    page.locator("#customers-table").get_by_role("link", name="Acme Reseller").click()
    expect(page.get_by_role("heading", name="Customer Acme Reseller")).to_be_visible()
    customer_id = int(page.url.rsplit("/", 1)[1])

    # Funds, with a note, into the ledger.
    page.get_by_label("Amount").fill("50")
    page.get_by_label("Note").fill("first deposit")
    page.get_by_role("button", name="Record").click()
    expect(page.locator("#customer-balance")).to_have_text("50.00")
    expect(page.get_by_role("status")).to_contain_text("The balance is now 50.00")
    expect(page.locator("#ledger-table")).to_contain_text("first deposit")
    console.shot("customer")

    # An order through the customer API with that key.
    with admin(console) as api:
        order_id = place_order(console, key, "https://instagram.com/acme")
        charge = api.get(f"/orders/{order_id}").json()["order"]["charge"]
    nav(console, "Orders")
    expect(page.locator("#orders-table").get_by_role("link", name=f"Order {order_id}", exact=True)).to_be_visible()
    console.shot("orders")
    page.locator("#orders-table").get_by_role("link", name=f"Order {order_id}", exact=True).click()
    expect(page.get_by_role("heading", name=f"Order #{order_id}")).to_be_visible()
    expect(page.locator("#order-charge")).to_have_text(f"{charge} USD")
    expect(page.locator("#order-ledger")).to_contain_text("charge")

    # The dashboard counts it.
    nav(console, "Dashboard")
    today = page.locator("#summary-today")
    expect(today.locator("td").nth(0)).to_have_text("1")
    expect(today.locator("td").nth(1)).to_have_text(charge)
    expect(page.locator("#daily-chart rect.bar")).to_have_count(30)
    expect(page.locator("#balances")).to_contain_text("sim")
    page.get_by_role("button", name="Refresh balances from the upstreams").click()
    expect(page.get_by_role("status")).to_contain_text("Balances refreshed")
    console.shot("dashboard")

    # An order whose answer never comes back: unknown, waiting for the operator.
    console.live.sim.set_faults(FaultRule(kind="hang", action="add"))
    try:
        unknown_id = place_order(console, key, "https://instagram.com/acme-2")
    finally:
        console.live.sim.clear_faults()
    console.go("#/dashboard")
    expect(page.locator("#count-unknown .value")).to_have_text("1")
    page.locator("#count-unknown").click()
    expect(page).to_have_url(re.compile(r"#/orders\?state=unknown$"))
    rows = page.locator("#orders-table tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=f"Order {unknown_id}", exact=True).click()
    expect(page.locator("#order-state")).to_have_text("unknown")
    console.shot("order")
    page.get_by_label(re.compile("It was not placed")).check()
    page.get_by_role("button", name="Resolve order").click()
    confirm = page.get_by_role("dialog", name="Mark the order failed?")
    confirm.get_by_role("button", name="Mark failed and refund").click()
    expect(page.locator("#order-state")).to_have_text("failed")
    expect(page.get_by_role("status")).to_contain_text(f"Order #{unknown_id} resolved: failed")
    expect(page.locator("#order-refunded")).to_have_text(f"{charge} USD")
    with admin(console) as api:
        assert api.get(f"/orders/{unknown_id}").json()["order"]["state"] == "failed"
        # 50 deposited, two charges, one refunded.
        assert api.get(f"/customers/{customer_id}").json()["balance"] == format_money(Decimal(50) - Decimal(charge))

    # A new key, shown once; the old one stops working.
    console.go(f"#/customers/{customer_id}")
    page.get_by_role("button", name="Rotate API key").click()
    page.get_by_role("dialog", name="Rotate the API key?").get_by_role("button", name="Rotate key").click()
    dialog = page.get_by_role("dialog", name="New API key of Acme Reseller")
    new_key = dialog.locator("[data-secret=api-key]").inner_text().strip()
    dialog.get_by_role("button", name="I have saved it").click()
    assert new_key != key
    balance = httpx.post(console.live.api, data={"key": new_key, "action": "balance"}, timeout=30).json()
    assert balance["balance"] == format_money(Decimal(50) - Decimal(charge))
    assert "error" in httpx.post(console.live.api, data={"key": key, "action": "balance"}, timeout=30).json()

    # The catalog: cost, rate and margin side by side; a markup rule previewed, then saved.
    nav(console, "Catalog")
    services = page.locator("#services-table tbody tr")
    expect(services.first).to_be_visible()
    with admin(console) as api:
        first = api.get("/services").json()[0]
    page.get_by_label("Percent").fill("25")
    page.get_by_label("Fixed", exact=True).fill("0.01")
    cost = Decimal(first["cost_rate"])
    expected = format_money(
        max(round_resale_rate(cost * (HUNDRED + 25) / HUNDRED + Decimal("0.01")), floor_rate(cost, MIN_MARGIN))
    )
    preview = page.locator("#preview-table tbody tr").filter(has=page.get_by_role("cell", name=first["name"]))
    expect(preview.locator("td").nth(4)).to_have_text(expected)
    console.shot("catalog-markup", selector="#markup")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("prices were recomputed")
    expect(page.locator("#rules-table")).to_contain_text("25 %")
    expect(services.filter(has_text=first["name"]).first).to_contain_text(expected)
    page.evaluate("() => window.scrollTo(0, 0)")
    console.shot("catalog", full_page=False)
    with admin(console) as api:
        assert api.get(f"/services/{first['id']}").json()["rate"] == expected  # the preview was right
    page.get_by_role("button", name=f"Edit service {first['id']}", exact=True).click()
    edit = page.get_by_role("dialog", name=f"Edit service #{first['id']}")
    edit.get_by_label("Fixed rate per 1000").fill("9.99")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text(f"Service #{first['id']} saved")
    page.get_by_role("button", name=f"Clear the fixed rate of service {first['id']}").click()
    expect(page.get_by_role("status")).to_contain_text("now priced by markup:global")

    # A rule that would sell below the minimum margin: the preview shows the floor, as the server will.
    page.get_by_label("Scope").select_option("service")
    page.get_by_label("Target").fill(str(first["id"]))
    page.get_by_label("Percent").fill("0")
    page.get_by_label("Fixed", exact=True).fill("0")
    floor = format_money(floor_rate(cost, MIN_MARGIN))
    assert floor != format_money(round_resale_rate(cost)), "the floor must be what wins here"
    expect(page.locator("#preview-rule")).to_contain_text(f"never below cost × (1 + {MIN_MARGIN}/100)")
    expect(preview.locator("td").nth(4)).to_have_text(floor)
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("prices were recomputed")
    expect(services.filter(has_text=first["name"]).first).to_contain_text("margin floor")
    with admin(console) as api:
        priced = api.get(f"/services/{first['id']}").json()
        assert (priced["rate"], priced["margin_protected"]) == (floor, True)  # the preview was right
    page.get_by_role("button", name="Sync sim").click()
    expect(page.locator("#sync-summary")).to_contain_text("Sync of sim:")

    # Signing out forgets the token.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert_token_stayed_in_the_tab(console, ADMIN_TOKEN)


def test_a_refused_token_sends_the_operator_back_to_sign_in(console: Console) -> None:
    page = console.page
    with admin(console) as api:
        issued = api.post("/tokens", json={"name": "night shift"}).json()
    token = issued["token"]

    console.go("#/orders?state=queued")
    sign_in(console, "not-a-token")
    expect(page.get_by_role("alert").filter(has_text="The gateway refused this token.")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0

    page.get_by_label("Admin token").fill(token)
    page.get_by_label("Admin token").press("Enter")  # the keyboard is enough
    # Back where the operator was going.
    expect(page.get_by_role("heading", name="Orders", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/orders\?state=queued$"))

    with admin(console) as api:
        assert api.delete(f"/tokens/{issued['id']}").status_code == 204
    nav(console, "Customers")
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    expect(page.locator("#signin-message")).to_contain_text("refused the token")
    assert page.evaluate("() => sessionStorage.length") == 0
    assert_token_stayed_in_the_tab(console, token)


def test_an_operator_sets_failover_routes_and_sees_where_an_order_went(console: Console) -> None:
    page = console.page
    service = console.live.services[SERVICE]
    with admin(console) as api:
        customer = api.post("/customers", json={"name": "Routes Co", "balance": "20"}).json()
    console.go("#/catalog")
    sign_in(console)
    expect(page.get_by_role("heading", name="Catalog", level=1)).to_be_visible()

    # A failover route: the same provider's other Default service (102).
    page.get_by_role("button", name=f"Routes of service {service}", exact=True).click()
    dialog = page.get_by_role("dialog", name=f"Routes of service #{service}")
    expect(dialog.locator("#routes-table tbody tr")).to_have_count(1)
    dialog.get_by_role("button", name="Add a route").click()
    dialog.get_by_label("Upstream service ID").fill("102")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text(f"Service #{service}: 1 failover route(s) saved")
    with admin(console) as api:
        routes = api.get(f"/services/{service}/routes").json()
    assert [(r["priority"], r["upstream_service_id"], r["usable"]) for r in routes] == [
        (0, "101", True),
        (1, "102", True),
    ]

    # A bad route is refused inside the dialog, and nothing changes.
    page.get_by_role("button", name=f"Routes of service {service}", exact=True).click()
    dialog = page.get_by_role("dialog", name=f"Routes of service #{service}")
    expect(dialog.locator("#routes-table tbody tr")).to_have_count(2)
    dialog.get_by_role("button", name="Add a route").click()
    dialog.get_by_label("Upstream service ID").last.fill("121")  # Custom Comments: another type
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("this service sells Default")
    dialog.get_by_role("button", name="Cancel").click()
    with admin(console) as api:
        assert len(api.get(f"/services/{service}/routes").json()) == 2

    # The upstream no longer sells the first route's service: the order goes to the second at once.
    console.live.sim.set_faults(FaultRule(kind="error", action="add", error="Incorrect service ID", times=1))
    try:
        order_id = place_order(console, customer["api_key"], "https://instagram.com/routes")
    finally:
        console.live.sim.clear_faults()
    console.go(f"#/orders/{order_id}")
    expect(page.locator("#order-route")).to_have_text("1 (failover)")
    expect(page.locator("#order-routes-tried")).to_contain_text("service gone upstream: Incorrect service ID")
    expect(page.locator("#order-state")).to_have_text("placed")


def test_each_token_sees_only_the_actions_its_scope_allows(console: Console) -> None:
    page = console.page
    with admin(console) as api:
        reader = api.post("/tokens", json={"name": "auditor", "scope": "read"}).json()
        operator = api.post("/tokens", json={"name": "support", "scope": "operator"}).json()
    console.go("#/customers")
    sign_in(console, reader["token"])
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Create customer")).to_be_hidden()
    nav(console, "Catalog")
    expect(page.locator("#services-table tbody tr").first).to_be_visible()
    # The actions are on the page, hidden: a read token only looks.
    actions = page.locator("#services-table [data-needs=operator]")
    expect(actions.first).to_be_attached()
    expect(actions.first).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("^Routes of service")).first).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("^Sync "))).to_be_hidden()
    expect(page.get_by_text("Add a provider")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()

    sign_in(console, operator["token"])
    nav(console, "Customers")
    expect(page.get_by_role("button", name="Create customer")).to_be_visible()
    nav(console, "Catalog")
    expect(page.get_by_role("button", name=re.compile("^Sync ")).first).to_be_visible()
    expect(page.get_by_text("Add a provider")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()

    sign_in(console)
    nav(console, "Catalog")
    expect(page.get_by_text("Add a provider")).to_be_visible()


def test_an_operator_sets_up_a_customers_webhook_and_sends_a_test_event(console: Console, receiver: Receiver) -> None:  # noqa: F811
    page = console.page
    with admin(console) as api:
        customer = api.post("/customers", json={"name": "Hooked Co"}).json()
    console.go(f"#/customers/{customer['id']}")
    sign_in(console)
    expect(page.get_by_role("heading", name="Customer Hooked Co")).to_be_visible()
    expect(page.get_by_text("Off: the customer polls status.")).to_be_visible()
    page.get_by_label("Webhook URL").fill(receiver.url())
    page.get_by_role("button", name="Save webhook URL").click()
    expect(page.get_by_role("status")).to_contain_text(f"Webhooks go to {receiver.url()}")
    page.get_by_role("button", name="New signing secret").click()
    dialog = page.get_by_role("dialog", name="Webhook signing secret of Hooked Co")
    secret = dialog.locator("[data-secret]").inner_text().strip()
    assert secret.startswith("whsec_")
    dialog.get_by_role("button", name="I have saved it").click()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_role("status")).to_contain_text("Test event delivered (HTTP 200)")
    expect(page.locator("#webhook-deliveries")).to_contain_text("webhook.test")
    (got,) = receiver.received
    assert verify(secret, got)
