"""Scale-out on one machine: two API processes and two workers on one Postgres and one upstream.

Postgres is the only coordination point: orders are sent once, followed by whichever worker
leases them, refunded once; no process' memory matters for correctness.
"""

from __future__ import annotations

import random
import threading
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import SimulatorThread
from tests.conftest import DatabaseRoute
from tests.factories import expected_refund, make_customer
from tests.operations.conftest import shop
from tests.processes import gateway, worker_process
from tests.reliability.conftest import wait_for
from tests.reliability.test_crash import Db

pytestmark = pytest.mark.slow

ORDERS = 200
CUSTOMERS = 4
THREADS = 8
FUNDS = Decimal("100")
TERMINAL = ("Completed", "Partial", "Canceled")

# A loaded machine (CI shares two cores between four gateway processes, the simulator, Postgres
# and the clients) must not turn a slow answer into an "unknown" order: this test is about
# coordination between processes, not about timeouts.
PATIENT = {"GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "15", "GATEWAY_SUBMITTING_STALE_SECONDS": "60"}


async def test_two_apis_and_two_workers_share_one_database(
    runtime: Runtime, database_url: str, database_route: DatabaseRoute, tmp_path: Path
) -> None:
    """On a direct connection, and through PgBouncer in transaction mode (``database_route``):
    four processes' connections share its few server connections."""
    db = Db(database_url)
    via = database_route
    # Fast enough that every order ends within seconds; some end Partial or Canceled.
    config = SimulatorConfig(speed=3000, partial_probability=0.25, cancel_probability=0.15, seed=7)
    with SimulatorThread(config) as sim, ExitStack() as processes:
        setup = await shop(runtime, sim, balance=str(FUNDS))
        keys = [setup.key] + [(await make_customer(runtime, balance=str(FUNDS)))[1] for _ in range(CUSTOMERS - 1)]
        apis = [
            processes.enter_context(gateway(via.url, tmp_path / f"api{i}.log", worker=False, **PATIENT, **via.env))
            for i in range(2)
        ]
        for i in range(2):
            processes.enter_context(worker_process(via.url, tmp_path / f"worker{i}.log", **PATIENT, **via.env))

        placed: list[int] = []  # every answer must be an order id
        failures: list[object] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            rng = random.Random(index)
            with httpx.Client(timeout=20) as http:
                for n in range(ORDERS // THREADS):
                    api = apis[(index + n) % len(apis)]
                    form = {
                        "key": keys[index % CUSTOMERS],
                        "action": "add",
                        "service": setup.service,
                        "link": f"https://instagram.com/scale{index}_{n}",
                        "quantity": rng.randrange(100, 1001),
                    }
                    answer = http.post(f"{api.url}/api/v2", data=form).json()
                    with lock:
                        (placed if "order" in answer else failures).append(answer.get("order", answer))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(placed) == ORDERS

        wait_for(
            lambda: (
                db.value("SELECT count(*) FROM orders WHERE status NOT IN ('Completed', 'Partial', 'Canceled')") == 0
            ),
            timeout=90,
            interval=0.25,
        )

    orders = db.fetch("SELECT id, state, status, upstream_order_id, charge, quantity, remains, refunded FROM orders")
    assert sorted(o["id"] for o in orders) == sorted(placed)
    assert {o["state"] for o in orders} == {"placed"}
    statuses = {o["status"] for o in orders}
    assert statuses == set(TERMINAL), statuses  # the refund paths were all taken

    # Exactly one upstream add per order: the simulator's orders are the database's, one to one.
    upstream = {view.order_id: view for view in sim.state.orders()}
    assert sim.request_count("add") == ORDERS
    assert len(upstream) == ORDERS
    assert sorted(o["upstream_order_id"] for o in orders) == sorted(upstream)
    for order in orders:
        assert upstream[order["upstream_order_id"]].status == order["status"]

    # Every refund applied once, and what the order's end calls for.
    refunds = {
        row["order_id"]: (row["entries"], row["amount"])
        for row in db.fetch(
            "SELECT order_id, count(*) AS entries, sum(amount) AS amount FROM ledger_entries"
            " WHERE kind = 'refund' GROUP BY order_id"
        )
    }
    for order in orders:
        expected = expected_refund(order["status"], order["charge"], order["quantity"], order["remains"])
        assert order["refunded"] == expected, order
        entries, amount = refunds.get(order["id"], (0, Decimal(0)))
        assert entries == (1 if expected > 0 else 0), order
        assert amount == expected

    # Every balance is its ledger; the books balance overall.
    db.check_money()
    deposits = db.value("SELECT sum(amount) FROM ledger_entries WHERE kind = 'deposit'")
    balances = db.value("SELECT sum(balance) FROM customers")
    net_charges = db.value("SELECT sum(charge - refunded) FROM orders")
    assert deposits == FUNDS * CUSTOMERS
    assert deposits == balances + net_charges
