"""Names handlers use to ask for the process' runtime and the request's unit of work."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.runtime import Runtime

RuntimeDep: TypeAlias = NamedDependency[Runtime]
DbSession: TypeAlias = NamedDependency[AsyncSession]
