"""Single-upstream mode: ``GATEWAY_UPSTREAM_URL`` + ``GATEWAY_UPSTREAM_KEY``.

On start (``gateway serve`` and ``gateway worker``) the provider with that URL is created if no
provider has it, and its catalog is synced when it has never been synced. Creation runs under a
transaction-scoped advisory lock, so processes starting together create one provider, not one
each. Nothing here blocks start-up: it runs as a background task, and a failed sync is logged and
left to the worker's periodic catalog sync, which retries providers never synced.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.catalog.providers import (
    ProviderChanges,
    create_provider,
    find_provider_by_url,
    update_provider,
    validate_key,
    validate_url,
)
from gateway.catalog.sync import sync_provider
from gateway.errors import DomainError
from gateway.models import Provider
from gateway.providers import ProviderGateway
from gateway.settings import Settings
from gateway.upstream import UpstreamError

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the single-upstream bootstrap (the catalog sync uses 726354101).
BOOTSTRAP_LOCK = 726354102


def provider_name(api_url: str) -> str:
    """The name a provider created from the environment gets: ``upstream <host[:port]>``."""
    url = httpx.URL(api_url)
    host = url.host or "unknown"
    return f"upstream {host}:{url.port}" if url.port else f"upstream {host}"


async def _unused_name(session: AsyncSession, name: str) -> str:
    taken = set((await session.scalars(select(Provider.name).where(Provider.name.startswith(name)))).all())
    if name not in taken:
        return name
    number = 2
    while f"{name} #{number}" in taken:
        number += 1
    return f"{name} #{number}"


async def ensure_single_upstream(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], providers: ProviderGateway
) -> int | None:
    """Create (or update the key of) the provider of ``GATEWAY_UPSTREAM_URL`` and sync it if it was
    never synced. Returns the provider id, or None when single-upstream mode is off.

    Raises :class:`DomainError` for a URL or key the gateway refuses; an upstream failure during
    the sync is logged, not raised.
    """
    if settings.upstream_url is None or settings.upstream_key is None:
        return None
    api_url = validate_url(settings.upstream_url, settings.allow_private_upstreams)
    api_key = validate_key(settings.upstream_key.get_secret_value())
    async with sessions() as session, session.begin():
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOTSTRAP_LOCK})
        provider = await find_provider_by_url(session, api_url)
        if provider is None:
            name = await _unused_name(session, provider_name(api_url))
            provider = await create_provider(session, ProviderChanges(name=name, api_url=api_url, api_key=api_key))
            log.info("single-upstream mode: provider created", extra={"provider": provider.id, "provider_name": name})
        elif provider.api_key != api_key:
            # The environment is the source of truth in this mode: a rotated key takes effect.
            provider = await update_provider(session, provider, ProviderChanges(api_key=api_key))
            log.info("single-upstream mode: provider key updated", extra={"provider": provider.id})
        provider_id = provider.id
        never_synced = provider.last_sync_at is None
    if never_synced:
        try:
            await sync_provider(sessions, providers, provider_id)
        except (UpstreamError, DomainError) as exc:
            log.warning(
                "single-upstream mode: catalog sync failed; the worker's periodic sync retries it",
                extra={"provider": provider_id, "error": str(exc)},
            )
    return provider_id


async def run_single_upstream(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], providers: ProviderGateway
) -> None:
    """:func:`ensure_single_upstream` as a background task: it never raises."""
    try:
        await ensure_single_upstream(settings, sessions, providers)
    except asyncio.CancelledError:
        raise
    except DomainError as exc:
        log.error("single-upstream mode: GATEWAY_UPSTREAM_URL/KEY refused: %s", exc.message)
    except Exception:
        log.exception("single-upstream mode: could not set up the provider")
