"""The minimal baseline: the least code that serves the same v2 requests with Litestar and asyncpg.

Form parse, sha256 key-hash lookup (the gateway's own auth query), then the gateway's own charge
statement (``add``) or nothing more (``balance``; ``services`` answers a listing encoded once at
start-up). No validation, pricing, upstream call, record step, ORM, metrics or logging: what is
left is the floor a Python server on this stack can reach for these requests. ``GET /json`` is a
bare Litestar JSON endpoint (no database at all).

    BENCH_DSN=postgresql://... python -m tests.bench.baseline_app --port 8090 [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, route

from gateway.db import asyncpg_sql
from gateway.ledger.customers import CUSTOMER_BY_KEY_HASH
from gateway.money import format_money
from gateway.orders.store import CHARGE_AND_CREATE

JSON = "application/json"
_encoder = msgspec.json.Encoder(decimal_format="string")


LOOKUP_SQL, _ = asyncpg_sql(CUSTOMER_BY_KEY_HASH)
CHARGE_SQL, CHARGE_PARAMS = asyncpg_sql(CHARGE_AND_CREATE)
SERVICE_SQL = """
    SELECT s.id, s.provider_id, s.upstream_service_id, s.upstream_name, s.type, s.upstream_category, s.upstream_rate,
           s.upstream_min, s.upstream_max, s.refill, s.cancel, s.dripfeed
    FROM services s WHERE s.enabled AND s.upstream_present ORDER BY s.id
"""


def build() -> Litestar:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            os.environ["BENCH_DSN"], min_size=2, max_size=int(os.environ.get("BENCH_POOL_SIZE", "16"))
        )
        rows = await pool.fetch(SERVICE_SQL)
        state["pool"] = pool
        state["services"] = {row["id"]: row for row in rows}
        state["listing"] = _encoder.encode(
            [
                {
                    "service": r["id"],
                    "name": r["upstream_name"],
                    "type": r["type"],
                    "category": r["upstream_category"],
                    "rate": str(r["upstream_rate"]),
                    "min": r["upstream_min"],
                    "max": r["upstream_max"],
                    "refill": r["refill"],
                    "cancel": r["cancel"],
                    "dripfeed": r["dripfeed"],
                }
                for r in rows
            ]
        )
        try:
            yield
        finally:
            await pool.close()

    def answer(value: object) -> Response[bytes]:
        return Response(_encoder.encode(value), status_code=200, media_type=JSON)

    @route("/api/v2", http_method=["POST"])
    async def api_v2(request: Request[Any, Any, Any]) -> Response[bytes]:
        params = dict(parse_qsl((await request.body()).decode()))
        pool: asyncpg.Pool = state["pool"]
        row = await pool.fetchrow(LOOKUP_SQL, hashlib.sha256(params.get("key", "").encode()).digest())
        if row is None:
            return answer({"error": "Invalid API key"})
        action = params.get("action")
        if action == "balance":
            return answer({"balance": format_money(row["balance"]), "currency": "USD"})
        if action == "services":
            return Response(state["listing"], status_code=200, media_type=JSON)
        if action == "add":
            service = state["services"][int(params["service"])]
            quantity = int(params["quantity"])
            rate = Decimal(service["upstream_rate"])
            charge = (rate * quantity / 1000).quantize(Decimal("0.00001"))
            values = {
                "customer_id": row["id"],
                "service_id": service["id"],
                "provider_id": service["provider_id"],
                "upstream_service_id": service["upstream_service_id"],
                "route_priority": 0,
                "link": params["link"],
                "quantity": quantity,
                "params": json.dumps({"link": params["link"], "quantity": quantity}),
                "rate": rate,
                "charge": charge,
                "cost": charge,
                "currency": "USD",
                "request_id": None,
                "revision": row["catalog_revision"],
                "key_hash": row["api_key_hash"],
                "discount": row["discount_percent"],
                "allowed_ips": row["allowed_ips"],
            }
            created = await pool.fetchrow(CHARGE_SQL, *(values[name] for name in CHARGE_PARAMS))
            if created is None:
                return answer({"error": "Not enough funds on balance"})
            return answer({"order": created["id"]})
        return answer({"error": "Incorrect request"})

    @get("/json")
    async def bare() -> dict[str, str]:
        return {"balance": "25.50", "currency": "USD"}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[api_v2, bare, health], lifespan=[lifespan], debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "tests.bench.baseline_app:build",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
