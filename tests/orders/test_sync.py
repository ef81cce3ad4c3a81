"""Following orders: status sync, exactly-once refunds (also with two workers), recovery sweeps,
the worker's dispatch of queued orders, and the operator's resolution of unknown ones."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest
from sqlalchemy import text

from gateway.orders.answers import StatusUpdate
from gateway.orders.store import is_progress
from gateway.orders.sync import check_statuses, sweep
from gateway.runtime import Runtime
from gateway.simulator.faults import FaultRule
from gateway.worker import Worker
from tests.factories import balance_of
from tests.orders.conftest import Shop

FOLLOWERS = 102  # 0.45 per 1000
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}


async def _place(shop: Shop, quantity: int = 1000) -> tuple[int, int]:
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=quantity)
    row = await shop.order(answer["order"])
    return answer["order"], row.upstream_order_id


async def test_progress_then_completed_without_refund(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop)
    shop.sim.state.force_order(upstream_id, "In progress", remains=400, start_count=1234)
    assert await shop.sync_statuses() == 1
    status = await shop.v2(action="status", order=order_id)
    assert status == {
        "status": "In progress",
        "charge": "0.45",
        "start_count": "1234",
        "remains": "400",
        "currency": "USD",
    }
    shop.sim.state.force_order(upstream_id, "Completed")
    await shop.sync_statuses()
    row = await shop.order(order_id)
    assert (row.status, row.refunded, row.remains) == ("Completed", 0, 0)
    assert row.completed_at is not None
    assert await shop.sync_statuses() == 0  # terminal: no longer checked


async def test_partial_refunds_the_undelivered_part_rounded_down_once(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop, quantity=3000)  # charge 1.35
    shop.sim.state.force_order(upstream_id, "Partial", remains=1001)
    await shop.sync_statuses()
    row = await shop.order(order_id)
    # 1.35 × 1001 / 3000 = 0.45045 exactly; rounding down keeps it.
    assert (row.status, row.refunded) == ("Partial", Decimal("0.45045"))
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100") - Decimal("1.35") + Decimal("0.45045")
    status = await shop.v2(action="status", order=order_id)
    assert status["charge"] == "0.89955"
    # Asking again (a second worker, a restart) changes nothing.
    await shop.execute("UPDATE orders SET next_check_at = now()")
    await shop.sync_statuses()
    assert (await shop.order(order_id)).refunded == Decimal("0.45045")
    await shop.check_money()


async def test_canceled_refunds_everything_and_never_moves_back(shop: Shop) -> None:
    order_id, upstream_id = await _place(shop)
    shop.sim.state.force_order(upstream_id, "Canceled")
    await shop.sync_statuses()
    row = await shop.order(order_id)
    assert (row.status, row.refunded) == ("Canceled", row.charge)
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100")
    shop.sim.state.force_order(upstream_id, "In progress", remains=10)
    await shop.execute("UPDATE orders SET next_check_at = now()")
    await shop.sync_statuses()
    assert (await shop.order(order_id)).status == "Canceled"
    await shop.check_money()


async def test_two_workers_refund_each_order_once(shop: Shop, runtime: Runtime) -> None:
    ids = [await _place(shop, quantity=1000 + i) for i in range(30)]
    for index, (_, upstream_id) in enumerate(ids):
        if index % 2:
            shop.sim.state.force_order(upstream_id, "Canceled")
        else:
            shop.sim.state.force_order(upstream_id, "Partial", remains=500)
    await shop.execute("UPDATE orders SET next_check_at = now()")
    # A second process: its own engine and upstream clients on the same database.
    other = Runtime.build(shop.runtime.settings, shop.runtime.database_url)
    try:
        for _ in range(3):
            await asyncio.gather(
                check_statuses(
                    shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds
                ),
                check_statuses(other.orders, other.providers, other.policy.status_sync_interval_seconds),
            )
            await shop.execute("UPDATE orders SET next_check_at = now()")
    finally:
        await other.aclose()
    assert await shop.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'refund'") == 30
    assert await shop.scalar("SELECT count(*) FROM orders WHERE status IN ('Canceled', 'Partial')") == 30
    await shop.check_money()


async def test_worker_dispatches_queued_orders_when_the_upstream_recovers(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Not enough funds on balance"))
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    order_id = answer["order"]
    assert (await shop.order(order_id)).state == "queued"
    shop.sim.clear_faults()
    worker = Worker(shop.runtime)
    await worker.dispatch_queued()  # not due yet: backing off
    assert (await shop.order(order_id)).state == "queued"
    retried = await shop.client.post(f"/admin/orders/{order_id}/retry", headers=ADMIN)
    assert retried.status_code == 200
    assert await worker.dispatch_queued() == 1
    row = await shop.order(order_id)
    assert (row.state, row.attempts) == ("placed", 2)
    assert shop.sim.request_count("add") == 2  # the refused one and the accepted one


async def test_expired_queued_orders_are_canceled_and_refunded(shop: Shop) -> None:
    await shop.execute("UPDATE providers SET enabled = false")
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000)
    assert answer == {"error": "Incorrect service ID"}  # a disabled provider sells nothing
    await shop.execute("UPDATE providers SET enabled = true")
    shop.sim.set_faults(FaultRule(kind="error", action="add", error="Invalid API key"))
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/y", quantity=1000))[
        "order"
    ]
    await shop.execute("UPDATE orders SET created_at = now() - interval '7 hours'")
    await sweep(shop.runtime.orders, shop.runtime.policy)
    row = await shop.order(order_id)
    assert (row.state, row.status, row.refunded) == ("canceled", "Canceled", row.charge)
    assert await balance_of(shop.runtime, shop.customer_id) == Decimal("100")
    await shop.check_money()


async def test_stale_submitting_becomes_unknown_and_the_operator_resolves(shop: Shop) -> None:
    shop.sim.set_faults(FaultRule(kind="hang", action="add"))
    first = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/a", quantity=1000))[
        "order"
    ]
    shop.sim.clear_faults()
    assert (await shop.order(first)).state == "unknown"
    # A process that died while sending leaves 'submitting' behind.
    second = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/b", quantity=1000))[
        "order"
    ]
    await shop.execute(
        "UPDATE orders SET state = 'submitting', upstream_order_id = NULL, submitted_at = now() - interval '1 hour' WHERE id = :id",
        id=second,
    )
    await sweep(shop.runtime.orders, shop.runtime.policy)
    assert (await shop.order(second)).state == "unknown"

    listed = (await shop.client.get("/admin/orders", params={"state": "unknown"}, headers=ADMIN)).json()
    assert {o["id"] for o in listed} == {first, second}
    detail = (await shop.client.get(f"/admin/orders/{first}", headers=ADMIN)).json()
    assert [e["kind"] for e in detail["ledger"]] == ["charge"]

    upstream_order = shop.sim.state.orders()[0]
    placed = await shop.client.post(
        f"/admin/orders/{first}/resolve",
        json={"outcome": "placed", "upstream_order_id": upstream_order.order_id},
        headers=ADMIN,
    )
    assert placed.status_code == 200, placed.text
    assert placed.json()["state"] == "placed"
    failed = await shop.client.post(f"/admin/orders/{second}/resolve", json={"outcome": "failed"}, headers=ADMIN)
    assert failed.json()["state"] == "failed"
    assert failed.json()["refunded"] == failed.json()["charge"]
    again = await shop.client.post(f"/admin/orders/{second}/resolve", json={"outcome": "failed"}, headers=ADMIN)
    assert again.status_code == 409
    for body in (
        {"outcome": "maybe"},
        {"outcome": "placed"},
        {"outcome": "placed", "upstream_order_id": -4},
        {"outcome": "placed", "upstream_order_id": 2**70},
        {"outcome": "failed", "upstream_order_id": 5},
        {},
    ):
        response = await shop.client.post(f"/admin/orders/{first}/resolve", json=body, headers=ADMIN)
        assert response.status_code in (400, 409), body
    assert (
        await shop.client.post("/admin/orders/999999/resolve", json={"outcome": "failed"}, headers=ADMIN)
    ).status_code == 404
    await shop.check_money()


async def test_progress_in_a_batch_writes_what_one_by_one_writes(shop: Shop) -> None:
    """Progress answers go in one statement per batch (APPLY_PROGRESS); the rows it leaves must be
    the ones the single statement (APPLY_STATUS) leaves for the same answer."""
    batched, _ = await _place(shop)
    single, _ = await _place(shop)
    await shop.execute(
        "UPDATE orders SET held_status = NULL, last_error = 'old problem' WHERE id IN (:a, :b)", a=batched, b=single
    )
    update = StatusUpdate(
        status="In progress",
        raw_status="Inprogress",
        start_count=77,
        remains=300,
        upstream_charge=Decimal("0.40"),
        ends=False,
        refund=Decimal(0),
        held=None,
        asks_left=0,
        anomalies=(),
    )
    assert is_progress(update)
    assert await shop.runtime.orders.apply_progress([(batched, update, 30.0)]) == {batched}
    await shop.runtime.orders.apply_status(single, update, 30.0)
    columns = (
        "status, status_raw, start_count, remains, upstream_charge, refunded, held_status, held_checks,"
        " last_error, completed_at, state"
    )
    rows = {}
    for order_id in (batched, single):
        async with shop.runtime.engine.connect() as conn:
            found = (await conn.execute(text(f"SELECT {columns} FROM orders WHERE id = :id"), {"id": order_id})).one()
            rows[order_id] = tuple(found)
            due_in = await conn.scalar(
                text("SELECT extract(epoch FROM next_check_at - last_checked_at) FROM orders WHERE id = :id"),
                {"id": order_id},
            )
            assert 29 <= float(due_in) <= 31
    assert rows[batched] == rows[single]
    assert rows[batched][:6] == ("In progress", "Inprogress", 77, 300, Decimal("0.40"), 0)
    # A final status is never batched, and a finished order is never moved by a batch.
    assert not is_progress(dataclasses.replace(update, status="Completed", ends=True))
    await shop.execute("UPDATE orders SET status = 'Canceled' WHERE id = :id", id=batched)
    assert await shop.runtime.orders.apply_progress([(batched, update, 30.0)]) == set()
    assert (await shop.order(batched)).status == "Canceled"


async def test_a_pass_with_progress_and_final_answers_refunds_each_once(shop: Shop) -> None:
    """The batch takes the progress answers, the final ones go one by one with their refunds."""
    orders = [await _place(shop) for _ in range(6)]
    for index, (_, upstream_id) in enumerate(orders):
        if index % 3 == 0:
            shop.sim.state.force_order(upstream_id, "Canceled")
        else:
            shop.sim.state.force_order(upstream_id, "In progress", remains=500)
    assert await shop.sync_statuses() == 6
    for index, (order_id, _) in enumerate(orders):
        row = await shop.order(order_id)
        expected = ("Canceled", Decimal("0.45")) if index % 3 == 0 else ("In progress", Decimal(0))
        assert (row.status, row.refunded) == expected
    await shop.sync_statuses()
    await shop.check_money()


async def test_the_worker_keeps_syncing_while_full_batches_are_due(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """One lease per worker pass capped a worker at one batch per interval whatever the backlog:
    the status sync now goes on while it leases full batches (here batches of 2), and the worker
    skips its pause while more is due."""
    import gateway.orders.polling as polling
    import gateway.worker as worker_module

    monkeypatch.setattr(polling, "BATCH", 2)
    monkeypatch.setattr(worker_module, "POLL_BATCH", 2)
    orders = [await _place(shop) for _ in range(5)]
    await shop.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")
    worker = Worker(shop.runtime)
    assert await worker.sync_statuses() == 5  # 2 + 2 + 1: every due order in one step
    assert not worker._behind
    for order_id, _ in orders:
        assert (await shop.order(order_id)).last_checked_at is not None

    monkeypatch.setattr(worker_module, "STATUS_SYNC_BUDGET_SECONDS", 0.0)
    await shop.execute("UPDATE orders SET next_check_at = now() WHERE state = 'placed'")
    assert await worker.sync_statuses() == 2  # out of time after one full batch
    assert worker._behind  # so the next pass starts at once
