"""The gateway's balances on its upstream accounts: asked live, recorded on the provider (for the
dashboard and the low-balance flag) when the operator refreshes them.

No transaction is open while an upstream is asked: an answer can take the whole upstream timeout,
and an open transaction would hold a database connection, and whatever it had locked, that long.
So a refresh reads the providers in one short unit of work, asks the upstreams with none open,
and records what they said, with its audit entry, in another.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import audit
from gateway.catalog import queries
from gateway.catalog.providers import list_providers, require_provider
from gateway.models import Provider
from gateway.upstream import Balance, UpstreamError

Sessions = async_sessionmaker[AsyncSession]


class BalanceSource(Protocol):
    """Who asks an upstream for the balance (gateway.providers.ProviderGateway)."""

    async def balance(self, provider_id: int) -> Balance: ...


@dataclass(frozen=True, slots=True)
class LiveBalance:
    """What one upstream answered just now."""

    provider_id: int
    balance: Decimal
    currency: str | None
    checked_at: datetime
    low_balance: bool


@dataclass(frozen=True, slots=True)
class RecordedBalance:
    """A provider's balance as last recorded, and why a refresh could not update it (if so)."""

    provider_id: int
    name: str
    balance: Decimal | None
    currency: str | None
    checked_at: datetime | None
    low_balance_threshold: Decimal | None
    low_balance: bool
    error: str | None = None


def is_low(threshold: Decimal | None, balance: Decimal | None) -> bool:
    """Below the provider's low-balance threshold (never, without a threshold or a balance)."""
    return threshold is not None and balance is not None and balance < threshold


def _recorded(provider: Provider, error: str | None = None) -> RecordedBalance:
    return RecordedBalance(
        provider_id=provider.id,
        name=provider.name,
        balance=provider.last_balance,
        currency=provider.last_balance_currency,
        checked_at=provider.last_balance_at,
        low_balance_threshold=provider.low_balance_threshold,
        low_balance=is_low(provider.low_balance_threshold, provider.last_balance),
        error=error,
    )


async def recorded_balances(session: AsyncSession) -> list[RecordedBalance]:
    """Every provider's balance as last recorded, by provider id. Asks no upstream."""
    return [_recorded(p) for p in await list_providers(session)]


async def ask_balance(sessions: Sessions, providers: BalanceSource, provider_id: int) -> LiveBalance:
    """Ask one provider's upstream for the balance now; records nothing. Raises NotFound or the
    adapter's :class:`UpstreamError`."""
    async with sessions() as session:
        provider = await require_provider(session, provider_id)
    answer = await providers.balance(provider_id)
    return LiveBalance(
        provider_id=provider.id,
        balance=answer.balance,
        currency=answer.currency,
        checked_at=datetime.now(UTC),
        low_balance=is_low(provider.low_balance_threshold, answer.balance),
    )


async def refresh_balance(sessions: Sessions, providers: BalanceSource, provider_id: int, actor: str) -> LiveBalance:
    """:func:`ask_balance`, then record the answer on the provider, audited as ``actor``'s."""
    live = await ask_balance(sessions, providers, provider_id)
    async with sessions.begin() as session:
        await _record(session, provider_id, live.balance, live.currency, live.checked_at, actor)
    return live


async def refresh_balances(sessions: Sessions, providers: BalanceSource, actor: str) -> list[RecordedBalance]:
    """Ask every enabled provider's upstream at once and record each answer (audited as
    ``actor``'s); a provider that did not answer keeps its last balance and carries the error."""
    async with sessions() as session:
        asked = [p for p in await list_providers(session) if p.enabled]
    answers = await asyncio.gather(*(_ask(providers, p.id) for p in asked))
    errors: dict[int, str] = {}
    async with sessions.begin() as session:
        for provider, (answer, at) in zip(asked, answers, strict=True):
            if isinstance(answer, str):
                errors[provider.id] = answer
            else:
                await _record(session, provider.id, answer.balance, answer.currency, at, actor)
        recorded = await list_providers(session)
    return [_recorded(p, errors.get(p.id)) for p in recorded]


async def _ask(providers: BalanceSource, provider_id: int) -> tuple[Balance | str, datetime]:
    """One upstream's answer, or why there is none (shown to the operator; keys never are)."""
    try:
        answer: Balance | str = await providers.balance(provider_id)
    except UpstreamError as exc:
        answer = str(exc)[:300]
    return answer, datetime.now(UTC)


def _balance_fields(provider: Provider) -> dict[str, Any]:
    return {
        "last_balance": provider.last_balance,
        "last_balance_currency": provider.last_balance_currency,
        "last_balance_at": provider.last_balance_at,
    }


async def _record(
    session: AsyncSession, provider_id: int, balance: Decimal, currency: str | None, at: datetime, actor: str
) -> None:
    provider = await queries.provider_for_update(session, provider_id)
    if provider is None:  # gone since it was asked
        return
    before = _balance_fields(provider)
    provider.last_balance = balance
    provider.last_balance_currency = currency
    provider.last_balance_at = at
    await session.flush()
    await session.refresh(provider)  # the audit shows what was stored (NUMERIC(20,5)), not the raw answer
    await audit.record(
        session, actor, "provider.balance_refresh", "provider", provider_id, before, _balance_fields(provider)
    )
