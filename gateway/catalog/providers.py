"""Providers: the upstream panels the gateway resells. Their API keys are stored (they are needed
to call the upstream) but never returned by an endpoint, logged or put in an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.models import Provider
from gateway.money import MoneyError, parse_amount, parse_decimal
from gateway.upstream import UnsafeUpstreamURL, check_upstream_url
from gateway.upstream.addresses import normalise_upstream_url

MAX_FX_RATE = Decimal("1000000")


@dataclass(frozen=True, slots=True)
class ProviderChanges:
    """Validated fields for a create or an update (None: leave as is / use the default)."""

    name: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    currency: str | None = None
    fx_rate: Decimal | None = None
    enabled: bool | None = None
    low_balance_threshold: Decimal | None = None
    clear_low_balance_threshold: bool = False


def validate_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    return name


def validate_url(url: str, allow_private: bool) -> str:
    """The URL as it is stored: checked and normalised (scheme and host in lower case)."""
    if len(url) > 2000:
        raise InvalidInput("api_url is too long", field="api_url")
    try:
        return check_upstream_url(url.strip(), allow_private=allow_private)
    except UnsafeUpstreamURL as exc:
        raise InvalidInput(f"api_url refused: {exc.reason}", field="api_url") from None


def validate_key(key: str) -> str:
    key = key.strip()
    if not 1 <= len(key) <= 500 or any(ch in key for ch in "\r\n\x00"):
        raise InvalidInput("api_key must be 1 to 500 characters on one line", field="api_key")
    return key


def validate_currency(currency: str) -> str:
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise InvalidInput("currency must be a three-letter code", field="currency")
    return currency


def validate_fx_rate(value: object) -> Decimal:
    try:
        rate = parse_decimal(value, field="fx_rate")
    except MoneyError as exc:
        raise InvalidInput(str(exc), field="fx_rate") from None
    if rate <= 0 or rate > MAX_FX_RATE or rate != round(rate, 8):
        raise InvalidInput("fx_rate must be positive, at most 1000000, with at most 8 decimals", field="fx_rate")
    return rate


def validate_threshold(value: object) -> Decimal:
    try:
        amount = parse_amount(value, field="low_balance_threshold")
    except MoneyError as exc:
        raise InvalidInput(str(exc), field="low_balance_threshold") from None
    if amount < 0:
        raise InvalidInput("low_balance_threshold must not be negative", field="low_balance_threshold")
    return amount


async def require_provider(session: AsyncSession, provider_id: int) -> Provider:
    provider = await session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"provider {provider_id} not found")
    return provider


async def list_providers(session: AsyncSession) -> list[Provider]:
    return list((await session.scalars(select(Provider).order_by(Provider.id))).all())


async def find_provider_by_url(session: AsyncSession, api_url: str) -> Provider | None:
    """The provider with ``api_url``, however its scheme and host are cased: rows saved before
    URLs were normalised may spell them differently from the normalised ``api_url``."""
    wanted = normalise_upstream_url(api_url)
    candidates = await session.scalars(
        select(Provider).where(func.lower(Provider.api_url) == wanted.lower()).order_by(Provider.id)
    )
    return next((p for p in candidates if normalise_upstream_url(p.api_url) == wanted), None)


def provider_fields(provider: Provider) -> dict[str, Any]:
    """Everything about a provider that may be shown (the API key never is)."""
    return {
        "id": provider.id,
        "name": provider.name,
        "api_url": provider.api_url,
        "currency": provider.currency,
        "fx_rate": provider.fx_rate,
        "enabled": provider.enabled,
        "low_balance_threshold": provider.low_balance_threshold,
        "last_balance": provider.last_balance,
        "last_balance_currency": provider.last_balance_currency,
        "last_balance_at": provider.last_balance_at,
        "last_sync_at": provider.last_sync_at,
        "last_sync_error": provider.last_sync_error,
        "created_at": provider.created_at,
    }


async def create_provider(
    session: AsyncSession, changes: ProviderChanges, *, on_key: Callable[[str], None] | None = None
) -> Provider:
    """Insert a provider. ``on_key`` is told its API key before anything is written (the log
    redactor learns it: a failed INSERT's error text may quote the row)."""
    if changes.name is None or changes.api_url is None or changes.api_key is None:
        raise InvalidInput("name, api_url and api_key are required")
    if on_key is not None:
        on_key(changes.api_key)
    provider = Provider(
        name=changes.name,
        api_url=changes.api_url,
        api_key=changes.api_key,
        currency=changes.currency or "USD",
        fx_rate=changes.fx_rate if changes.fx_rate is not None else Decimal(1),
        enabled=True if changes.enabled is None else changes.enabled,
        low_balance_threshold=changes.low_balance_threshold,
    )
    session.add(provider)
    await _flush_unique(session)
    await session.refresh(provider)
    return provider


async def update_provider(
    session: AsyncSession,
    provider: Provider,
    changes: ProviderChanges,
    *,
    on_key: Callable[[str], None] | None = None,
) -> Provider:
    """Apply ``changes``. ``on_key`` is told a new API key before anything is written, as in
    :func:`create_provider`."""
    if on_key is not None and changes.api_key is not None:
        on_key(changes.api_key)
    for name in ("name", "api_url", "api_key", "currency", "fx_rate", "enabled", "low_balance_threshold"):
        value = getattr(changes, name)
        if value is not None:
            setattr(provider, name, value)
    if changes.clear_low_balance_threshold:
        provider.low_balance_threshold = None
    provider.updated_at = func.now()
    await _flush_unique(session)
    await session.refresh(provider)
    return provider


async def _flush_unique(session: AsyncSession) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_providers_name" in str(exc.orig):
            raise Conflict("a provider with this name exists", field="name") from None
        raise
