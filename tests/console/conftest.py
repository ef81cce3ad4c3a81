"""Headless Chromium driven by Playwright against a real ``gateway serve`` process.

The browser is Debian's ``chromium`` (installed with apt-get when missing and we are root), never a
Playwright-downloaded build; the ``playwright`` package is pip-installed when missing. Where neither
can be had, the browser tests skip and say why.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.clients.conftest import LiveGateway, live, live_env  # noqa: F401 - the live gateway fixtures, reused

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request

ADMIN_TOKEN = "reliability-admin-token-0123456789abcdef"  # what tests.reliability.conftest.process_env configures
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS_DIR"
# Form controls and buttons that a screen reader could not name.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.type !== "hidden")
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
    && !el.getAttribute("aria-labelledby") && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map((el) => el.id || el.outerHTML)"""
ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (as root)."""
    path = _chromium()
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, env=env, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=1200, env=env, check=False
        )
        path = _chromium()
    if path is None:
        pytest.skip("chromium is not installed and could not be installed here (no root apt-get)")
    return path


def ensure_playwright() -> None:
    """The playwright package (its driver only; the browser is Debian's), pip-installed when missing."""
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True, text=True, timeout=600
        )
        importlib.invalidate_caches()
        try:
            importlib.import_module("playwright.sync_api")
        except ImportError:
            pytest.skip(f"the playwright package could not be installed: {done.stderr.strip()[-300:]}")


@dataclass
class Traffic:
    """Everything the browser asked for and every URL it visited, to check where the token went."""

    urls: list[str] = field(default_factory=list)
    authorized: list[tuple[str, str]] = field(default_factory=list)  # (url, authorization header)
    bodies: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # console errors, page errors, CSP reports

    def record(self, request: Request) -> None:
        self.urls.append(request.url)
        authorization = request.headers.get("authorization")
        if authorization:
            self.authorized.append((request.url, authorization))
        if request.post_data:
            self.bodies.append(request.post_data)


@dataclass
class Console:
    live: LiveGateway
    page: Page
    context: BrowserContext
    traffic: Traffic
    screenshots: Path | None

    @property
    def url(self) -> str:
        return f"{self.live.proc.url}/console/"

    def go(self, route: str) -> None:
        """Open a console route (``#/orders?state=unknown``), reloading when it is the current one."""
        target = self.url + route
        if self.page.url == target:
            self.page.reload()
        else:
            self.page.goto(target)

    def shot(self, name: str, *, selector: str | None = None, full_page: bool = True) -> None:
        """Check the page's basic accessibility, then save a screenshot (of the page, or of one
        element) when screenshots were asked for."""
        assert self.page.evaluate(UNLABELLED) == [], f"controls without a label on {name}"
        assert self.page.evaluate("() => document.querySelectorAll('main h1').length") == 1, name
        if self.screenshots is None:
            return
        path = str(self.screenshots / f"{name}.png")
        if selector is not None:
            self.page.locator(selector).screenshot(path=path)
        else:
            self.page.screenshot(path=path, full_page=full_page)


@pytest.fixture
def chromium() -> str:
    """The browser and the driver, installed if need be, before anything else starts."""
    executable = ensure_chromium()
    ensure_playwright()
    return executable


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    """Launched after the async fixtures are set up: Playwright's sync API runs its own event loop."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def console(chromium: str, live: LiveGateway, browser: Browser) -> Iterator[Console]:  # noqa: F811 - imported above
    target = os.environ.get(SCREENSHOTS_ENV)
    screenshots = None
    if target:
        screenshots = (ROOT / target) if not Path(target).is_absolute() else Path(target)
        screenshots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live.proc.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.proc.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    traffic = Traffic()
    page.on("request", traffic.record)
    page.on("framenavigated", lambda frame: traffic.urls.append(frame.url))
    page.on("pageerror", lambda error: traffic.problems.append(f"page error: {error}"))

    def on_console(message: Any) -> None:
        # A refused request is logged by the browser itself; the tests check those answers directly.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            traffic.problems.append(f"console error: {message.text}")

    page.on("console", on_console)
    try:
        yield Console(live, page, context, traffic, screenshots)
    finally:
        context.close()
