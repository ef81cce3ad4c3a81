"""The one statement of a v2 ``status`` call: the caller's key lookup and the status read of the
orders it asks about, in one round trip instead of two.

It spans two domains, so it is composed here, at the edge that needs it, from what each domain
publishes: the customer columns of ``gateway.ledger.customers.CUSTOMER_BY_KEY_HASH`` (checked by
:func:`~gateway.ledger.customers.account_from_row`, the same test as every other key lookup)
and the columns of :class:`~gateway.orders.store.OrderStatusRow`, the rows of
``CUSTOMER_ORDERS``. tests/v2/test_reads.py checks that it answers exactly what the two
statements answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from gateway.db import HotPathPool
from gateway.ledger.customers import CustomerAccount, account_from_row, lookup_hash
from gateway.orders.store import OrderStatusRow

__all__ = ["KEY_AND_ORDER_STATUSES", "account_and_statuses"]

_ORDER_NAMES = tuple(f"order_{name}" for name in OrderStatusRow._fields)
_ORDER_COLUMNS = ", ".join(f"o.{name} AS order_{name}" for name in OrderStatusRow._fields)

# The caller's own orders only: a foreign or unknown id is simply absent (LEFT JOIN: the customer
# row comes back even when none of the ids is theirs).
KEY_AND_ORDER_STATUSES = text(
    "SELECT c.id, c.api_key_hash, c.enabled, c.balance, c.dialect, c.discount_percent,"  # noqa: S608 - OrderStatusRow's fields
    " c.allowed_ips::text[] AS allowed_ips,"
    " (SELECT revision FROM catalog_revision WHERE id = 1) AS catalog_revision,"
    f" {_ORDER_COLUMNS}"
    " FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.id = ANY(:ids)"
    " WHERE c.api_key_hash = :hash"
)


async def account_and_statuses(
    hot: HotPathPool, key: str | None, order_ids: Sequence[int], key_hash: bytes | None = None
) -> tuple[CustomerAccount | None, dict[int, OrderStatusRow]]:
    """The enabled customer owning ``key`` (None as for any key lookup) and its own orders among
    ``order_ids``; nothing of any order unless the key is valid. ``key_hash``: ``lookup_hash(key)``
    when the caller has it already."""
    if key_hash is None:
        key_hash = lookup_hash(key)
        if key_hash is None:
            return None, {}
    rows = await hot.fetch(KEY_AND_ORDER_STATUSES, hash=key_hash, ids=list(order_ids))
    account = account_from_row(rows[0], key, key_hash) if rows else None
    if account is None:
        return None, {}
    found = {}
    for row in rows:
        if row["order_id"] is not None:
            order = OrderStatusRow(*(row[name] for name in _ORDER_NAMES))
            found[order.id] = order
    return account, found
