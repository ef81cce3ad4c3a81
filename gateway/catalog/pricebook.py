"""The price book: every service with its default quote and its routes, kept in memory per process.

Building it reads the whole catalog; serving from it reads nothing. Each process keeps the book of
the catalog revision it last saw (``catalog_revision``, bumped by database triggers on every
price-relevant write) and rebuilds it when a request brings a newer revision, so a price change
is visible on the very next call in every process.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gateway.catalog import queries
from gateway.catalog.pricing import MarkupRule, Quote, RuleBook, customer_quote, default_quote
from gateway.money import cost_rate, format_money


@dataclass(frozen=True, slots=True)
class Route:
    """A provider service that can serve a gateway service: its own (priority 0) or a failover
    route (priority 1, 2, ...), with what an order sent there costs per 1000."""

    priority: int
    service_id: int
    provider_id: int
    upstream_service_id: int
    cost_rate: Decimal
    min: int
    max: int
    dripfeed: bool


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """A route and why it cannot serve orders now (``problem`` None: it can). ``kind`` names the
    problem: ``gone`` or ``provider_disabled`` pass (the route serves again when they do);
    ``type`` and ``limits`` are configuration errors the operator must fix."""

    route: Route
    problem: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class PricedService:
    """A service as customers see it (the operator's edits applied) with its default quote and
    the routes an order may take, in order (the usable ones only)."""

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
    routes: tuple[Route, ...] = ()
    # What customers read about it: the operator's text, else the upstream's.
    desc: str | None = None


class ServiceListing(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of the v2 ``services`` answer (PROTOCOL.md section 2), plus ``desc`` and
    ``average_time`` (minutes per 1,000 from the last 10 completed orders) when known."""

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
    desc: str | None = None
    average_time: int | None = None


_encoder = msgspec.json.Encoder()
AVERAGE_TIMES_EVERY_SECONDS = 60.0
# The encoded ``services`` answers one book keeps (least recently used dropped first): a 5,000
# service listing is about 1 MB, so a bound by count alone would let a few thousand customers with
# own rates hold gigabytes.
LISTINGS_MAX_BYTES = 64 * 1024 * 1024


class _Listings:
    """Encoded listings by pricing (own rates, discount), bounded in bytes, least recently used
    dropped first. Belongs to one book: a new catalog revision starts empty."""

    def __init__(self, max_bytes: int = LISTINGS_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, Decimal], bytes] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple[int, Decimal]) -> bytes | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[int, Decimal], listing: bytes) -> None:
        self._entries[key] = listing
        self.bytes += len(listing)
        while self.bytes > self._max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= len(dropped)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class PriceBook:
    revision: int
    min_margin_percent: Decimal
    services: dict[int, PricedService]
    customer_rates: dict[int, dict[int, Decimal]]
    _listings: _Listings = field(default_factory=_Listings)
    # Minutes per 1,000 of each service's last completed orders (refreshed by the Catalog).
    average_times: dict[int, int] = field(default_factory=dict)
    # Customers with the same own rates share a listing: customer id -> their rates' number
    # (1, 2, ...; 0 is no own rate at all).
    _pricings: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        numbers: dict[frozenset[tuple[int, Decimal]], int] = {}
        for customer_id, rates in self.customer_rates.items():
            if rates:
                self._pricings[customer_id] = numbers.setdefault(frozenset(rates.items()), len(numbers) + 1)

    def set_average_times(self, times: dict[int, int]) -> None:
        if times != self.average_times:
            self.average_times = times
            self._listings.clear()

    def pricing_key(self, customer_id: int, discount_percent: Decimal) -> tuple[int, Decimal]:
        """What a customer's prices depend on in this book: their own rates and their discount."""
        return self._pricings.get(customer_id, 0), discount_percent

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
        """The v2 ``services`` answer for one customer, encoded once per catalog revision and
        pricing (:meth:`pricing_key`): own rates and discounts are catalog writes, so a change to
        either is a new revision, hence a new book; the discount is part of the key besides."""
        key = self.pricing_key(customer_id, discount_percent)
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
                    desc=s.desc,
                    average_time=self.average_times.get(s.id),
                )
                for s in self.services.values()
                if s.for_sale
            ]
            cached = _encoder.encode(listing)
            self._listings.put(key, cached)
        return cached


def effective_limits(row: queries.ServiceRow) -> tuple[int, int]:
    """The operator may only narrow the upstream's limits, never widen them."""
    low = max(row.upstream_min, row.min_override or 0)
    high = row.upstream_max if row.max_override is None else min(row.upstream_max, row.max_override)
    return low, max(low, high)


def _route(priority: int, row: queries.ServiceRow) -> Route:
    return Route(
        priority=priority,
        service_id=row.id,
        provider_id=row.provider_id,
        upstream_service_id=row.upstream_service_id,
        cost_rate=cost_rate(row.upstream_rate, row.fx_rate),
        min=row.upstream_min,
        max=row.upstream_max,
        dripfeed=row.dripfeed,
    )


def _check(priority: int, row: queries.ServiceRow, service: queries.ServiceRow, low: int, high: int) -> RouteCheck:
    route = _route(priority, row)
    if not row.upstream_present:
        return RouteCheck(route, "its upstream service is gone", "gone")
    if not row.provider_enabled:
        return RouteCheck(route, "its provider is disabled", "provider_disabled")
    if row.type != service.type:
        return RouteCheck(route, f"its type is {row.type}, not {service.type}", "type")
    if priority and (row.upstream_max < low or row.upstream_min > high):
        problem = (
            f"its limits {row.upstream_min}-{row.upstream_max} do not overlap {low}-{high} of the routes before it"
        )
        return RouteCheck(route, problem, "limits")
    return RouteCheck(route)


def check_routes(
    row: queries.ServiceRow, alternates: Sequence[tuple[int, queries.ServiceRow]]
) -> tuple[list[RouteCheck], int, int]:
    """The service's own route and its failover routes (``(priority, row)``, in order), each with
    why it cannot serve now, and the quantity limits every usable route accepts.

    A route serves when its upstream service is still listed, its provider is enabled, its type
    is the service's, and its upstream limits overlap what the routes before it accept (so the
    customer-facing min/max narrows to what every usable route takes, and never becomes empty)."""
    low, high = effective_limits(row)
    checks = [_check(0, row, row, low, high)]
    for priority, alternate in alternates:
        check = _check(priority, alternate, row, low, high)
        if check.problem is None:
            low, high = max(low, alternate.upstream_min), min(high, alternate.upstream_max)
        checks.append(check)
    return checks, low, high


def price_service(
    row: queries.ServiceRow,
    rules: RuleBook,
    min_margin_percent: Decimal,
    alternates: Sequence[tuple[int, queries.ServiceRow]] = (),
) -> PricedService:
    """Price one service; ``alternates`` are its failover routes' rows with their priorities. The
    customer's price is the service's own (its own provider's cost), whichever route serves."""
    category = row.category_override or row.upstream_category
    cost = cost_rate(row.upstream_rate, row.fx_rate)
    quote = default_quote(
        cost,
        rule=rules.rule_for(row.id, category, row.provider_id),
        fixed_rate=row.fixed_rate,
        min_margin_percent=min_margin_percent,
    )
    checks, low, high = check_routes(row, alternates)
    routes = tuple(check.route for check in checks if check.problem is None)
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
        # Off sale by the operator, or by the margin guard until the price is back above the floor.
        for_sale=row.enabled and row.margin_hold_since is None and bool(routes),
        quote=quote,
        routes=routes,
        desc=row.description_override or row.description,
    )


def _alternates(
    routes: dict[int, list[tuple[int, int]]], rows: dict[int, queries.ServiceRow], service_id: int
) -> list[tuple[int, queries.ServiceRow]]:
    return [(priority, rows[route_id]) for priority, route_id in routes.get(service_id, []) if route_id in rows]


async def load_pricebook(conn: AsyncConnection, min_margin_percent: Decimal) -> PriceBook:
    """The whole price book as the database has it now."""
    revision = await queries.catalog_revision(conn)
    rules = RuleBook([MarkupRule(**r) for r in await queries.markup_rules(conn)])
    rows = {row.id: row for row in await queries.services_for_pricing(conn)}
    routes = await queries.service_routes(conn)
    services = {
        row.id: price_service(row, rules, min_margin_percent, _alternates(routes, rows, row.id))
        for row in rows.values()
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
        self._average_times: dict[int, int] = {}
        self._average_times_at = -AVERAGE_TIMES_EVERY_SECONDS

    async def with_average_times(self, book: PriceBook) -> PriceBook:
        """``book`` with the services' average delivery times, read at most once a minute."""
        now = time.monotonic()
        if now - self._average_times_at >= AVERAGE_TIMES_EVERY_SECONDS:
            self._average_times_at = now
            async with self._engine.connect() as conn:
                self._average_times = await queries.average_times(conn)
        book.set_average_times(self._average_times)
        return book

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
    listed = await queries.services_for_pricing(session, service_ids)
    routes = await queries.service_routes(session, None if service_ids is None else [row.id for row in listed])
    rows = {row.id: row for row in listed}
    missing = {route_id for entries in routes.values() for _, route_id in entries} - rows.keys()
    if missing:
        rows.update((row.id, row) for row in await queries.services_for_pricing(session, sorted(missing)))
    return [price_service(row, rules, min_margin_percent, _alternates(routes, rows, row.id)) for row in listed]
