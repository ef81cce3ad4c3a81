"""The schema: migrations match the models, and the database itself guards the money."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from gateway.db import current_revision, head_revision
from gateway.models import Base
from gateway.runtime import Runtime


async def test_migrations_reach_head(runtime: Runtime) -> None:
    assert await current_revision(runtime.engine) == head_revision()


async def test_models_and_migrations_do_not_drift(runtime: Runtime) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, Base.metadata))

    async with runtime.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def _seed(runtime: Runtime) -> dict[str, int]:
    async with runtime.engine.begin() as conn:
        customer = await conn.scalar(
            text(
                "INSERT INTO customers (name, api_key_hash, api_key_hint, balance)"
                " VALUES ('c', decode(repeat('ab', 32), 'hex'), 'smm_ab', 10) RETURNING id"
            )
        )
        provider = await conn.scalar(
            text(
                "INSERT INTO providers (name, api_url, api_key) VALUES ('p', 'http://up.example/api/v2', 'k')"
                " RETURNING id"
            )
        )
        service = await conn.scalar(
            text(
                "INSERT INTO services (provider_id, upstream_service_id, type, upstream_type, upstream_name,"
                " upstream_category, upstream_rate, upstream_min, upstream_max)"
                " VALUES (:p, 1, 'Default', 'Default', 'Likes', 'Instagram', 0.5, 10, 1000) RETURNING id"
            ),
            {"p": provider},
        )
        order = await conn.scalar(
            text(
                "INSERT INTO orders (customer_id, service_id, provider_id, upstream_service_id, link, quantity,"
                " rate, charge, cost, currency) VALUES (:c, :s, :p, 1, 'https://x', 100, 1, 1.00, 0.05, 'USD')"
                " RETURNING id"
            ),
            {"c": customer, "s": service, "p": provider},
        )
        await conn.execute(
            text(
                "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id)"
                " VALUES (:c, 'charge', -1.00, 9.00, :o)"
            ),
            {"c": customer, "o": order},
        )
    return {"customer": customer, "provider": provider, "service": service, "order": order}


async def test_database_refuses_a_negative_balance(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    with pytest.raises(IntegrityError, match="balance_not_negative"):
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text("UPDATE customers SET balance = balance - 10.00001 WHERE id = :c"),
                {"c": ids["customer"]},
            )
    async with runtime.engine.connect() as conn:
        balance = await conn.scalar(text("SELECT balance FROM customers WHERE id = :c"), {"c": ids["customer"]})
    assert balance == Decimal("10.00000")


async def test_database_refuses_a_second_charge_for_one_order(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    with pytest.raises(IntegrityError, match="uq_ledger_entries_order_charge"):
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id)"
                    " VALUES (:c, 'charge', -1.00, 8.00, :o)"
                ),
                {"c": ids["customer"], "o": ids["order"]},
            )


async def test_database_refuses_a_second_refund_for_one_order(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    refund = text(
        "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after, order_id)"
        " VALUES (:c, 'refund', 0.50, 9.50, :o)"
    )
    async with runtime.engine.begin() as conn:
        await conn.execute(refund, {"c": ids["customer"], "o": ids["order"]})
    with pytest.raises(IntegrityError, match="uq_ledger_entries_order_refund"):
        async with runtime.engine.begin() as conn:
            await conn.execute(refund, {"c": ids["customer"], "o": ids["order"]})


async def test_database_refuses_a_refund_above_the_charge(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    with pytest.raises(IntegrityError, match="refund_within_charge"):
        async with runtime.engine.begin() as conn:
            await conn.execute(text("UPDATE orders SET refunded = 1.00001 WHERE id = :o"), {"o": ids["order"]})


async def test_database_refuses_a_placed_order_without_upstream_id(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    with pytest.raises(IntegrityError, match="placed_has_upstream_id"):
        async with runtime.engine.begin() as conn:
            await conn.execute(text("UPDATE orders SET state = 'placed' WHERE id = :o"), {"o": ids["order"]})


async def test_database_refuses_a_charge_entry_that_credits(runtime: Runtime) -> None:
    ids = await _seed(runtime)
    with pytest.raises(IntegrityError, match="kind_shape"):
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO ledger_entries (customer_id, kind, amount, balance_after)"
                    " VALUES (:c, 'deposit', -5, 5)"
                ),
                {"c": ids["customer"]},
            )
