"""Who is calling: the customer behind a v2 key, read in one round trip with the catalog revision."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text

from gateway.db import HotPathPool
from gateway.errors import INVALID_API_KEY, ProtocolError
from gateway.ledger.keys import MAX_KEY_LENGTH, hash_key, hashes_match

CUSTOMER_BY_KEY_HASH = text(
    "SELECT id, api_key_hash, enabled, balance, dialect, discount_percent,"
    " (SELECT revision FROM catalog_revision WHERE id = 1) AS catalog_revision"
    " FROM customers WHERE api_key_hash = :hash"
)


@dataclass(frozen=True, slots=True)
class Caller:
    id: int
    balance: Decimal
    dialect: str | None
    discount_percent: Decimal
    catalog_revision: int


async def authenticate(hot: HotPathPool, key: str | None) -> Caller:
    """The enabled customer owning ``key``; anything else is ``Invalid API key``."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ProtocolError(INVALID_API_KEY)
    row = await hot.fetchrow(CUSTOMER_BY_KEY_HASH, hash=hash_key(key))
    if row is None or not row["enabled"] or not hashes_match(row["api_key_hash"], key):
        raise ProtocolError(INVALID_API_KEY)
    return Caller(
        id=row["id"],
        balance=row["balance"],
        dialect=row["dialect"],
        discount_percent=row["discount_percent"],
        catalog_revision=row["catalog_revision"],
    )
