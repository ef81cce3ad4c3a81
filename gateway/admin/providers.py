"""Admin: providers, their catalog sync and their live balance.

The routes that call an upstream (sync, balance) take no request-wide database session: the
upstream can take its whole timeout to answer, and no transaction may stay open meanwhile. The
domain opens short units of work around the call instead (gateway.catalog.sync, .balances).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody, PathParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import audit
from gateway.admin.auth import ADMIN_ONLY
from gateway.admin.common import ERRORS, UPSTREAM_ERRORS, UpstreamFailed, actor, money
from gateway.admin.deps import DbSession, ProvidersDep, SessionsDep, SettingsDep
from gateway.catalog import balances
from gateway.catalog import providers as domain
from gateway.catalog.margins import MarginGuard
from gateway.catalog.sync import SyncSummary, sync_provider
from gateway.errors import InvalidInput
from gateway.models import Provider
from gateway.observability.logs import REDACTOR
from gateway.upstream import UpstreamError

ProviderId = Annotated[int, PathParameter(gt=0, le=2**62, description="provider id")]


class ProviderCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    api_url: str
    api_key: str
    currency: str = "USD"
    fx_rate: str | int = "1"
    enabled: bool = True
    low_balance_threshold: str | int | None = None


class ProviderPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    api_url: str | msgspec.UnsetType = msgspec.UNSET
    api_key: str | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    fx_rate: str | int | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    low_balance_threshold: str | int | msgspec.UnsetType | None = msgspec.UNSET


class ProviderOut(msgspec.Struct):
    id: int
    name: str
    api_url: str
    currency: str
    fx_rate: str
    enabled: bool
    low_balance_threshold: str | None
    last_balance: str | None
    last_balance_currency: str | None
    last_balance_at: datetime | None
    low_balance: bool
    last_sync_at: datetime | None
    last_sync_error: str | None
    created_at: datetime


class SyncOut(msgspec.Struct):
    created: int
    updated: int
    disabled: int
    unchanged: int
    skipped: int
    # The margin guard: price rises that opened a margin alert, took a service off sale, or whose
    # computed price the margin floor lifted (see GATEWAY_MARGIN_POLICY).
    margin_alerts: int = 0
    margin_off_sale: int = 0
    margin_repriced: int = 0


class BalanceOut(msgspec.Struct):
    provider_id: int
    balance: str
    currency: str | None
    low_balance: bool
    checked_at: datetime


def provider_out(provider: Provider) -> ProviderOut:
    fields = domain.provider_fields(provider)
    return ProviderOut(
        **{
            **fields,
            "fx_rate": format(provider.fx_rate.normalize(), "f"),
            "low_balance_threshold": money(provider.low_balance_threshold),
            "last_balance": money(provider.last_balance),
            "low_balance": balances.is_low(provider.low_balance_threshold, provider.last_balance),
        }
    )


def balance_out(live: balances.LiveBalance) -> BalanceOut:
    return BalanceOut(
        provider_id=live.provider_id,
        balance=money(live.balance) or "0.00",
        currency=live.currency,
        low_balance=live.low_balance,
        checked_at=live.checked_at,
    )


def _changes(data: ProviderCreate | ProviderPatch, allow_private: bool) -> domain.ProviderChanges:
    def given(value: Any) -> bool:
        return value is not msgspec.UNSET

    threshold = data.low_balance_threshold
    return domain.ProviderChanges(
        name=domain.validate_name(data.name) if given(data.name) else None,  # type: ignore[arg-type]
        api_url=domain.validate_url(data.api_url, allow_private) if given(data.api_url) else None,  # type: ignore[arg-type]
        api_key=domain.validate_key(data.api_key) if given(data.api_key) else None,  # type: ignore[arg-type]
        currency=domain.validate_currency(data.currency) if given(data.currency) else None,  # type: ignore[arg-type]
        fx_rate=domain.validate_fx_rate(data.fx_rate) if given(data.fx_rate) else None,
        enabled=data.enabled if given(data.enabled) else None,  # type: ignore[arg-type]
        low_balance_threshold=domain.validate_threshold(threshold)
        if given(threshold) and threshold is not None
        else None,
        clear_low_balance_threshold=threshold is None,
    )


class ProviderController(Controller):
    path = "/providers"
    tags = ["providers"]

    @post("/", summary="Register an upstream provider", status_code=201, responses=ERRORS, opt=ADMIN_ONLY)
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ProviderCreate], db: DbSession, settings: SettingsDep
    ) -> ProviderOut:
        if not data.name.strip():
            raise InvalidInput("name must not be empty", field="name")
        changes = _changes(data, settings.allow_private_upstreams)
        provider = await domain.create_provider(db, changes, on_key=REDACTOR.add)
        await audit.record(
            db, actor(request), "provider.create", "provider", provider.id, None, domain.provider_fields(provider)
        )
        return provider_out(provider)

    @get("/", summary="List providers", responses=ERRORS)
    async def list_all(self, db: DbSession) -> list[ProviderOut]:
        return [provider_out(p) for p in await domain.list_providers(db)]

    @get("/{provider_id:int}", summary="One provider", responses=ERRORS)
    async def show(self, provider_id: ProviderId, db: DbSession) -> ProviderOut:
        return provider_out(await domain.require_provider(db, provider_id))

    @patch("/{provider_id:int}", summary="Change a provider", responses=ERRORS, opt=ADMIN_ONLY)
    async def update(
        self,
        request: Request[Any, Any, Any],
        provider_id: ProviderId,
        data: JSONBody[ProviderPatch],
        db: DbSession,
        settings: SettingsDep,
        providers: ProvidersDep,
    ) -> ProviderOut:
        changes = _changes(data, settings.allow_private_upstreams)
        provider = await domain.require_provider(db, provider_id)
        before = domain.provider_fields(provider)
        provider = await domain.update_provider(db, provider, changes, on_key=REDACTOR.add)
        if changes.api_url is not None or changes.api_key is not None or changes.enabled is False:
            providers.forget(provider.id)
        await audit.record(
            db, actor(request), "provider.update", "provider", provider.id, before, domain.provider_fields(provider)
        )
        return provider_out(provider)

    @post(
        "/{provider_id:int}/sync", summary="Sync the provider's catalog now", status_code=200, responses=UPSTREAM_ERRORS
    )
    async def sync(
        self,
        request: Request[Any, Any, Any],
        provider_id: ProviderId,
        sessions: SessionsDep,
        providers: ProvidersDep,
        settings: SettingsDep,
    ) -> SyncOut:
        async def audited(session: AsyncSession, summary: SyncSummary) -> None:
            # In the transaction that applies the catalog: the entry commits with the change.
            await audit.record(
                session, actor(request), "provider.sync", "provider", provider_id, None, summary.as_dict()
            )

        try:
            guard = MarginGuard(settings.min_margin_percent, settings.margin_policy)
            summary = await sync_provider(sessions, providers, provider_id, on_applied=audited, guard=guard)
        except UpstreamError as exc:
            raise UpstreamFailed(f"catalog sync failed: {exc}") from None
        return SyncOut(**summary.as_dict())

    @get(
        "/{provider_id:int}/balance",
        summary="The provider's balance, asked live (nothing is recorded: see balance/refresh)",
        responses=UPSTREAM_ERRORS,
    )
    async def balance(self, provider_id: ProviderId, sessions: SessionsDep, providers: ProvidersDep) -> BalanceOut:
        try:
            live = await balances.ask_balance(sessions, providers, provider_id)
        except UpstreamError as exc:
            raise UpstreamFailed(f"balance check failed: {exc}") from None
        return balance_out(live)

    @post(
        "/{provider_id:int}/balance/refresh",
        summary="Ask the provider's balance live and record it on the provider (audited)",
        status_code=200,
        responses=UPSTREAM_ERRORS,
    )
    async def refresh_balance(
        self, request: Request[Any, Any, Any], provider_id: ProviderId, sessions: SessionsDep, providers: ProvidersDep
    ) -> BalanceOut:
        try:
            live = await balances.refresh_balance(sessions, providers, provider_id, actor(request))
        except UpstreamError as exc:
            raise UpstreamFailed(f"balance check failed: {exc}") from None
        return balance_out(live)
