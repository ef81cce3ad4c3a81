"""Who the providers are and how to reach them: URL, key, enabled.

Kept in memory per process and reloaded when the catalog revision moves (database triggers bump
it when a provider is added or its URL, key or ``enabled`` change), so a provider the operator
disables is not called again by any process from its next call on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.models import Provider

_REVISION = text("SELECT revision FROM catalog_revision WHERE id = 1")


@dataclass(frozen=True, slots=True)
class ProviderAccess:
    """How to reach a provider. Its repr never shows the key."""

    id: int
    api_url: str
    api_key: str
    enabled: bool

    def __repr__(self) -> str:
        return f"ProviderAccess(id={self.id}, enabled={self.enabled})"


async def provider_access(conn: AsyncConnection) -> list[ProviderAccess]:
    """Every provider's access, as stored."""
    rows = await conn.execute(select(Provider.id, Provider.api_url, Provider.api_key, Provider.enabled))
    return [ProviderAccess(row.id, row.api_url, row.api_key, row.enabled) for row in rows]


class ProviderDirectory:
    """The providers of the catalog revision last seen. ``on_key`` is told every key read (the
    log redactor learns them, so a key added by another process is masked here too)."""

    def __init__(self, engine: AsyncEngine, *, on_key: Callable[[str], None] | None = None) -> None:
        self._engine = engine
        self._on_key = on_key
        self._providers: dict[int, ProviderAccess] = {}
        self._revision = -1
        self._lock = asyncio.Lock()

    async def get(self, provider_id: int, revision: int | None = None) -> ProviderAccess | None:
        """The provider as of ``revision`` (the caller's catalog revision, when it read one), or
        as of now (one small query) when not given; None when there is no such provider."""
        if revision is None or revision > self._revision:
            await self._refresh(revision)
        return self._providers.get(provider_id)

    async def refresh(self) -> int:
        """Reload if the catalog moved on; the revision now held (for a batch of calls that
        can then pass it and skip the check each)."""
        await self._refresh(None)
        return self._revision

    async def _refresh(self, known: int | None) -> None:
        async with self._lock:
            if known is not None and known <= self._revision:
                return  # another caller reloaded it meanwhile
            async with self._engine.connect() as conn:
                revision = int((await conn.execute(_REVISION)).scalar_one())
                if revision == self._revision:
                    return
                providers = await provider_access(conn)
            if self._on_key is not None:
                for provider in providers:
                    self._on_key(provider.api_key)
            self._providers = {p.id: p for p in providers}
            self._revision = revision
