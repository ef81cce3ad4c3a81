"""Small factory functions: rows for tests, written the way the product writes them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text

from gateway.ledger.keys import new_api_key
from gateway.models import Customer, LedgerEntry, Provider, Service
from gateway.money import partial_refund
from gateway.runtime import Runtime


async def make_customer(
    runtime: Runtime, *, balance: str = "0", name: str = "customer", **fields: Any
) -> tuple[int, str]:
    """A customer (with a deposit entry for a starting balance); returns (id, api key)."""
    key, key_hash, hint = new_api_key()
    amount = Decimal(balance)
    async with runtime.engine.begin() as conn:
        customer_id = (
            await conn.execute(
                insert(Customer)
                .values(name=name, api_key_hash=key_hash, api_key_hint=hint, balance=amount, **fields)
                .returning(Customer.id)
            )
        ).scalar_one()
        if amount > 0:
            await conn.execute(
                insert(LedgerEntry).values(
                    customer_id=customer_id, kind="deposit", amount=amount, balance_after=amount, note="test"
                )
            )
    return customer_id, key


async def make_provider(runtime: Runtime, *, api_url: str = "http://127.0.0.1:9/api/v2", **fields: Any) -> int:
    values: dict[str, Any] = {"name": f"provider-{api_url}", "api_url": api_url, "api_key": "upstream-key"}
    values.update(fields)
    async with runtime.engine.begin() as conn:
        return int((await conn.execute(insert(Provider).values(**values).returning(Provider.id))).scalar_one())


async def make_service(runtime: Runtime, provider_id: int, upstream_service_id: int = 1, **fields: Any) -> int:
    values: dict[str, Any] = {
        "provider_id": provider_id,
        "upstream_service_id": upstream_service_id,
        "type": "Default",
        "upstream_type": "Default",
        "upstream_name": f"Service {upstream_service_id}",
        "upstream_category": "Instagram",
        "upstream_rate": Decimal("1.00"),
        "upstream_min": 10,
        "upstream_max": 10000,
    }
    values.update(fields)
    async with runtime.engine.begin() as conn:
        return int((await conn.execute(insert(Service).values(**values).returning(Service.id))).scalar_one())


async def balance_of(runtime: Runtime, customer_id: int) -> Decimal:
    async with runtime.engine.connect() as conn:
        return Decimal((await conn.execute(select(Customer.balance).where(Customer.id == customer_id))).scalar_one())


async def ledger_sum(runtime: Runtime, customer_id: int) -> Decimal:
    async with runtime.engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE customer_id = :c"), {"c": customer_id}
        )
    return Decimal(value)


def expected_refund(status: str, charge: Decimal, quantity: int, remains: int | None) -> Decimal:
    """What an order that ended with ``status`` (and the remains it shows) must have got back,
    written independently of the code under test: Canceled all, Partial the undelivered part."""
    if status == "Canceled":
        return Decimal(charge)
    if status == "Partial":
        assert remains is not None, "a Partial order always shows the remains it was refunded for"
        return partial_refund(Decimal(charge), quantity, remains)
    return Decimal(0)


async def place(runtime: Runtime, customer_id: int, params: dict[str, str], request_id: str | None = None) -> int:
    """An order placed the way the customer API places it (price book, charge, send, record),
    without going through HTTP; returns its id."""
    from gateway.ledger.customers import CustomerAccount
    from gateway.orders.placing import place_order

    book = await runtime.catalog.book()
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT api_key_hash, discount_percent, allowed_ips::text[] AS allowed_ips"
                    " FROM customers WHERE id = :id"
                ),
                {"id": customer_id},
            )
        ).one()
    customer = CustomerAccount(
        customer_id,
        Decimal(0),
        None,
        row.discount_percent,
        book.revision,
        allowed_ips=None if row.allowed_ips is None else tuple(row.allowed_ips),
        key_hash=row.api_key_hash,
    )
    return await place_order(
        runtime.orders, runtime.providers, runtime.pending_outcomes, book, customer, params, request_id, runtime.policy
    )
