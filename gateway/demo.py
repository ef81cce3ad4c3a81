"""``gateway demo``: the whole gateway on one machine, ready to try.

One command brings up the embedded Postgres (unless ``GATEWAY_DATABASE_URL`` is set), a simulated
upstream panel on a loopback port, a provider for it (``demo-simulator``) with a synced catalog, a
global markup rule, a funded ``demo`` customer, and the API with the worker in-process; then it
prints the API URL, the customer key, the admin token and ``curl`` commands to paste.

A second run reuses the data: the provider is pointed at the new simulator's port, the customer
stays, and its key is read back from ``GATEWAY_DATA_DIR/demo-customer-key`` (mode 0600; the admin
token sits next to it in ``demo-admin-token``). Ctrl-C or SIGTERM stops everything: uvicorn
finishes the requests in flight, the worker its step, then the simulator and the embedded Postgres
stop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import create_app
from gateway.catalog.providers import ProviderChanges, create_provider, update_provider, validate_key, validate_url
from gateway.catalog.services import create_markup_rule
from gateway.catalog.sync import sync_provider
from gateway.db import migrate, resolve_database_url
from gateway.ledger.customers import create_customer, rotate_key
from gateway.ledger.keys import hash_key
from gateway.models import Customer, MarkupRule, Provider
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import SimulatorThread

T = TypeVar("T")

DEMO_PROVIDER = "demo-simulator"
DEMO_CUSTOMER = "demo"
DEMO_FUNDS = Decimal("100.00")
DEMO_MARKUP_PERCENT = "25"
DEMO_LINK = "https://instagram.com/demo"
SIMULATOR_SPEED = 60.0
DEMO_STATUS_SYNC_SECONDS = 5.0
ADMIN_TOKEN_FILE = "demo-admin-token"  # noqa: S105 - a file name
CUSTOMER_KEY_FILE = "demo-customer-key"
# pg_advisory_xact_lock key: two demos starting on one database set up the data once.
DEMO_LOCK = 726354103

EXIT_FAILURE = 1


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to a file only its owner can read (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    path.chmod(0o600)


def admin_token(settings: Settings) -> str:
    """The demo's admin token: the configured one, or one generated once and kept in the data dir."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.data_dir / ADMIN_TOKEN_FILE
    token = read_secret(path)
    if token is None:
        token = "adm_" + secrets.token_urlsafe(24)
        write_secret(path, token)
    return token


@dataclass(frozen=True, slots=True)
class DemoData:
    provider_id: int
    customer_key: str
    service_id: int | None
    quantity: int


async def next_upstream_ids(runtime: Runtime) -> tuple[int, int]:
    """First order and refill ids for this run's simulator: past every id earlier runs handed out,
    so an old order is never mistaken for a new simulator's order with the same number."""
    async with runtime.engine.connect() as conn:
        order = await conn.scalar(
            text(
                "SELECT coalesce(max(o.upstream_order_id), 0) FROM orders o"
                " JOIN providers p ON p.id = o.provider_id WHERE p.name = :name"
            ),
            {"name": DEMO_PROVIDER},
        )
        refill = await conn.scalar(
            text(
                "SELECT coalesce(max(r.upstream_refill_id), 0) FROM refills r"
                " JOIN providers p ON p.id = r.provider_id WHERE p.name = :name"
            ),
            {"name": DEMO_PROVIDER},
        )
    return max(10_001, int(order or 0) + 1), max(5_001, int(refill or 0) + 1)


async def _demo_provider(session: AsyncSession, api_url: str, api_key: str) -> int:
    changes = ProviderChanges(
        name=DEMO_PROVIDER, api_url=validate_url(api_url, allow_private=True), api_key=validate_key(api_key)
    )
    provider = (await session.scalars(select(Provider).where(Provider.name == DEMO_PROVIDER))).first()
    if provider is None:
        provider = await create_provider(session, changes)
    elif provider.api_url != changes.api_url or provider.api_key != changes.api_key or not provider.enabled:
        # The simulator listens on a new port each run.
        changes = ProviderChanges(api_url=changes.api_url, api_key=changes.api_key, enabled=True)
        provider = await update_provider(session, provider, changes)
    return provider.id


async def _global_markup(session: AsyncSession) -> None:
    existing = await session.scalar(select(func.count()).select_from(MarkupRule).where(MarkupRule.scope == "global"))
    if not existing:
        await create_markup_rule(session, "global", None, DEMO_MARKUP_PERCENT, "0")


async def _demo_customer(session: AsyncSession, stored_key: str | None) -> str:
    """The demo customer's key: the stored one while it still works; a rotated one when the key
    file was lost; a new customer (with funds) the first time."""
    if stored_key is not None:
        found = await session.scalar(select(Customer.id).where(Customer.api_key_hash == hash_key(stored_key)))
        if found is not None:
            return stored_key
    existing = await session.scalar(
        select(Customer.id).where(Customer.name == DEMO_CUSTOMER).order_by(Customer.id).limit(1)
    )
    if existing is not None:
        return await rotate_key(session, existing)
    created = await create_customer(
        session, name=DEMO_CUSTOMER, balance=DEMO_FUNDS, dialect=None, discount_percent=Decimal(0), actor="demo"
    )
    return created.api_key


async def _sample_service(runtime: Runtime, provider_id: int) -> tuple[int | None, int]:
    """A cheap plain (link + quantity) service to show ``add`` with, and a quantity it accepts."""
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT id, coalesce(min_override, upstream_min) AS low, coalesce(max_override, upstream_max) AS high"
                    " FROM services WHERE provider_id = :p AND type = 'Default' AND enabled AND upstream_present"
                    " ORDER BY upstream_rate, id LIMIT 1"
                ),
                {"p": provider_id},
            )
        ).first()
    if row is None:
        return None, 0
    return int(row.id), min(max(1000, int(row.low)), int(row.high))


async def prepare(runtime: Runtime, simulator_url: str, simulator_key: str, key_path: Path) -> DemoData:
    """Provider, markup rule and customer (created once, in one transaction), then the catalog sync."""
    stored_key = read_secret(key_path)
    async with runtime.sessions() as session, session.begin():
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DEMO_LOCK})
        provider_id = await _demo_provider(session, simulator_url, simulator_key)
        await _global_markup(session)
        customer_key = await _demo_customer(session, stored_key)
    if customer_key != stored_key:
        write_secret(key_path, customer_key)
    await sync_provider(runtime.sessions, runtime.providers, provider_id)
    service_id, quantity = await _sample_service(runtime, provider_id)
    return DemoData(provider_id, customer_key, service_id, quantity)


async def _with_runtime(settings: Settings, database_url: str, work: Callable[[Runtime], Awaitable[T]]) -> T:
    runtime = Runtime.build(settings, database_url)
    try:
        return await work(runtime)
    finally:
        await runtime.aclose()


def listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything is printed: connections made as soon as
    the URL shows wait in the backlog instead of failing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    return sock


def banner(base: str, token: str, demo: DemoData, simulator_url: str, settings: Settings) -> str:
    api = f"{base}/api/v2"
    key = demo.customer_key
    lines = [
        "SMM reseller gateway: demo",
        f"  API URL       {api}",
        f"  API page      {base}/api (what to send customers: every action, example clients)",
        f"  customer key  {key}",
        f"  console       {base}/console/ (the operator's console: sign in with the admin token)",
        f"  admin token   {token}",
        f"  upstream      {DEMO_PROVIDER}: a simulated panel at {simulator_url} ({SIMULATOR_SPEED:g}x speed)",
        f"  data          {settings.data_dir} (a second run reuses it)",
        "",
        "Try:",
        f"  curl -s {api} -d key={key} -d action=services",
        f"  curl -s {api} -d key={key} -d action=balance",
    ]
    if demo.service_id is not None:
        lines.append(
            f"  curl -s {api} -d key={key} -d action=add -d service={demo.service_id}"
            f" -d link={shlex.quote(DEMO_LINK)} -d quantity={demo.quantity}"
        )
        lines.append(f"  curl -s {api} -d key={key} -d action=status -d order=ORDER_ID")
    lines += [
        f"  curl -s -H 'Authorization: Bearer {token}' {base}/admin/orders",
        f"  curl -s {base}/metrics",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines) + "\n"


def run_demo(settings: Settings, port: int | None) -> int:
    """``gateway demo``: set up, print how to use it, serve until Ctrl-C / SIGTERM."""
    token = admin_token(settings)
    updates: dict[str, object] = {
        "admin_token": SecretStr(token),
        "allow_private_upstreams": True,
        "serve_worker": True,
    }
    if "status_sync_interval_seconds" not in settings.model_fields_set:
        # Simulated orders move a minute per second: poll often enough to watch them move.
        updates["status_sync_interval_seconds"] = DEMO_STATUS_SYNC_SECONDS
    settings = settings.model_copy(update=updates)
    database_url = resolve_database_url(settings)
    migrate(database_url, settings.database_pooler)
    port = port or settings.port
    try:
        sock = listen(settings.host, port)
    except OSError as exc:
        sys.stderr.write(f"gateway demo: cannot listen on {settings.host}:{port}: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    base = f"http://[{shown_host}]:{port}" if ":" in shown_host else f"http://{shown_host}:{port}"
    with sock:
        first_order_id, first_refill_id = asyncio.run(_with_runtime(settings, database_url, next_upstream_ids))
        config = SimulatorConfig(speed=SIMULATOR_SPEED, first_order_id=first_order_id, first_refill_id=first_refill_id)
        with SimulatorThread(config) as simulator:
            key_path = settings.data_dir / CUSTOMER_KEY_FILE

            async def setup(runtime: Runtime) -> DemoData:
                return await prepare(runtime, simulator.url, simulator.api_key, key_path)

            demo = asyncio.run(_with_runtime(settings, database_url, setup))
            sys.stdout.write(banner(base, token, demo, simulator.url, settings))
            sys.stdout.flush()
            app = create_app(settings, database_url=database_url)
            server = uvicorn.Server(
                uvicorn.Config(
                    app, log_config=None, access_log=False, log_level="warning", timeout_graceful_shutdown=10
                )
            )
            server.run(sockets=[sock])
    return 0
