"""The customers' API page against a real gateway process: the live gateway of tests/clients (a synced
simulator, a funded customer) and the headless Chromium of tests/console."""

from __future__ import annotations

from tests.clients.conftest import LiveGateway, live, live_env  # noqa: F401 - the live gateway fixtures, reused
from tests.console.conftest import browser, chromium  # noqa: F401 - Debian's chromium through Playwright
