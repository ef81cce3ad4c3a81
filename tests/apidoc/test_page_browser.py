"""The customers' API page in headless Chromium, served by a real ``gateway serve``: every action and
every service type is on it, its policy blocks nothing it needs, the console links to it, and its
download links give the clients with this gateway's endpoint in them.

``API_PAGE_SCREENSHOT=docs/api-page.png`` also saves the screenshot the README shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway import errors
from gateway.orders.validation import SERVICE_TYPES
from gateway.v2.actions import ACTIONS
from tests.clients.conftest import LiveGateway
from tests.console.conftest import ADMIN_TOKEN, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PANEL_NAME = "Acme SMM API"
SCREENSHOT_ENV = "API_PAGE_SCREENSHOT"
# The forms of each action the page documents (status for one order and for many, ...).
FORMS = {"services": 1, "add": 1, "status": 2, "refill": 2, "refill_status": 2, "cancel": 1, "balance": 1}


@pytest.fixture
def live_env() -> dict[str, str]:
    return {"GATEWAY_PANEL_NAME": PANEL_NAME}


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions, imported late: the fixtures install playwright when missing."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def page(live: LiveGateway, browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live.proc.url, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # A resource the policy blocks is reported on the console as an error.
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    try:
        yield tab, problems
    finally:
        context.close()


def test_the_api_page_in_chromium(live: LiveGateway, page: tuple[Page, list[str]], tmp_path: Path) -> None:
    tab, problems = page
    tab.goto("/api")
    expect(tab).to_have_title(PANEL_NAME)
    expect(tab.get_by_role("heading", name=PANEL_NAME, level=1)).to_be_visible()
    expect(tab.locator("#endpoint-url")).to_have_text(live.api)

    # Styled by the console's stylesheet and its own, under the page's policy.
    assert tab.evaluate("() => document.styleSheets.length") == 2
    header = tab.evaluate("() => getComputedStyle(document.querySelector('header.top')).backgroundColor")
    assert header == "rgb(26, 77, 143)"

    # Every action, each of its forms with parameters, an example call and an example answer.
    assert set(FORMS) == set(ACTIONS)
    for action, forms in FORMS.items():
        sections = tab.locator(f'section[data-action="{action}"]')
        expect(sections).to_have_count(forms)
        for index in range(forms):
            section = sections.nth(index)
            expect(section.get_by_role("heading", level=3)).to_contain_text(f"action={action}")
            expect(section.locator("table.params")).to_contain_text("key")
            expect(section.locator("pre[id^=call-]")).to_contain_text(f"-d action={action}")
            json.loads(section.locator("pre[id^=answer-]").inner_text())
        expect(tab.get_by_role("navigation", name="Sections")).to_be_visible()

    # Every service type, with the fields the validation asks for.
    rows = tab.locator("table.types tbody tr")
    expect(rows).to_have_count(len(SERVICE_TYPES))
    for index, (name, spec) in enumerate(SERVICE_TYPES.items()):
        cells = rows.nth(index).locator("td")
        expect(cells.nth(0)).to_have_text(name)
        expect(cells.nth(1)).to_have_text(", ".join(spec.required))
        expect(cells.nth(2)).to_have_text(", ".join(spec.optional) or "–")

    # The exact error strings, and the idempotency extension's.
    error_table = tab.locator("table.errors")
    for name, value in vars(errors).items():
        if name.isupper() and isinstance(value, str):
            expect(error_table).to_contain_text(value)
    idempotency = tab.locator("#idempotency-section")
    expect(idempotency).to_contain_text("Idempotency-Key")
    expect(idempotency).to_contain_text("Idempotency key reused with different parameters")
    expect(idempotency).to_contain_text("Incorrect idempotency key")

    # The section links work, and a keyboard user can skip to the content.
    tab.get_by_role("navigation", name="Sections").get_by_role("link", name="Service types").click()
    expect(tab.locator("#service-types")).to_be_in_viewport()

    # Both clients download with this gateway's endpoint in them.
    for name, line in (("example.php", f"public $api_url = '{live.api}';"), ("example.py", f'API_URL = "{live.api}"')):
        with tab.expect_download() as download:
            tab.get_by_role("link", name=f"Download {name}").click()
        assert download.value.suggested_filename == name
        saved = tmp_path / name
        download.value.save_as(saved)
        assert line in saved.read_text()

    assert not problems, problems
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        path = Path(target) if Path(target).is_absolute() else ROOT / target
        tab.evaluate("() => window.scrollTo(0, 0)")
        tab.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1280, "height": 1500}, full_page=True)


def test_the_console_links_to_the_api_page(live: LiveGateway, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    tab.goto("/console/")
    tab.get_by_label("Admin token").fill(ADMIN_TOKEN)
    tab.get_by_role("button", name="Sign in").click()
    nav = tab.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    nav.get_by_role("link", name="API page", exact=True).click()
    expect(tab.get_by_role("heading", name=PANEL_NAME, level=1)).to_be_visible()
    assert tab.url == f"{live.proc.url}/api"
    # The dashboard's calls still in flight are cut off by leaving it; nothing else may go wrong.
    assert not [p for p in problems if p.startswith("page error")], problems
