"""The price book: every service with its default quote, kept in memory per process.

Building it reads the whole catalog; serving from it reads nothing. Each process keeps the book of
the catalog revision it last saw (``catalog_revision``, bumped by database triggers on every
price-relevant write) and rebuilds it when a request brings a newer revision, so a price change
is visible on the very next call in every process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gateway.catalog import queries
from gateway.catalog.pricing import MarkupRule, Quote, RuleBook, customer_quote, default_quote
from gateway.money import cost_rate, format_money


@dataclass(frozen=True, slots=True)
class PricedService:
    """A service as customers see it (the operator's edits applied) with its default quote."""

    id: int
    provider_id: int
    upstream_service_id: int
    name: str
    type: str
    category: str
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool
    for_sale: bool
    quote: Quote


class ServiceListing(msgspec.Struct, frozen=True):
    """One entry of the v2 ``services`` answer (PROTOCOL.md section 2)."""

    service: int
    name: str
    type: str
    category: str
    rate: str
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool


_encoder = msgspec.json.Encoder()


@dataclass
class PriceBook:
    revision: int
    min_margin_percent: Decimal
    services: dict[int, PricedService]
    customer_rates: dict[int, dict[int, Decimal]]
    _listings: dict[tuple[int, Decimal], bytes] = field(default_factory=dict)

    def quote(self, service: PricedService, customer_id: int, discount_percent: Decimal) -> Quote:
        """What this customer pays per 1000 of this service."""
        own = self.customer_rates.get(customer_id, {}).get(service.id)
        if own is None and discount_percent <= 0:
            return service.quote
        return customer_quote(
            service.quote,
            discount_percent=discount_percent,
            own_rate=own,
            min_margin_percent=self.min_margin_percent,
        )

    def for_sale(self, service_id: int) -> PricedService | None:
        service = self.services.get(service_id)
        return service if service is not None and service.for_sale else None

    def listing_json(self, customer_id: int, discount_percent: Decimal) -> bytes:
        """The v2 ``services`` answer for one customer, encoded once per catalog revision."""
        key = (customer_id if customer_id in self.customer_rates else 0, discount_percent)
        cached = self._listings.get(key)
        if cached is None:
            listing = [
                ServiceListing(
                    service=s.id,
                    name=s.name,
                    type=s.type,
                    category=s.category,
                    rate=format_money(self.quote(s, customer_id, discount_percent).rate),
                    min=s.min,
                    max=s.max,
                    refill=s.refill,
                    cancel=s.cancel,
                    dripfeed=s.dripfeed,
                )
                for s in self.services.values()
                if s.for_sale
            ]
            cached = _encoder.encode(listing)
            if len(self._listings) > 10_000:
                self._listings.clear()
            self._listings[key] = cached
        return cached


def effective_limits(row: queries.ServiceRow) -> tuple[int, int]:
    """The operator may only narrow the upstream's limits, never widen them."""
    low = max(row.upstream_min, row.min_override or 0)
    high = row.upstream_max if row.max_override is None else min(row.upstream_max, row.max_override)
    return low, max(low, high)


def price_service(row: queries.ServiceRow, rules: RuleBook, min_margin_percent: Decimal) -> PricedService:
    category = row.category_override or row.upstream_category
    cost = cost_rate(row.upstream_rate, row.fx_rate)
    quote = default_quote(
        cost,
        rule=rules.rule_for(row.id, category, row.provider_id),
        fixed_rate=row.fixed_rate,
        min_margin_percent=min_margin_percent,
    )
    low, high = effective_limits(row)
    return PricedService(
        id=row.id,
        provider_id=row.provider_id,
        upstream_service_id=row.upstream_service_id,
        name=row.name_override or row.upstream_name,
        type=row.type,
        category=category,
        min=low,
        max=high,
        refill=row.refill,
        cancel=row.cancel,
        dripfeed=row.dripfeed,
        for_sale=row.enabled and row.upstream_present and row.provider_enabled,
        quote=quote,
    )


async def load_pricebook(conn: AsyncConnection, min_margin_percent: Decimal) -> PriceBook:
    """The whole price book as the database has it now."""
    revision = await queries.catalog_revision(conn)
    rules = RuleBook([MarkupRule(**r) for r in await queries.markup_rules(conn)])
    services = {
        row.id: price_service(row, rules, min_margin_percent) for row in await queries.services_for_pricing(conn)
    }
    return PriceBook(
        revision=revision,
        min_margin_percent=min_margin_percent,
        services=services,
        customer_rates=await queries.all_customer_rates(conn),
    )


class Catalog:
    """The process' price book, rebuilt when the database says the catalog moved on."""

    def __init__(self, engine: AsyncEngine, min_margin_percent: Decimal) -> None:
        self._engine = engine
        self._min_margin = min_margin_percent
        self._book: PriceBook | None = None
        self._lock = asyncio.Lock()

    async def book(self, revision: int | None = None) -> PriceBook:
        """The book for ``revision`` (read from the database when not given), rebuilding if stale."""
        book = self._book
        if book is not None and revision is not None and book.revision >= revision:
            return book
        async with self._lock:
            if revision is None:
                async with self._engine.connect() as conn:
                    revision = await queries.catalog_revision(conn)
            book = self._book
            if book is None or book.revision < revision:
                async with self._engine.connect() as conn:
                    book = await load_pricebook(conn, self._min_margin)
                self._book = book
            return book


async def price_services(
    session: AsyncSession, service_ids: list[int] | None, min_margin_percent: Decimal
) -> list[PricedService]:
    """Price services from the session's own view of the catalog (sees its uncommitted edits)."""
    rules = RuleBook([MarkupRule(**r) for r in await queries.markup_rules(session)])
    rows = await queries.services_for_pricing(session, service_ids)
    return [price_service(row, rules, min_margin_percent) for row in rows]
