"""Status webhooks against a real HTTP receiver on loopback: the documented signature verifies,
events follow the committed changes only, a failing receiver is retried with backoff without
holding back the others, events of one order go in order, a private receiver is refused, and a
worker killed mid-delivery loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text

from gateway.app import create_app
from gateway.orders.webhooks import WebhookSender, deliver_due
from tests.conftest import ADMIN_TOKEN, serving
from tests.factories import make_customer
from tests.orders.conftest import Shop, shop_settings
from tests.processes import wait_for, worker_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FOLLOWERS = 102


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: answers each path with its status (200 by default); a path in ``hold``
    waits until the event is set before answering."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            gate = state.hold.get(self.path)
            if gate is not None:
                gate.wait(60)
            self.send_response(state.statuses.get(self.path, 200))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        for gate in state.hold.values():
            gate.set()
        server.shutdown()
        server.server_close()


def verify(secret: str, received: Received, tolerance: int = 300) -> bool:
    """The receiver's check, exactly as the README documents it."""
    parts = dict(item.split("=", 1) for item in received.headers["X-Gateway-Signature"].split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - timestamp) <= tolerance


async def subscribe(shop: Shop, customer_id: int, url: str) -> str:
    response = await shop.client.patch(f"/admin/customers/{customer_id}", json={"webhook_url": url}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["webhook_secret_set"] is True
    secret = await shop.client.post(f"/admin/customers/{customer_id}/webhook-secret", headers=ADMIN)
    return str(secret.json()["secret"])


async def outbox(shop: Shop, **where: Any) -> list[Any]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    async with shop.runtime.engine.connect() as conn:
        return list((await conn.execute(text(f"SELECT * FROM webhook_outbox WHERE {clause} ORDER BY id"), where)).all())


async def complete(shop: Shop, order_id: int, status: str = "Completed") -> None:
    shop.sim.state.force_order((await shop.order(order_id)).upstream_order_id, status)
    await shop.sync_statuses()


async def test_a_status_change_is_posted_signed_as_documented(shop: Shop, receiver: Receiver) -> None:
    secret = await subscribe(shop, shop.customer_id, receiver.url())
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/w", quantity=1000))[
        "order"
    ]
    assert await outbox(shop) == []  # placing is not a change of status
    await complete(shop, order_id)
    sender = WebhookSender(allow_private=True)
    outcomes: list[str] = []
    assert await deliver_due(shop.runtime.engine, sender, observe=outcomes.append) == 1
    assert outcomes == ["delivered"]
    shop.runtime.metrics.observe_webhook(outcomes[0])
    assert 'gateway_webhook_deliveries_total{outcome="delivered"} 1.0' in (await shop.client.get("/metrics")).text
    (got,) = receiver.received
    assert verify(secret, got)
    assert not verify("whsec_other", got)
    body = got.json
    assert body["event"] == "order.status"
    assert (body["order"], body["status"], body["remains"], body["charge"], body["refunded"], body["currency"]) == (
        order_id,
        "Completed",
        "0",
        "0.45",
        "0.00",
        "USD",
    )
    assert body["at"].endswith("Z")
    (row,) = await outbox(shop)
    assert got.headers["X-Gateway-Event-Id"] == str(row.event_id)
    assert row.delivered_at is not None
    assert (row.attempts, row.last_status) == (1, 200)
    # Nothing more to send.
    assert await deliver_due(shop.runtime.engine, sender) == 0
    log = (await shop.client.get(f"/admin/customers/{shop.customer_id}/webhooks", headers=ADMIN)).json()
    assert [(d["event"], d["last_status"], d["next_attempt_at"]) for d in log] == [("order.status", 200, None)]
    await sender.aclose()


async def test_a_change_that_rolls_back_sends_nothing_and_customers_without_a_url_get_no_rows(
    shop: Shop, receiver: Receiver
) -> None:
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/r", quantity=1000))[
        "order"
    ]
    await complete(shop, order_id, "In progress")
    assert await outbox(shop) == []  # no webhook_url: nothing written
    await subscribe(shop, shop.customer_id, receiver.url())
    async with shop.runtime.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("UPDATE orders SET status = 'Partial', remains = 5 WHERE id = :id"), {"id": order_id})
        assert len((await conn.execute(text("SELECT id FROM webhook_outbox"))).all()) == 1
        await transaction.rollback()
    assert await outbox(shop) == []


async def test_a_failing_receiver_is_retried_with_backoff_and_holds_back_no_one(shop: Shop, receiver: Receiver) -> None:
    other_id, other_key = await make_customer(shop.runtime, balance="10")
    receiver.statuses["/fail"] = 500
    receiver.hold["/slow"] = threading.Event()
    await subscribe(shop, shop.customer_id, receiver.url("/fail"))
    await subscribe(shop, other_id, receiver.url("/ok"))
    third_id, third_key = await make_customer(shop.runtime, balance="10")
    await subscribe(shop, third_id, receiver.url("/slow"))
    params = {"action": "add", "service": shop.services[FOLLOWERS], "link": "https://i.com/f", "quantity": 1000}
    ids = [(await shop.v2(key=k, **params))["order"] for k in (shop.key, other_key, third_key)]
    # One sync that completes all three: one event each.
    for order_id in ids:
        shop.sim.state.force_order((await shop.order(order_id)).upstream_order_id, "Completed")
    await shop.sync_statuses()
    sender = WebhookSender(allow_private=True)

    delivering = asyncio.create_task(deliver_due(shop.runtime.engine, sender))
    # The slow receiver is still holding its request, and the others have had theirs.
    async with asyncio.timeout(30):
        while not (receiver.on("/ok") and receiver.on("/fail") and receiver.on("/slow")):
            await asyncio.sleep(0.02)
    receiver.hold["/slow"].set()
    assert await delivering == 3
    (failed,) = await outbox(shop, customer_id=shop.customer_id)
    (ok,) = await outbox(shop, customer_id=other_id)
    assert ok.delivered_at is not None
    assert (failed.attempts, failed.last_status, failed.delivered_at, failed.failed_at) == (1, 500, None, None)
    waited = (failed.next_attempt_at - failed.last_attempt_at).total_seconds()
    assert 7 <= waited <= 13  # 10 s, with jitter
    # Not due yet: not retried.
    assert await deliver_due(shop.runtime.engine, sender) == 0
    await shop.execute("UPDATE webhook_outbox SET next_attempt_at = now() WHERE id = :id", id=failed.id)
    assert await deliver_due(shop.runtime.engine, sender) == 1
    (failed,) = await outbox(shop, customer_id=shop.customer_id)
    assert failed.attempts == 2
    assert 15 <= (failed.next_attempt_at - failed.last_attempt_at).total_seconds() <= 25  # doubled
    # After 24 h it is given up; "resend" puts it back.
    await shop.execute(
        "UPDATE webhook_outbox SET next_attempt_at = now(), created_at = now() - interval '25 hours' WHERE id = :id",
        id=failed.id,
    )
    assert await deliver_due(shop.runtime.engine, sender) == 1
    (failed,) = await outbox(shop, customer_id=shop.customer_id)
    assert failed.failed_at is not None
    metrics = (await shop.client.get("/metrics")).text
    assert "gateway_webhooks_failed 1.0" in metrics
    assert "gateway_webhooks_pending 0.0" in metrics
    receiver.statuses["/fail"] = 204
    resent = await shop.client.post(
        f"/admin/customers/{shop.customer_id}/webhooks/{failed.id}/resend", json={}, headers=ADMIN
    )
    assert resent.status_code == 200, resent.text
    assert await deliver_due(shop.runtime.engine, sender) == 1
    (failed,) = await outbox(shop, customer_id=shop.customer_id)
    assert failed.delivered_at is not None
    missing = await shop.client.post(f"/admin/customers/{other_id}/webhooks/{failed.id}/resend", json={}, headers=ADMIN)
    assert missing.status_code == 404
    await sender.aclose()


async def test_events_of_one_order_go_in_order(shop: Shop, receiver: Receiver) -> None:
    receiver.statuses["/hook"] = 503
    await subscribe(shop, shop.customer_id, receiver.url())
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/o", quantity=1000))[
        "order"
    ]
    await complete(shop, order_id, "In progress")
    await complete(shop, order_id, "Completed")
    assert len(await outbox(shop)) == 2
    sender = WebhookSender(allow_private=True)
    assert await deliver_due(shop.runtime.engine, sender) == 1  # only the first: the second waits for it
    await shop.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
    assert await deliver_due(shop.runtime.engine, sender) == 1
    assert [r.json["status"] for r in receiver.received] == ["In progress", "In progress"]
    receiver.statuses["/hook"] = 200
    await shop.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
    assert await deliver_due(shop.runtime.engine, sender) == 1
    assert await deliver_due(shop.runtime.engine, sender) == 1
    assert [r.json["status"] for r in receiver.received] == ["In progress", "In progress", "In progress", "Completed"]
    await sender.aclose()


async def test_the_operator_sends_a_signed_test_event(shop: Shop, receiver: Receiver) -> None:
    no_url = await shop.client.post(f"/admin/customers/{shop.customer_id}/webhook-test", json={}, headers=ADMIN)
    assert no_url.status_code == 400
    secret = await subscribe(shop, shop.customer_id, receiver.url())
    response = await shop.client.post(f"/admin/customers/{shop.customer_id}/webhook-test", json={}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert (response.json()["event"], response.json()["last_status"]) == ("webhook.test", 200)
    (got,) = receiver.received
    assert got.json["event"] == "webhook.test"
    assert verify(secret, got)
    # A rotated secret signs from now on; the old one no longer verifies.
    new_secret = (await shop.client.post(f"/admin/customers/{shop.customer_id}/webhook-secret", headers=ADMIN)).json()
    await shop.client.post(f"/admin/customers/{shop.customer_id}/webhook-test", json={}, headers=ADMIN)
    assert verify(new_secret["secret"], receiver.received[-1])
    assert not verify(secret, receiver.received[-1])
    audit = (await shop.client.get("/admin/audit", params={"entity": "customer"}, headers=ADMIN)).text
    assert secret not in audit
    assert new_secret["secret"] not in audit


@pytest.fixture
async def public_only(database_url: str) -> Any:
    """An app that allows only public receivers (and providers), with one customer."""
    app = create_app(shop_settings(allow_private_upstreams=False), database_url=database_url)
    async with serving(app) as client:
        customer_id, _ = await make_customer(app.state.runtime, balance="1")
        yield client, customer_id


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://0x7f000001/hook",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/" + "a" * 2100,
        "https://hööks.example.com/x",
        "not a url",
        "https://hooks.example.com/x\r\nX: y",
    ],
)
async def test_a_private_or_malformed_receiver_is_refused(public_only: Any, url: str) -> None:
    client, customer_id = public_only
    response = await client.patch(f"/admin/customers/{customer_id}", json={"webhook_url": url}, headers=ADMIN)
    assert response.status_code == 400, response.text
    shown = (await client.get(f"/admin/customers/{customer_id}", headers=ADMIN)).json()
    assert shown["webhook_url"] is None
    # A public one is taken.
    fine = await client.patch(
        f"/admin/customers/{customer_id}", json={"webhook_url": "https://hooks.example.com/smm"}, headers=ADMIN
    )
    assert fine.json()["webhook_url"] == "https://hooks.example.com/smm"


async def test_a_receiver_that_became_private_is_refused_at_send_time(shop: Shop, receiver: Receiver) -> None:
    await subscribe(shop, shop.customer_id, receiver.url())
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/p", quantity=1000))[
        "order"
    ]
    await complete(shop, order_id)
    strict = WebhookSender(allow_private=False)
    assert await deliver_due(shop.runtime.engine, strict) == 1
    assert receiver.received == []
    (row,) = await outbox(shop)
    assert "receiver refused" in row.last_error
    await strict.aclose()


@pytest.mark.slow
async def test_a_worker_killed_mid_delivery_loses_nothing(shop: Shop, receiver: Receiver, database_url: str) -> None:
    await subscribe(shop, shop.customer_id, receiver.url("/slow"))
    receiver.hold["/slow"] = threading.Event()
    order_id = (await shop.v2(action="add", service=shop.services[FOLLOWERS], link="https://i.com/k", quantity=1000))[
        "order"
    ]
    await complete(shop, order_id)
    (event,) = await outbox(shop)
    with worker_process(database_url.replace("+asyncpg", "")) as worker:
        wait_for(lambda: receiver.on("/slow"), timeout=60)
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
    receiver.hold["/slow"].set()
    (row,) = await outbox(shop)
    assert row.delivered_at is None  # the kill came before the answer was recorded
    # The lease runs out; the next worker sends it again, with the same event id.
    await shop.execute("UPDATE webhook_outbox SET lease_until = now() - interval '1 second'")
    with worker_process(database_url.replace("+asyncpg", "")):
        wait_for(lambda: len(receiver.on("/slow")) >= 2, timeout=60)

        async def delivered() -> bool:
            return bool((await outbox(shop))[0].delivered_at)

        async with asyncio.timeout(60):
            while not await delivered():
                await asyncio.sleep(0.1)
    ids = {r.headers["X-Gateway-Event-Id"] for r in receiver.on("/slow")}
    assert ids == {str(event.event_id)}
