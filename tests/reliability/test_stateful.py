"""A hypothesis state machine drives the v2 API (and admin deposits) of a real gateway process and
compares it, step by step, with a simple in-memory model of balances and orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test

from gateway.money import charge_for
from gateway.runtime import Runtime
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.runner import SimulatorThread
from tests.conftest import DatabaseRoute
from tests.reliability.conftest import gateway
from tests.reliability.test_crash import Db, _prepare

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": "Bearer reliability-admin-token-0123456789abcdef"}
START_BALANCE = Decimal("2.00")


async def test_v2_against_a_model(runtime: Runtime, database_url: str, database_route: DatabaseRoute) -> None:
    """The gateway process on a direct connection, and through PgBouncer in transaction mode."""
    with SimulatorThread(SimulatorConfig(speed=0)) as sim:
        first_key, service_id = await _prepare(runtime, sim)
        with gateway(database_route.url, worker=False, **database_route.env) as proc:
            http = httpx.Client(base_url=proc.url, timeout=30)
            second = http.post("/admin/customers", json={"name": "second", "balance": "3"}, headers=ADMIN).json()
            customers = [
                (int(Db(database_url).value("SELECT id FROM customers WHERE name = 'customer'")), first_key),
                (int(second["id"]), second["api_key"]),
            ]
            listing = http.post("/api/v2", data={"key": first_key, "action": "services"}).json()
            service = next(s for s in listing if s["service"] == service_id)
            rate, minimum = Decimal(service["rate"]), int(service["min"])
            run_state_machine_as_test(
                lambda: make_machine(http, customers, service_id, rate, minimum)(),
                settings=settings(
                    max_examples=15, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
                ),
            )
            Db(database_url).check_money()


def make_machine(
    http: httpx.Client, customers: list[tuple[int, str]], service_id: int, rate: Decimal, minimum: int
) -> type[RuleBasedStateMachine]:
    def v2(key: str, **params: Any) -> Any:
        response = http.post("/api/v2", data={"key": key, **{k: str(v) for k, v in params.items()}})
        assert response.status_code == 200
        return response.json()

    def api_balance(key: str) -> Decimal:
        return Decimal(v2(key, action="balance")["balance"])

    class GatewayModel(RuleBasedStateMachine):
        orders = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            # Every example starts from the same balances (what earlier examples left is topped up
            # or deducted through the admin API), so each run depends on its own steps only.
            self.balances: dict[int, Decimal] = {}
            for index, (customer_id, key) in enumerate(customers):
                difference = START_BALANCE - api_balance(key)
                if difference:
                    response = http.post(
                        f"/admin/customers/{customer_id}/funds", json={"amount": str(difference)}, headers=ADMIN
                    )
                    assert response.status_code == 200
                self.balances[index] = START_BALANCE
            self.owner: dict[int, int] = {}

        @rule(who=st.integers(0, 1), cents=st.integers(1, 2000))
        def deposit(self, who: int, cents: int) -> None:
            amount = Decimal(cents) / 100
            response = http.post(
                f"/admin/customers/{customers[who][0]}/funds", json={"amount": str(amount)}, headers=ADMIN
            )
            assert response.status_code == 200
            self.balances[who] += amount

        @rule(target=orders, who=st.integers(0, 1), times=st.integers(1, 400))
        def add(self, who: int, times: int) -> Any:
            quantity = minimum * times
            charge = charge_for(rate, quantity)
            answer = v2(customers[who][1], action="add", service=service_id, link="https://i.com/m", quantity=quantity)
            if self.balances[who] >= charge:
                assert "order" in answer, answer
                self.balances[who] -= charge
                self.owner[answer["order"]] = who
                return int(answer["order"])
            assert answer == {"error": "Not enough funds on balance"}
            return multiple()

        @rule(who=st.integers(0, 1), quantity=st.integers(-5, 9))
        def add_refused(self, who: int, quantity: int) -> None:
            answer = v2(customers[who][1], action="add", service=service_id, link="https://i.com/m", quantity=quantity)
            assert "error" in answer

        @rule(who=st.integers(0, 1), order=orders)
        def status(self, who: int, order: int) -> None:
            answer = v2(customers[who][1], action="status", order=order)
            if order in self.owner and self.owner[order] == who:
                assert answer["status"] == "Pending"
            else:
                assert answer == {"error": "Incorrect order ID"}

        @rule(who=st.integers(0, 1), picked=st.lists(orders, min_size=1, max_size=10))
        def multi_status(self, who: int, picked: list[int]) -> None:
            answer = v2(customers[who][1], action="status", orders=",".join(map(str, picked)))
            for item, order in zip(answer, picked, strict=True):
                if order in self.owner and self.owner[order] == who:
                    assert item["status"] == "Pending"
                else:
                    assert item == {"order": order, "error": "Incorrect order ID"}

        @invariant()
        def balances_match(self) -> None:
            for index, (_, key) in enumerate(customers):
                assert api_balance(key) == self.balances[index]

    return GatewayModel
