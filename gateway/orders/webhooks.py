"""Customers' status webhooks: signed POSTs of every change of an order's status, remains or refund,
and of a refill's status, delivered from a durable outbox.

- **Written with the change.** Triggers on ``orders`` and ``refills`` (migration 0007) insert the
  event into ``webhook_outbox`` in the transaction that makes the change: a change that commits
  always has its event (even if the process dies right after), one that rolls back never has.
- **Delivered by the worker**, in order per order (an event waits while an earlier one of its
  order is still pending), each claimed with a lease so two workers never send it at once. At least
  once: a worker killed mid-delivery leaves the lease to expire and the event is sent again, with
  the same ``X-Gateway-Event-Id`` for the receiver to de-duplicate.
- **Signed** like Stripe's: ``X-Gateway-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
- **Retried** with backoff (10 s doubling to an hour) for 24 h, then given up (the delivery log
  shows it; "resend" puts it back). Short timeouts, no redirects, no proxies from the environment,
  and the receiver must be a public address (like provider URLs) unless
  ``GATEWAY_ALLOW_PRIVATE_UPSTREAMS``. One failing receiver never delays the others: deliveries
  run side by side, each with its own deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.money import format_money
from gateway.upstream.addresses import HostGuard, UnsafeUpstreamURL, check_upstream_url
from gateway.upstream.errors import UpstreamError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
GIVE_UP_AFTER_SECONDS = 24 * 3600
LEASE_SECONDS = 60
BATCH = 50
CONCURRENCY = 20
USER_AGENT = "smm-gateway-webhooks/1"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Gateway-Signature`` header value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def retry_delay(attempts: int) -> float:
    """Backoff before attempt ``attempts + 1``: 10 s doubling to an hour, with jitter."""
    base: float = min(3600.0, 10.0 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


def _money(value: object) -> str | None:
    return None if value is None else format_money(Decimal(str(value)))


def render(event: str, payload: dict[str, Any]) -> bytes:
    """The JSON body of an event as the customer gets it (money and counts as strings, like v2)."""
    body: dict[str, Any] = {"event": event}
    for name, value in payload.items():
        if name in ("charge", "refunded"):
            body[name] = _money(value)
        elif name == "remains":
            body[name] = None if value is None else str(value)
        elif name == "at" and isinstance(value, str):
            body[name] = _utc(value)
        else:
            body[name] = value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _utc(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return stamp


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """A receiver URL as the operator gives it: http(s), a host, no credentials, at most 2,000
    characters, and (unless ``allow_private``) not a private address. Raises ValueError."""
    if len(url) > 2000 or not url.isascii() or not url.isprintable():
        raise ValueError("webhook_url must be an http(s) URL of at most 2000 printable ASCII characters")
    try:
        return check_upstream_url(url, allow_private=allow_private)
    except UnsafeUpstreamURL as exc:
        raise ValueError(f"webhook_url: {exc.reason}") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    customer_id: int
    event: str
    payload: dict[str, Any]
    url: str | None
    secret: str | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Result:
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


_CLAIM = text(
    f"""
    UPDATE webhook_outbox AS w SET lease_until = now() + interval '{LEASE_SECONDS} seconds'
    FROM customers c
    WHERE w.id IN (
        SELECT o.id FROM webhook_outbox o
        WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= now()
          AND (o.lease_until IS NULL OR o.lease_until < now())
          AND NOT EXISTS (
              SELECT 1 FROM webhook_outbox p
              WHERE o.order_id IS NOT NULL AND p.order_id = o.order_id AND p.id < o.id
                AND p.delivered_at IS NULL AND p.failed_at IS NULL
          )
        ORDER BY o.id LIMIT :limit FOR UPDATE OF o SKIP LOCKED
    ) AND c.id = w.customer_id
    RETURNING w.id, w.event_id::text AS event_id, w.customer_id, w.event, w.payload, c.webhook_url AS url,
              c.webhook_secret AS secret, w.attempts, w.created_at
    """  # noqa: S608 - composed of constants only
)
_DONE = text(
    """
    UPDATE webhook_outbox SET attempts = attempts + 1, last_attempt_at = now(), last_status = :status,
        last_error = :error, lease_until = NULL,
        delivered_at = CASE WHEN :delivered THEN now() END,
        failed_at = CASE WHEN NOT :delivered AND :give_up THEN now() END,
        next_attempt_at = CASE WHEN :delivered OR :give_up THEN next_attempt_at
                               ELSE now() + make_interval(secs => :delay) END
    WHERE id = :id
    """
)


class WebhookSender:
    """Posts events to receivers (one client per process)."""

    def __init__(
        self, *, allow_private: bool, transport: httpx.AsyncBaseTransport | None = None, guard: HostGuard | None = None
    ) -> None:
        self.allow_private = allow_private
        self._guard = guard or HostGuard()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=min(TIMEOUT_SECONDS, 3.0)),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(self, url: str, secret: str, event_id: str, body: bytes) -> Result:
        try:
            url = check_webhook_url(url, allow_private=self.allow_private)
            parsed = httpx.URL(url)
            if not self.allow_private:
                await self._guard.check(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
        except (ValueError, UpstreamError) as exc:
            return Result(None, f"receiver refused: {exc}"[:500])
        headers = {
            "Content-Type": "application/json",
            "X-Gateway-Event-Id": event_id,
            "X-Gateway-Signature": signature(secret, int(time.time()), body),
        }
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS + 1):
                response = await self._client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            return Result(None, f"{type(exc).__name__}")
        return Result(response.status_code, None if response.is_success else f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


async def deliver_due(
    engine: AsyncEngine,
    sender: WebhookSender,
    limit: int = BATCH,
    observe: Callable[[str], None] | None = None,
) -> int:
    """One pass of the worker: claim due events and deliver them side by side; how many were tried.
    ``observe`` hears each attempt's outcome (``delivered``, ``failed``, ``given_up``)."""
    async with engine.begin() as conn:
        rows = (await conn.execute(_CLAIM, {"limit": limit})).mappings().all()
    deliveries = [Delivery(**dict(row)) for row in rows]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(delivery: Delivery) -> None:
        async with gate:
            result = await attempt(sender, delivery)
        outcome = await record(engine, delivery, result)
        if observe is not None:
            observe(outcome)

    await asyncio.gather(*(one(d) for d in deliveries))
    return len(deliveries)


async def attempt(sender: WebhookSender, delivery: Delivery) -> Result:
    if not delivery.url or not delivery.secret:
        return Result(None, "the customer has no webhook URL or secret now")
    return await sender.send(delivery.url, delivery.secret, delivery.event_id, render(delivery.event, delivery.payload))


async def record(engine: AsyncEngine, delivery: Delivery, result: Result) -> str:
    """Record an attempt; its outcome: ``delivered``, ``failed`` (retried later) or ``given_up``."""
    age = (datetime.now(UTC) - delivery.created_at).total_seconds()
    give_up = not result.delivered and (age >= GIVE_UP_AFTER_SECONDS or delivery.event == "webhook.test")
    async with engine.begin() as conn:
        await conn.execute(
            _DONE,
            {
                "id": delivery.id,
                "status": result.status,
                "error": result.error,
                "delivered": result.delivered,
                "give_up": give_up,
                "delay": retry_delay(delivery.attempts + 1),
            },
        )
    if not result.delivered:
        log.info(
            "webhook %s to customer %s: %s%s",
            delivery.id,
            delivery.customer_id,
            result.error,
            "; given up" if give_up else "",
        )
    return "delivered" if result.delivered else "given_up" if give_up else "failed"


# --- the operator's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    event_id: str
    event: str
    order_id: int | None
    refill_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None


_COLUMNS = (
    "id, event_id::text AS event_id, event, order_id, refill_id, payload, created_at, attempts, last_attempt_at,"
    " last_status, last_error, CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN next_attempt_at END"
    " AS next_attempt_at, delivered_at, failed_at"
)


_RESEND = text(
    "UPDATE webhook_outbox SET delivered_at = NULL, failed_at = NULL, next_attempt_at = now(),"  # noqa: S608
    f" lease_until = NULL, created_at = now() WHERE id = :id AND customer_id = :customer_id RETURNING {_COLUMNS}"
)


async def deliveries(session: AsyncSession, customer_id: int, *, limit: int, before: int | None) -> list[DeliveryRow]:
    """A customer's delivery log, newest first."""
    rows = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM webhook_outbox WHERE customer_id = :customer_id"  # noqa: S608 - constants
            " AND (CAST(:before AS bigint) IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit"
        ),
        {"customer_id": customer_id, "before": before, "limit": limit},
    )
    return [DeliveryRow(**dict(row)) for row in rows.mappings()]


async def resend(session: AsyncSession, customer_id: int, delivery_id: int) -> DeliveryRow | None:
    """Put a delivered or given-up event back in the queue, due now (None: no such event)."""
    row = (await session.execute(_RESEND, {"id": delivery_id, "customer_id": customer_id})).mappings().first()
    return None if row is None else DeliveryRow(**dict(row))


async def queue_test(session: AsyncSession, customer_id: int) -> int:
    """A signed ``webhook.test`` event for the customer's receiver, queued (the caller sends it).

    Queued already leased, as the caller is about to send it: the worker's deliverer would
    otherwise take it in between and the receiver get it twice (it does take it once the lease has
    run out, if the caller never sent it)."""
    return int(
        await session.scalar(
            text(
                "INSERT INTO webhook_outbox (customer_id, event, payload, lease_until)"
                " VALUES (:customer_id, 'webhook.test', jsonb_build_object('at', now()),"
                " now() + make_interval(secs => :lease)) RETURNING id"
            ),
            {"customer_id": customer_id, "lease": LEASE_SECONDS},
        )
    )


async def send_now(engine: AsyncEngine, sender: WebhookSender, delivery_id: int) -> None:
    """Deliver one queued event at once (the operator's test), recording the attempt."""
    async with engine.begin() as conn:
        row = (
            (
                await conn.execute(
                    text(
                        "UPDATE webhook_outbox AS w SET lease_until = now() + interval '60 seconds' FROM customers c"
                        " WHERE w.id = :id AND c.id = w.customer_id AND w.delivered_at IS NULL"
                        " RETURNING w.id, w.event_id::text AS event_id, w.customer_id, w.event, w.payload,"
                        " c.webhook_url AS url, c.webhook_secret AS secret, w.attempts, w.created_at"
                    ),
                    {"id": delivery_id},
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return
    delivery = Delivery(**dict(row))
    await record(engine, delivery, await attempt(sender, delivery))
