"""A load harness for the money: many customers, concurrent clients, a worker, an upstream whose
orders end Completed, Partial or Canceled — and the invariants checked while it all runs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from gateway.app import create_app
from gateway.catalog.sync import sync_provider
from gateway.orders.sync import check_statuses, sweep
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import RunningSimulator, running_simulator
from gateway.worker import Worker
from tests.conftest import ADMIN_TOKEN, serving
from tests.factories import expected_refund, make_customer, make_provider

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Default-type services of the simulator's catalog: (upstream id, min quantity).
PLAIN_SERVICES = [(101, 50), (102, 100), (111, 10), (201, 100), (202, 50), (203, 100), (301, 500), (401, 100)]


@dataclass
class Bank:
    client: httpx.AsyncClient
    runtime: Runtime
    sim: RunningSimulator
    customers: list[tuple[int, str]]
    services: dict[int, int]
    rng: random.Random
    deposits: Decimal = Decimal(0)
    orders: dict[str, list[int]] = field(default_factory=dict)

    async def v2(self, key: str, **params: Any) -> Any:
        response = await self.client.post("/api/v2", data={"key": key, **{k: str(v) for k, v in params.items()}})
        assert response.status_code == 200, response.text
        return response.json()

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.runtime.engine.begin() as conn:
            await conn.execute(text(sql), params)

    # --- what clients do -------------------------------------------------------------------

    async def client_session(self, index: int, steps: int) -> None:
        customer_id, key = self.customers[index % len(self.customers)]
        mine = self.orders.setdefault(key, [])
        for _ in range(steps):
            roll = self.rng.random()
            if roll < 0.45:
                upstream, minimum = self.rng.choice(PLAIN_SERVICES)
                answer = await self.v2(
                    key,
                    action="add",
                    service=self.services[upstream],
                    link="https://i.com/p",
                    quantity=minimum * self.rng.randint(1, 20),
                )
                if "order" in answer:
                    mine.append(answer["order"])
                else:
                    assert answer["error"] in ("Not enough funds on balance",), answer
            elif roll < 0.65 and mine:
                ids = self.rng.sample(mine, min(len(mine), 5))
                answer = await self.v2(key, action="status", orders=",".join(map(str, ids)))
                assert len(answer) == len(ids)
            elif roll < 0.75 and mine:
                await self.v2(key, action="cancel", orders=str(self.rng.choice(mine)))
            elif roll < 0.85:
                amount = Decimal(self.rng.randint(1, 500)) / 100
                response = await self.client.post(
                    f"/admin/customers/{customer_id}/funds",
                    json={"amount": str(amount), "note": "top-up"},
                    headers=ADMIN,
                )
                assert response.status_code == 200
                self.deposits += amount
            else:
                balance = await self.v2(key, action="balance")
                assert Decimal(balance["balance"]) >= 0

    async def upstream_and_worker(self, stop: asyncio.Event, worker: Worker) -> None:
        """Time passes upstream; the worker dispatches, follows and refunds."""
        while not stop.is_set():
            self.sim.advance(self.rng.uniform(60, 900))
            await self.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")
            await self.execute("UPDATE orders SET next_attempt_at = now() WHERE state = 'queued'")
            await worker.dispatch_queued()
            await check_statuses(
                self.runtime.orders, self.runtime.providers, self.runtime.policy.status_sync_interval_seconds
            )
            await sweep(self.runtime.orders, self.runtime.policy)
            await asyncio.sleep(0.01)

    async def checker(self, stop: asyncio.Event) -> int:
        checks = 0
        while not stop.is_set():
            await self.check_invariants()
            checks += 1
            await asyncio.sleep(0.05)
        return checks

    # --- the invariants ----------------------------------------------------------------------

    async def check_invariants(self) -> None:
        async with self.runtime.engine.begin() as conn:
            # One snapshot for every figure: REPEATABLE READ.
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            negative = await conn.scalar(text("SELECT count(*) FROM customers WHERE balance < 0"))
            mismatched = await conn.scalar(
                text(
                    "SELECT count(*) FROM customers c WHERE c.balance <>"
                    " (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.customer_id = c.id)"
                )
            )
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind IN ('deposit', 'adjustment')) AS deposits,
                               (SELECT coalesce(sum(balance), 0) FROM customers) AS balances,
                               (SELECT coalesce(sum(charge - refunded), 0) FROM orders) AS net_charges,
                               (SELECT count(*) FROM orders WHERE refunded > charge) AS over_refunded
                        """
                    )
                )
            ).one()
        assert negative == 0
        assert mismatched == 0
        assert row.over_refunded == 0
        assert row.deposits == row.balances + row.net_charges, row

    async def settle(self, worker: Worker) -> None:
        """Let every order reach its end."""
        for _ in range(60):
            self.sim.advance(86400)
            await self.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")
            await self.execute("UPDATE orders SET next_attempt_at = now() WHERE state = 'queued'")
            await worker.dispatch_queued()
            await check_statuses(
                self.runtime.orders, self.runtime.providers, self.runtime.policy.status_sync_interval_seconds
            )
            await sweep(self.runtime.orders, self.runtime.policy)
            open_orders = await self.scalar(
                "SELECT count(*) FROM orders WHERE state IN ('placed', 'queued', 'submitting')"
                " AND status NOT IN ('Completed', 'Partial', 'Canceled')"
            )
            if open_orders == 0:
                return
            await asyncio.sleep(0.05)  # an open circuit cools down
        async with self.runtime.engine.connect() as conn:
            stuck = (
                await conn.execute(
                    text(
                        "SELECT id, state, status, status_raw, last_error, upstream_order_id, next_check_at, next_attempt_at FROM orders"
                        " WHERE state IN ('placed', 'queued', 'submitting') AND status NOT IN ('Completed', 'Partial', 'Canceled') LIMIT 5"
                    )
                )
            ).all()
        raise AssertionError(f"orders did not settle: {stuck}")

    async def check_final(self) -> None:
        """Every refund is what the ending says; the upstream has each placed order exactly once."""
        await self.check_invariants()
        assert (
            await self.scalar("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'deposit'")
            == self.deposits
        )
        async with self.runtime.engine.connect() as conn:
            orders = (
                await conn.execute(
                    text("SELECT id, state, status, charge, refunded, quantity, remains, upstream_order_id FROM orders")
                )
            ).all()
        for order in orders:
            assert order.refunded == expected_refund(order.status, order.charge, order.quantity, order.remains), order
        placed = [o.upstream_order_id for o in orders if o.upstream_order_id is not None]
        assert len(placed) == len(set(placed))
        upstream_orders = {o.order_id for o in self.sim.state.orders()}
        assert set(placed) <= upstream_orders
        unknown = sum(1 for o in orders if o.state == "unknown")
        assert len(placed) <= self.sim.request_count("add")
        # Every order the upstream created belongs to exactly one placed or unknown order: nothing
        # was placed twice (refused adds, which create nothing upstream, may be retried).
        assert len(upstream_orders) <= len(placed) + unknown


@asynccontextmanager
async def open_bank(
    settings: Settings, database_url: str, *, customers: int = 20, seed: int = 7, sim: SimulatorConfig | None = None
) -> AsyncIterator[Bank]:
    config = sim or SimulatorConfig(
        speed=0, seed=seed, partial_probability=0.3, cancel_probability=0.2, starting_balance=Decimal("1000000")
    )
    async with running_simulator(config) as simulator:
        app = create_app(settings, database_url=database_url)
        runtime: Runtime = app.state.runtime
        async with serving(app) as client:
            provider_id = await make_provider(runtime, api_url=simulator.url, api_key=simulator.api_key, name="sim")
            await sync_provider(runtime.sessions, runtime.providers, provider_id)
            people = [await make_customer(runtime, balance="20", name=f"c{i}") for i in range(customers)]
            async with runtime.engine.connect() as conn:
                services = dict((await conn.execute(text("SELECT upstream_service_id, id FROM services"))).all())
            bank = Bank(client, runtime, simulator, people, services, random.Random(seed), Decimal(20 * customers))
            yield bank
