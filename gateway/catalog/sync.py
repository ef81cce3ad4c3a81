"""Catalog sync: bring a provider's services into the gateway's catalog.

New upstream services appear under the gateway's own stable ids; changed rates, limits, types and
flags are updated; services that vanished upstream stop being for sale; the operator's local edits
(name, category, enabled, narrower limits, fixed rate) live in their own columns and are never
touched. One transaction per sync, bulk statements, so 5,000 services take well under a second of
database time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.catalog import queries
from gateway.catalog.margins import MarginGuard, guard_margins, old_cost_rates
from gateway.catalog.providers import require_provider
from gateway.errors import DomainError
from gateway.models import SERVICE_TYPES
from gateway.money import MAX_RATE
from gateway.providers import ProviderGateway
from gateway.upstream import Service as UpstreamService
from gateway.upstream import UpstreamError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

MAX_BIGINT = 2**63 - 1
_TYPE_KEYS = {re.sub(r"[^a-z0-9]", "", name.lower()): name for name in SERVICE_TYPES}


@dataclass(frozen=True, slots=True)
class SyncSummary:
    created: int
    updated: int
    disabled: int
    unchanged: int
    skipped: int = 0
    # The margin guard (gateway/catalog/margins.py): services whose price rise opened a margin
    # alert, that went off sale for their margin, and whose computed price the floor lifted.
    margin_alerts: int = 0
    margin_off_sale: int = 0
    margin_repriced: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "disabled": self.disabled,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "margin_alerts": self.margin_alerts,
            "margin_off_sale": self.margin_off_sale,
            "margin_repriced": self.margin_repriced,
        }


def service_type(upstream_type: str) -> str:
    """The protocol type name for an upstream's spelling (``custom_comments`` -> ``Custom Comments``).

    A type the gateway does not know is sold as ``Default`` (link and quantity); the upstream's
    own spelling stays in ``upstream_type`` for the operator to see.
    """
    return _TYPE_KEYS.get(re.sub(r"[^a-z0-9]", "", upstream_type.lower()), "Default")


def service_row(service: UpstreamService) -> dict[str, Any] | None:
    """The columns a sync writes for one upstream service, or None when it is unusable (negative,
    out of the columns' range, limits the wrong way round): one absurd row is skipped, never
    allowed to fail the whole provider's sync."""
    if not (0 <= service.rate <= MAX_RATE and 0 < service.service <= MAX_BIGINT):
        return None
    if not 0 <= service.min <= service.max <= MAX_BIGINT:
        return None
    return {
        "upstream_service_id": service.service,
        "type": service_type(service.type),
        "upstream_type": service.type[:200],
        "upstream_name": (service.name or f"Service {service.service}")[:500],
        "upstream_category": (service.category or "Other")[:200],
        "upstream_rate": service.rate,
        "upstream_min": service.min,
        "upstream_max": service.max,
        "refill": service.refill,
        "cancel": service.cancel,
        "dripfeed": service.dripfeed,
        "description": service.desc[:5000] if service.desc else None,
    }


async def apply_catalog(
    session: AsyncSession,
    provider_id: int,
    services: list[UpstreamService],
    progress: Progress | None = None,
    *,
    guard: MarginGuard | None = None,
) -> SyncSummary:
    """Write one provider's upstream catalog (inside the caller's transaction), then let the margin
    ``guard`` check every price against the new costs (None: no check)."""
    # One sync per provider at a time; a second one waits and then finds nothing to change.
    await session.execute(text("SELECT pg_advisory_xact_lock(726354101, CAST(:p AS integer))"), {"p": provider_id})
    rows: dict[int, dict[str, Any]] = {}
    skipped = 0
    for service in services:
        row = service_row(service)
        if row is None:
            skipped += 1
            continue
        rows[row["upstream_service_id"]] = row
    old_costs = old_cost_rates(await queries.provider_service_costs(session, provider_id)) if guard else {}
    if progress:
        progress("write", 0, len(rows))
    created, updated = await queries.upsert_upstream_services(session, provider_id, list(rows.values()))
    if progress:
        progress("write", len(rows), len(rows))
    disabled = await queries.mark_vanished_services(session, provider_id, list(rows))
    await queries.record_sync(session, provider_id, datetime.now(UTC), None)
    margins = await guard_margins(session, provider_id, old_costs, guard) if guard else None
    return SyncSummary(
        created=created,
        updated=updated,
        disabled=disabled,
        unchanged=len(rows) - created - updated,
        skipped=skipped,
        margin_alerts=margins.alerted if margins else 0,
        margin_off_sale=margins.off_sale if margins else 0,
        margin_repriced=margins.repriced if margins else 0,
    )


async def sync_provider(
    sessions: async_sessionmaker[AsyncSession],
    providers: ProviderGateway,
    provider_id: int,
    progress: Progress | None = None,
    *,
    on_applied: Callable[[AsyncSession, SyncSummary], Awaitable[None]] | None = None,
    guard: MarginGuard | None = None,
) -> SyncSummary:
    """Fetch a provider's services and apply them. Upstream failures raise :class:`UpstreamError`
    (and are remembered on the provider for the operator); nothing is changed then. No
    transaction is open while the upstream is asked. ``on_applied`` runs inside the transaction
    that applies the catalog (an audit entry then commits with the change, or not at all); ``guard``
    checks the prices against the new costs in that transaction too."""
    async with sessions() as session, session.begin():
        await require_provider(session, provider_id)
    if progress:
        progress("fetch", 0, 1)
    try:
        services = await providers.services(provider_id)
    except UpstreamError as exc:
        async with sessions() as session, session.begin():
            await queries.record_sync(session, provider_id, datetime.now(UTC), str(exc)[:500])
        raise
    if progress:
        progress("fetch", 1, 1)
    async with sessions() as session, session.begin():
        summary = await apply_catalog(session, provider_id, services, progress, guard=guard)
        if on_applied is not None:
            await on_applied(session, summary)
    log.info("catalog sync provider=%s %s", provider_id, summary.as_dict())
    return summary


class PeriodicSync:
    """The worker's catalog loop: sync each enabled provider every ``interval`` seconds.

    A provider whose sync failed is retried with a growing pause (remembered in this process
    only: losing it on restart costs one early retry, nothing more).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        providers: ProviderGateway,
        interval: float,
        guard: MarginGuard | None = None,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self.interval = interval
        self._guard = guard
        self._retry_at: dict[int, tuple[float, int]] = {}

    async def step(self, now: float) -> int:
        """Sync the providers that are due; returns how many were synced."""
        if self.interval <= 0:
            return 0
        async with self._sessions() as session:
            due = [p.id for p in await queries.providers_due_for_sync(session, self.interval)]
        synced = 0
        for provider_id in due:
            retry_at, failures = self._retry_at.get(provider_id, (0.0, 0))
            if now < retry_at:
                continue
            try:
                await sync_provider(self._sessions, self._providers, provider_id, guard=self._guard)
            except (UpstreamError, DomainError) as exc:
                failures += 1
                pause = min(self.interval, 30.0 * 2**failures)
                self._retry_at[provider_id] = (now + pause, failures)
                log.warning("catalog sync of provider %s failed (%s); next try in %.0fs", provider_id, exc, pause)
            else:
                self._retry_at.pop(provider_id, None)
                synced += 1
        return synced
