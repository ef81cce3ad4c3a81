"""Kill tests under load: the API process and the worker are killed with SIGKILL at random moments
while clients place orders and the upstream completes, partially delivers and cancels them; they
are restarted each time. Afterwards the money adds up and every add the upstream received belongs
to exactly one placed or unknown order."""

from __future__ import annotations

import random
import signal
import threading
import time
from decimal import Decimal

import httpx
import pytest

from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import SimulatorThread
from tests.conftest import DatabaseRoute
from tests.factories import expected_refund
from tests.reliability.conftest import GatewayProcess, process_env
from tests.reliability.test_crash import Db, _prepare
from tests.test_cli import free_port

pytestmark = pytest.mark.slow

FOLLOWERS = 102


def _start_api(via: DatabaseRoute, port: int) -> GatewayProcess:
    proc = GatewayProcess(["serve", "--port", str(port), "--no-worker"], process_env(via.url, **via.env), port=port)
    proc.wait_ready()
    return proc


def _start_worker(via: DatabaseRoute) -> GatewayProcess:
    return GatewayProcess(["worker"], process_env(via.url, **via.env))


async def test_kill_api_and_worker_under_load(runtime, database_url: str, database_route: DatabaseRoute) -> None:  # type: ignore[no-untyped-def]
    """Directly, and through PgBouncer in transaction mode, where a killed process leaves its
    client connections (some inside a transaction) for PgBouncer to clean up."""
    db = Db(database_url)
    via = database_route
    config = SimulatorConfig(
        speed=3600, seed=5, partial_probability=0.3, cancel_probability=0.2, starting_balance=Decimal("1000000")
    )
    with SimulatorThread(config) as sim:
        key, service = await _prepare(runtime, sim)
        db.fetch("UPDATE customers SET balance = 10000")
        db.fetch("UPDATE ledger_entries SET amount = 10000, balance_after = 10000 WHERE kind = 'deposit'")
        port = free_port()
        api = _start_api(via, port)
        worker = _start_worker(via)
        stop = threading.Event()

        # Every logical add carries its own idempotency key and is retried with that key until it
        # gets an answer, as a careful client does when the API dies under it: one order per key.
        answers: dict[str, list[object]] = {}

        def load(worker_index: int) -> None:
            with httpx.Client(timeout=10) as client:
                for n in range(10**6):
                    if stop.is_set():
                        return
                    key_value = f"load-{worker_index}-{n}"
                    for _ in range(200):  # an answer, or the test is over
                        if stop.is_set():
                            return
                        try:
                            response = client.post(
                                f"http://127.0.0.1:{port}/api/v2",
                                data={
                                    "key": key,
                                    "action": "add",
                                    "service": service,
                                    "link": "https://i.com/k",
                                    "quantity": 100,
                                },
                                headers={"Idempotency-Key": key_value},
                            )
                            answer = response.json()
                        except (httpx.TransportError, ValueError):
                            time.sleep(0.05)  # the API is down or restarting
                            continue
                        answers.setdefault(key_value, []).append(answer)
                        if answer != {"error": "Service temporarily unavailable, try again later"}:
                            break

        clients = [threading.Thread(target=load, args=(index,)) for index in range(4)]
        for thread in clients:
            thread.start()
        rng = random.Random(9)
        kills = 0
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.5, 2.0))
                if rng.random() < 0.5:
                    api.process.send_signal(signal.SIGKILL)
                    api.process.wait()
                    api = _start_api(via, port)
                else:
                    worker.process.send_signal(signal.SIGKILL)
                    worker.process.wait()
                    worker = _start_worker(via)
                kills += 1
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        assert kills >= 5
        placed_answers = [a for given in answers.values() for a in given if isinstance(a, dict) and "order" in a]
        assert len(placed_answers) > 20
        # However often a key was sent, it got one order id.
        for key_value, given in answers.items():
            ids = {a["order"] for a in given if isinstance(a, dict) and "order" in a}  # type: ignore[index]
            assert len(ids) <= 1, (key_value, given)

        # Let the survivors finish: stale sends become unknown, everything else ends upstream.
        def settled() -> bool:
            return (
                db.value(
                    "SELECT count(*) FROM orders WHERE state IN ('queued', 'submitting')"
                    " OR (state = 'placed' AND status NOT IN ('Completed', 'Partial', 'Canceled'))"
                )
                == 0
            )

        try:
            end = time.monotonic() + 60
            while not settled():
                assert time.monotonic() < end, "orders did not settle"
                # Never wait on a row the worker holds: a test that locks many rows while the worker
                # locks some is how a deadlock made this test fail one run in ten.
                db.fetch(
                    "UPDATE orders SET next_check_at = now() WHERE id IN (SELECT id FROM orders"
                    " WHERE state = 'placed' AND next_check_at > now() FOR UPDATE SKIP LOCKED)"
                )
                time.sleep(0.5)
        finally:
            api.stop()
            worker.stop()

        db.check_money()
        orders = db.fetch(
            "SELECT id, state, status, charge, refunded, quantity, remains, upstream_order_id FROM orders"
        )
        # One order per key, and the key's order is the one its calls were answered with.
        keyed = {row["key"]: row["order_id"] for row in db.fetch("SELECT key, order_id FROM idempotent_requests")}
        assert len(keyed) == len(orders) == len(set(keyed.values()))
        for key_value, given in answers.items():
            for answer in given:
                if isinstance(answer, dict) and "order" in answer:
                    assert keyed[key_value] == answer["order"]
        # Every order the API answered with an id exists.
        assert {a["order"] for a in placed_answers} <= {o["id"] for o in orders}  # type: ignore[index]
        for order in orders:
            assert order["refunded"] == expected_refund(
                order["status"], order["charge"], order["quantity"], order["remains"]
            ), order
        placed = [o["upstream_order_id"] for o in orders if o["upstream_order_id"] is not None]
        unknown = sum(1 for o in orders if o["state"] == "unknown")
        assert len(placed) == len(set(placed))
        received = sim.request_count("add")
        # Never sent twice: each add that arrived is a placed order or one whose outcome is unknown.
        assert len(placed) <= received <= len(placed) + unknown
        assert {o.order_id for o in sim.state.orders()} >= set(placed)
