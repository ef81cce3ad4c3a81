"""What one gateway process holds while it runs: settings, the engine, the session factory.

Built by :func:`gateway.app.create_app` (never at import time) and reachable from handlers as the
``runtime`` dependency and from the worker directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import create_engine, create_sessionmaker, resolve_database_url
from gateway.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Long-lived helpers later issues attach (upstream registry, caches, metrics).
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, database_url: str | None = None) -> Runtime:
        """Resolve the database (starting the embedded one if needed) and build the engine."""
        url = database_url or resolve_database_url(settings)
        engine = create_engine(url, settings)
        return cls(settings=settings, database_url=url, engine=engine, sessions=create_sessionmaker(engine))

    async def aclose(self) -> None:
        await self.engine.dispose()
