"""Customers: who is calling (the account behind a v2 key), creation (the key shown once), key
rotation, settings, and their ledger. The one home of the customer: the table is
:class:`gateway.models.Customer`, the account a request acts for is :class:`CustomerAccount`."""

from __future__ import annotations

import dataclasses
import functools
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import HotPathPool
from gateway.errors import InvalidInput, NotFound
from gateway.ledger.keys import MAX_KEY_LENGTH, hash_key, hashes_match, new_api_key
from gateway.ledger.ledger import add_funds
from gateway.models import DIALECTS, Customer, LedgerEntry
from gateway.money import HUNDRED, MoneyError, parse_amount, parse_decimal

# The key lookup of every v2 call, with the catalog revision in the same round trip.
CUSTOMER_BY_KEY_HASH = text(
    "SELECT id, api_key_hash, enabled, balance, dialect, discount_percent, allowed_ips::text[] AS allowed_ips,"
    " (SELECT revision FROM catalog_revision WHERE id = 1) AS catalog_revision"
    " FROM customers WHERE api_key_hash = :hash"
)
# A key used from outside its allowlist: the operator sees when and from where (at most one write
# every 10 s per customer, whatever the caller sends).
NOTE_IP_REFUSAL = text(
    "UPDATE customers SET ip_refused_at = now(), ip_refused_from = :address"
    " WHERE id = :id AND (ip_refused_at IS NULL OR ip_refused_at < now() - interval '10 seconds')"
)
MAX_ALLOWED_IPS = 100
_LIMIT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def _networks(ranges: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


def address_allowed(ranges: tuple[str, ...] | None, address: str) -> bool:
    """Whether ``address`` may use a key whose allowlist is ``ranges`` (None: any address)."""
    if ranges is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(ranges))


def validate_allowed_ips(values: object) -> list[str] | None:
    """The operator's allowlist as CIDR ranges (addresses become /32 or /128); empty: None."""
    if values is None:
        return None
    if not isinstance(values, list) or len(values) > MAX_ALLOWED_IPS:
        raise InvalidInput(
            f"allowed_ips must be a list of at most {MAX_ALLOWED_IPS} addresses or CIDR ranges", field="allowed_ips"
        )
    ranges: list[str] = []
    for index, value in enumerate(values):
        try:
            if not isinstance(value, str) or not value.isascii() or value != value.strip():
                raise ValueError
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise InvalidInput(
                f"allowed_ips[{index}] must be an address or a CIDR range such as 203.0.113.0/24",
                field="allowed_ips",
            ) from None
        if str(network) not in ranges:
            ranges.append(str(network))
    return ranges or None


def validate_spend_limit(value: object) -> Decimal | None:
    """A daily spend limit: a positive amount, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, str) and not _LIMIT.fullmatch(value)):
        raise InvalidInput("daily_spend_limit must be an amount such as 25 or 25.50", field="daily_spend_limit")
    limit = validate_amount(value, "daily_spend_limit")
    if limit <= 0:
        raise InvalidInput("daily_spend_limit must be positive (or null: no limit)", field="daily_spend_limit")
    return limit


def spent_today(customer: Customer) -> Decimal:
    """What the customer was charged on the current UTC day (what a daily spend limit counts: the
    running total is only today's when it was last moved today, as the charge statement reads it)."""
    return customer.spent_today if customer.spent_day == datetime.now(UTC).date() else Decimal(0)


async def note_ip_refusal(hot: HotPathPool, customer_id: int, address: str) -> None:
    await hot.fetchrow(NOTE_IP_REFUSAL, id=customer_id, address=address[:45])


@dataclass(frozen=True, slots=True)
class CustomerAccount:
    """The enabled customer a request acts for, as of its key lookup (with the catalog revision
    of that moment, so prices and providers are read as of the same revision)."""

    id: int
    balance: Decimal
    dialect: str | None
    discount_percent: Decimal
    catalog_revision: int
    # The ranges the key may be used from (None: anywhere).
    allowed_ips: tuple[str, ...] | None = None
    # The key's hash as stored: a charge goes through only while it is still the customer's.
    key_hash: bytes = b""
    # Read a moment ago rather than for this call (AccountCache): only good for a charge that
    # verifies it; nothing is refused on it.
    remembered: bool = False


async def account_for_key(hot: HotPathPool, key: str | None, key_hash: bytes | None = None) -> CustomerAccount | None:
    """The enabled customer owning ``key``, or None (unknown, revoked, disabled, malformed).
    ``key_hash``: ``lookup_hash(key)`` when the caller has it already (it is not computed again)."""
    if key_hash is None:
        key_hash = lookup_hash(key)
        if key_hash is None:
            return None
    return account_from_row(await hot.fetchrow(CUSTOMER_BY_KEY_HASH, hash=key_hash), key, key_hash)


def lookup_hash(key: str | None) -> bytes | None:
    """The hash to look ``key`` up by, or None when no customer can own it (empty, too long)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    return hash_key(key)


def account_from_row(row: Any, key: str | None, key_hash: bytes | None = None) -> CustomerAccount | None:
    """The account of a row with the columns of ``CUSTOMER_BY_KEY_HASH`` (another statement may
    read them along with its own), or None unless it is enabled and really owns ``key``
    (``key_hash``: its hash when the caller has it, as :func:`lookup_hash` gives it)."""
    if row is None or key is None or not row["enabled"]:
        return None
    owned = (
        hashes_match(row["api_key_hash"], key)
        if key_hash is None
        else hmac.compare_digest(row["api_key_hash"], key_hash)
    )
    if not owned:
        return None
    return CustomerAccount(
        id=row["id"],
        balance=row["balance"],
        dialect=row["dialect"],
        discount_percent=row["discount_percent"],
        catalog_revision=row["catalog_revision"],
        allowed_ips=None if row["allowed_ips"] is None else tuple(row["allowed_ips"]),
        key_hash=row["api_key_hash"],
    )


class AccountCache:
    """Accounts by key hash as read a moment ago, for ``add`` only: its charge statement goes
    through only while the customer row still holds that account (enabled, the same key hash,
    allowlist and discount: checked on the row it locks) and at the revision of the price book the
    price came from, so acting on a remembered account can never charge a wrong price or let a
    disabled customer or a rotated key order. Nothing is refused on a remembered account (a refused
    add is retried on a fresh read), and every other action reads the account fresh.

    Entries live ``ttl_seconds``; at most ``max_entries`` (the oldest go first). Keyed by the
    key's hash, as the database keeps it: no key is held here.
    """

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[bytes, tuple[CustomerAccount, float]] = {}

    def get(self, key_hash: bytes) -> CustomerAccount | None:
        """The account read for ``key_hash`` less than ``ttl_seconds`` ago, marked remembered."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        account, expires = entry
        if time.monotonic() >= expires:
            del self._entries[key_hash]
            return None
        if not account.remembered:
            # Marked on the first use, not on every read that puts one (most are never used).
            account = dataclasses.replace(account, remembered=True)
            self._entries[key_hash] = (account, expires)
        return account

    def put(self, key_hash: bytes, account: CustomerAccount) -> None:
        self._entries.pop(key_hash, None)
        if len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = (account, time.monotonic() + self._ttl)

    def drop(self, key_hash: bytes) -> None:
        self._entries.pop(key_hash, None)

    def __len__(self) -> int:
        return len(self._entries)


def validate_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200 or any(ch in name for ch in "\x00\r\n"):
        raise InvalidInput("name must be 1 to 200 characters on one line", field="name")
    return name


def validate_dialect(dialect: str | None) -> str | None:
    if dialect is not None and dialect not in DIALECTS:
        raise InvalidInput(f"dialect must be one of {', '.join(DIALECTS)}", field="dialect")
    return dialect


def validate_discount(value: object) -> Decimal:
    try:
        discount = parse_decimal(value, field="discount_percent")
    except MoneyError as exc:
        raise InvalidInput(str(exc), field="discount_percent") from None
    if not 0 <= discount <= HUNDRED or discount != round(discount, 4):
        raise InvalidInput(
            "discount_percent must be between 0 and 100 with at most 4 decimals", field="discount_percent"
        )
    return discount


def validate_amount(value: object, field: str = "amount") -> Decimal:
    try:
        return parse_amount(value, field=field)
    except MoneyError as exc:
        raise InvalidInput(str(exc), field=field) from None


def validate_note(note: str | None) -> str | None:
    if note is not None and len(note) > 1000:
        raise InvalidInput("note must be at most 1000 characters", field="note")
    return note


@dataclass(frozen=True, slots=True)
class NewCustomer:
    customer: Customer
    api_key: str


async def create_customer(
    session: AsyncSession,
    *,
    name: str,
    balance: Decimal,
    dialect: str | None,
    discount_percent: Decimal,
    actor: str,
) -> NewCustomer:
    """A new customer with a fresh key; a starting balance is booked as a deposit entry."""
    if balance < 0:
        raise InvalidInput("balance must not be negative", field="balance")
    key, key_hash, hint = new_api_key()
    customer = Customer(
        name=name, api_key_hash=key_hash, api_key_hint=hint, dialect=dialect, discount_percent=discount_percent
    )
    session.add(customer)
    await session.flush()
    if balance > 0:
        await add_funds(session, customer.id, balance, note="starting balance", actor=actor)
    await session.refresh(customer)
    return NewCustomer(customer, key)


async def require_customer(session: AsyncSession, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


async def rotate_key(session: AsyncSession, customer_id: int) -> str:
    """A new key; the old one stops working when this commits."""
    key, key_hash, hint = new_api_key()
    result = await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(api_key_hash=key_hash, api_key_hint=hint, updated_at=func.now())
        .returning(Customer.id)
    )
    if result.first() is None:
        raise NotFound(f"customer {customer_id} not found")
    return key


async def update_customer(session: AsyncSession, customer: Customer, values: dict[str, Any]) -> Customer:
    for name, value in values.items():
        setattr(customer, name, value)
    customer.updated_at = func.now()
    await session.flush()
    await session.refresh(customer)
    return customer


async def list_customers(
    session: AsyncSession, *, search: str | None, enabled: bool | None, limit: int, before: int | None
) -> list[Customer]:
    query = select(Customer).order_by(Customer.id.desc()).limit(limit)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Customer.name.ilike(pattern))
    if enabled is not None:
        query = query.where(Customer.enabled.is_(enabled))
    if before is not None:
        query = query.where(Customer.id < before)
    return list((await session.scalars(query)).all())


async def move_funds(session: AsyncSession, customer_id: int, amount: Decimal, note: str | None, actor: str) -> Decimal:
    """Add (positive) or deduct (negative) funds; a deduction below zero is refused."""
    await require_customer(session, customer_id)
    return await add_funds(session, customer_id, amount, note=note, actor=actor)


async def ledger_entries(
    session: AsyncSession, customer_id: int, *, limit: int, before: int | None
) -> list[LedgerEntry]:
    await require_customer(session, customer_id)
    query = (
        select(LedgerEntry).where(LedgerEntry.customer_id == customer_id).order_by(LedgerEntry.id.desc()).limit(limit)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    return list((await session.scalars(query)).all())
