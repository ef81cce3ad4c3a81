"""What admin handlers may ask for, by name: the request's unit of work and the narrow parts of the
process (the composition root provides them; nothing here knows the process itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from litestar.di import NamedDependency
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.orders.webhooks import WebhookSender
from gateway.providers import ProviderGateway
from gateway.settings import Settings

# One unit of work per request: committed when the handler returns, rolled back when it raises.
DbSession: TypeAlias = NamedDependency[AsyncSession]
# For handlers that must not hold a transaction open across an upstream call: short units of work.
SessionsDep: TypeAlias = NamedDependency[async_sessionmaker[AsyncSession]]
ProvidersDep: TypeAlias = NamedDependency[ProviderGateway]
SettingsDep: TypeAlias = NamedDependency[Settings]
EngineDep: TypeAlias = NamedDependency[AsyncEngine]
WebhooksDep: TypeAlias = NamedDependency[WebhookSender]


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """What the admin guard checks a request against (``app.state.admin``)."""

    token: SecretStr | None
    engine: AsyncEngine
