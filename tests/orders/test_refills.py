"""Refills that lose their answer: the stale sweep, conditional recording (a late answer never
overwrites what the sweep or the operator decided), and the refill sync matching every answer back
to each gateway refill, one refill at a time."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.orders.refills import sync_refills
from gateway.orders.sync import check_statuses, sweep
from gateway.runtime import Runtime
from gateway.simulator.faults import FaultRule
from tests.orders.conftest import Shop

FOLLOWERS_REFILL = 101
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789-abcdefghij"}


async def completed_order(shop: Shop, link: str) -> tuple[int, int]:
    """An order of the refill-enabled service, completed upstream and synced: (id, upstream id)."""
    answer = await shop.v2(action="add", service=shop.services[FOLLOWERS_REFILL], link=link, quantity=100)
    order_id = answer["order"]
    upstream_order_id = (await shop.order(order_id)).upstream_order_id
    shop.sim.state.force_order(upstream_order_id, "Completed")
    await shop.execute("UPDATE orders SET next_check_at = now() WHERE id = :id", id=order_id)
    await check_statuses(shop.runtime.orders, shop.runtime.providers, shop.runtime.policy.status_sync_interval_seconds)
    assert (await shop.order(order_id)).status == "Completed"
    return order_id, upstream_order_id


async def refill_row(shop: Shop, refill_id: int) -> Any:
    async with shop.runtime.engine.connect() as conn:
        return (await conn.execute(text("SELECT * FROM refills WHERE id = :id"), {"id": refill_id})).one()


async def sweep_refills(shop: Shop) -> list[int]:
    return await shop.runtime.orders.stale_to_unknown("refills", shop.runtime.settings.submitting_stale_seconds)


async def sync_all(shop: Shop, runtime: Runtime | None = None) -> int:
    await shop.execute("UPDATE refills SET next_check_at = now() WHERE state = 'placed'")
    runtime = runtime or shop.runtime
    return await sync_refills(runtime.orders, runtime.providers)


async def test_a_refill_left_submitting_becomes_unknown_once_stale(shop: Shop) -> None:
    old_order, _ = await completed_order(shop, "https://i.com/old")
    young_order, _ = await completed_order(shop, "https://i.com/young")
    # A process that died between creating the refill and recording the answer leaves this behind.
    await shop.execute(
        "INSERT INTO refills (order_id, customer_id, provider_id, state, created_at)"
        " SELECT id, customer_id, provider_id, 'submitting', now() - interval '1 hour' FROM orders WHERE id = :id",
        id=old_order,
    )
    await shop.execute(
        "INSERT INTO refills (order_id, customer_id, provider_id, state)"
        " SELECT id, customer_id, provider_id, 'submitting' FROM orders WHERE id = :id",
        id=young_order,
    )
    old = await shop.scalar("SELECT id FROM refills WHERE order_id = :id", id=old_order)
    young = await shop.scalar("SELECT id FROM refills WHERE order_id = :id", id=young_order)

    assert await sweep_refills(shop) == [old]
    row = await refill_row(shop, old)
    assert (row.state, row.status, row.upstream_refill_id) == ("unknown", "Pending", None)
    assert "stopped while sending" in row.last_error
    assert (await refill_row(shop, young)).state == "submitting"  # maybe still being sent
    assert await shop.v2(action="refill_status", refill=old) == {"status": "Pending"}
    assert await sweep_refills(shop) == []  # nothing twice
    assert shop.sim.request_count("refill") == 0  # an unknown refill is never re-sent


async def test_the_workers_recovery_sweep_covers_refills(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/w")
    await shop.execute(
        "INSERT INTO refills (order_id, customer_id, provider_id, state, created_at)"
        " SELECT id, customer_id, provider_id, 'submitting', now() - interval '1 hour' FROM orders WHERE id = :id",
        id=order_id,
    )
    await sweep(shop.runtime.orders, shop.runtime.policy)
    assert await shop.scalar("SELECT state FROM refills") == "unknown"
    listed = (await shop.client.get("/admin/refills", params={"state": "unknown"}, headers=ADMIN)).json()
    assert [r["order_id"] for r in listed] == [order_id]


async def test_the_sweep_skips_a_refill_someone_holds(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/held")
    await shop.execute(
        "INSERT INTO refills (order_id, customer_id, provider_id, state, created_at)"
        " SELECT id, customer_id, provider_id, 'submitting', now() - interval '1 hour' FROM orders WHERE id = :id",
        id=order_id,
    )
    async with shop.runtime.engine.begin() as holder:
        await holder.execute(text("SELECT id FROM refills FOR UPDATE"))
        assert await asyncio.wait_for(sweep_refills(shop), timeout=5) == []
    assert len(await sweep_refills(shop)) == 1


async def swept_while_in_flight(shop: Shop, order_id: int) -> tuple[asyncio.Task[Any], int]:
    """A refill request whose upstream took it but answers late, swept to ``unknown`` meanwhile:
    (the customer's request, still running; the gateway refill id)."""
    shop.sim.set_faults(FaultRule(kind="latency", action="refill", when="after", latency=1.0))
    request = asyncio.create_task(shop.v2(action="refill", order=order_id))
    refill_id = None
    for _ in range(200):
        refill_id = await shop.scalar("SELECT id FROM refills WHERE order_id = :id", id=order_id)
        if refill_id is not None:
            break
        await asyncio.sleep(0.01)
    assert refill_id is not None
    # The sweep takes it for the leftover of a dead process.
    await shop.execute("UPDATE refills SET created_at = now() - interval '1 hour' WHERE id = :id", id=refill_id)
    assert await sweep_refills(shop) == [refill_id]
    assert not request.done()
    return request, refill_id


async def test_a_late_answer_overwrites_neither_the_sweep_nor_the_operator(shop: Shop) -> None:
    order_id, upstream_order_id = await completed_order(shop, "https://i.com/late")
    request, refill_id = await swept_while_in_flight(shop, order_id)
    assert await request == {"refill": refill_id}  # it exists: the customer gets its id
    shop.sim.clear_faults()
    row = await refill_row(shop, refill_id)
    assert (row.state, row.upstream_refill_id) == ("unknown", None)
    assert "stopped while sending" in row.last_error

    # The operator finds it upstream; the sync follows it to the end.
    upstream_refill_id = shop.sim.state.refills_of(upstream_order_id)[0].refill_id
    resolved = await shop.client.post(
        f"/admin/refills/{refill_id}/resolve",
        json={"outcome": "placed", "upstream_refill_id": upstream_refill_id},
        headers=ADMIN,
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["state"], resolved.json()["last_error"]) == ("placed", None)
    shop.sim.state.force_refill(upstream_refill_id, "Completed")
    assert await sync_refills(shop.runtime.orders, shop.runtime.providers) == 1  # due at once
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Completed"}


async def test_a_late_answer_does_not_undo_the_operators_failed(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/late-failed")
    request, refill_id = await swept_while_in_flight(shop, order_id)
    failed = await shop.client.post(f"/admin/refills/{refill_id}/resolve", json={"outcome": "failed"}, headers=ADMIN)
    assert failed.status_code == 200, failed.text
    assert not request.done()
    assert await request == {"refill": refill_id}
    shop.sim.clear_faults()
    row = await refill_row(shop, refill_id)
    assert (row.state, row.status, row.upstream_refill_id) == ("failed", "Rejected", None)
    assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Rejected"}


async def test_a_single_refills_upstream_call_is_logged_against_it(shop: Shop) -> None:
    order_id, _ = await completed_order(shop, "https://i.com/logged")
    shop.sim.set_faults(FaultRule(kind="drop", action="refill", when="after"))
    refill_id = (await shop.v2(action="refill", order=order_id))["refill"]
    shop.sim.clear_faults()
    await shop.runtime.call_log.flush(shop.runtime.engine)
    detail = (await shop.client.get(f"/admin/refills/{refill_id}", headers=ADMIN)).json()
    assert detail["refill"]["state"] == "unknown"
    assert [(c["action"], c["outcome"]) for c in detail["upstream_calls"]] == [("refill", "unknown")]


async def test_two_gateway_refills_with_one_upstream_refill_id_are_both_followed(shop: Shop) -> None:
    first_order, _ = await completed_order(shop, "https://i.com/one")
    second_order, _ = await completed_order(shop, "https://i.com/two")
    first = (await shop.v2(action="refill", order=first_order))["refill"]
    second = (await shop.v2(action="refill", order=second_order))["refill"]
    upstream_refill_id = (await refill_row(shop, first)).upstream_refill_id
    # Some panels answer a repeated refill request with the refill they already have.
    await shop.execute("UPDATE refills SET upstream_refill_id = :u WHERE id = :id", u=upstream_refill_id, id=second)
    shop.sim.state.force_refill(upstream_refill_id, "In progress")
    assert await sync_all(shop) == 2
    assert [(await refill_row(shop, i)).status for i in (first, second)] == ["In progress", "In progress"]
    shop.sim.state.force_refill(upstream_refill_id, "Completed")
    assert await sync_all(shop) == 2
    for refill_id in (first, second):
        assert await shop.v2(action="refill_status", refill=refill_id) == {"status": "Completed"}
    assert await sync_all(shop) == 0  # finished: no longer asked about


async def test_one_refill_that_cannot_be_updated_holds_back_no_other(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    orders = [await completed_order(shop, f"https://i.com/r{i}") for i in range(3)]
    refill_ids = [(await shop.v2(action="refill", order=order_id))["refill"] for order_id, _ in orders]
    broken = refill_ids[1]
    # A real database error on one row: a trigger refuses any update of it.
    await shop.execute(
        f"""
        CREATE FUNCTION refuse_refill_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = {broken} THEN RAISE EXCEPTION 'refill row is broken'; END IF;
            RETURN NEW;
        END $$
        """
    )
    await shop.execute(
        "CREATE TRIGGER refuse_refill_update BEFORE UPDATE ON refills"
        " FOR EACH ROW WHEN (NEW.last_checked_at IS DISTINCT FROM OLD.last_checked_at)"
        " EXECUTE FUNCTION refuse_refill_update()"
    )
    for refill_id in refill_ids:
        shop.sim.state.force_refill((await refill_row(shop, refill_id)).upstream_refill_id, "Completed")
    with caplog.at_level(logging.WARNING, logger="gateway.orders.polling"):
        assert await sync_all(shop) == 3
    statuses = [(await refill_row(shop, i)).status for i in refill_ids]
    assert statuses == ["Completed", "Pending", "Completed"]
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.orders.polling"]
    assert any(f"refills {broken}:" in line and "sqlstate P0001" in line for line in logged), logged
    assert not [line for line in logged if shop.sim.api_key in line or "UPDATE" in line or "broken" in line]


async def test_an_answer_about_a_refill_not_asked_about_is_ignored(shop: Shop) -> None:
    asked_order, _ = await completed_order(shop, "https://i.com/asked")
    other_order, _ = await completed_order(shop, "https://i.com/other")
    asked = (await shop.v2(action="refill", order=asked_order))["refill"]
    other = (await shop.v2(action="refill", order=other_order))["refill"]
    asked_upstream = (await refill_row(shop, asked)).upstream_refill_id
    other_upstream = (await refill_row(shop, other)).upstream_refill_id

    # A panel that answers about more refills than it was asked about.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"refill": asked_upstream, "status": "Completed"},
                {"refill": other_upstream, "status": "Rejected"},
                {"refill": 987654, "status": "Completed"},
            ],
        )

    chatty = Runtime.build(
        shop.runtime.settings, shop.runtime.database_url, transport_factory=lambda _: httpx.MockTransport(answer)
    )
    try:
        # Only the first one is due.
        await shop.execute("UPDATE refills SET next_check_at = now() WHERE id = :id", id=asked)
        await shop.execute("UPDATE refills SET next_check_at = now() + interval '1 hour' WHERE id = :id", id=other)
        assert await sync_refills(chatty.orders, chatty.providers) == 1
    finally:
        await chatty.aclose()
    assert (await refill_row(shop, asked)).status == "Completed"
    assert (await refill_row(shop, other)).status == "Pending"
