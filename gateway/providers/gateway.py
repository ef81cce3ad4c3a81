"""The provider gateway: every call to an upstream goes through :meth:`ProviderGateway.call`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from gateway.providers import calllog
from gateway.providers.directory import ProviderDirectory
from gateway.upstream import (
    Balance,
    CancelAccepted,
    ItemError,
    RefillStatusAnswer,
    Service,
    StatusAnswer,
    UnsafeUpstreamURL,
    UpstreamClient,
    UpstreamNotSent,
    UpstreamRegistry,
)
from gateway.upstream.breaker import BreakerSnapshot

T = TypeVar("T")


class ProviderUnavailable(UpstreamNotSent):
    """The provider cannot be called at all (unknown, disabled, or its URL refused): nothing was
    sent, so an order may wait and try again, like any other "not sent"."""


class ProviderGateway:
    """Calls providers: look up, check, take the client, attribute the call, run it.

    Errors are the adapter's (:mod:`gateway.upstream.errors`) plus :class:`ProviderUnavailable`;
    what an error means for an order is the orders domain's business, not this one's.
    """

    def __init__(self, registry: UpstreamRegistry, directory: ProviderDirectory) -> None:
        self._registry = registry
        self.directory = directory

    async def call(
        self,
        provider_id: int,
        action: Callable[[UpstreamClient], Awaitable[T]],
        *,
        order_id: int | None = None,
        refill_id: int | None = None,
        revision: int | None = None,
        enabled_only: bool = True,
    ) -> T:
        """Run ``action`` with the provider's client; its upstream attempts are attributed to
        ``order_id``/``refill_id`` in the call log. ``revision`` is the caller's catalog revision
        when it has one (saves a query). ``enabled_only=False`` lets the operator's own reads
        (a catalog sync, a balance check) reach a provider that sells nothing yet."""
        provider = await self.directory.get(provider_id, revision)
        if provider is None:
            raise ProviderUnavailable(f"provider {provider_id} does not exist")
        if enabled_only and not provider.enabled:
            raise ProviderUnavailable("provider disabled")
        try:
            client = self._registry.client_for(provider.id, provider.api_url, provider.api_key)
        except UnsafeUpstreamURL as exc:
            raise ProviderUnavailable(f"provider URL refused: {exc.reason}") from None
        with calllog.about(order_id=order_id, refill_id=refill_id):
            return await action(client)

    # --- the actions, named (each one line over call) -----------------------------------------

    async def add(
        self,
        provider_id: int,
        service: int,
        params: Mapping[str, str],
        *,
        order_id: int,
        request_id: str | None,
        revision: int | None = None,
    ) -> int:
        return await self.call(
            provider_id, lambda c: c.add(service, params, request_id=request_id), order_id=order_id, revision=revision
        )

    async def statuses(self, provider_id: int, upstream_ids: Iterable[int]) -> dict[int, StatusAnswer | ItemError]:
        return await self.call(provider_id, lambda c: c.statuses(upstream_ids))

    async def refill(self, provider_id: int, upstream_order_id: int, *, refill_id: int | None) -> int:
        return await self.call(provider_id, lambda c: c.refill(upstream_order_id), refill_id=refill_id)

    async def refills(self, provider_id: int, upstream_order_ids: Iterable[int]) -> dict[int, int | ItemError]:
        return await self.call(provider_id, lambda c: c.refills(upstream_order_ids))

    async def refill_statuses(
        self, provider_id: int, upstream_refill_ids: Iterable[int]
    ) -> dict[int, RefillStatusAnswer | ItemError]:
        return await self.call(provider_id, lambda c: c.refill_statuses(upstream_refill_ids))

    async def cancel(
        self, provider_id: int, upstream_order_ids: Iterable[int], *, revision: int | None = None
    ) -> dict[int, CancelAccepted | ItemError]:
        return await self.call(provider_id, lambda c: c.cancel(upstream_order_ids), revision=revision)

    async def services(self, provider_id: int) -> list[Service]:
        return await self.call(provider_id, lambda c: c.services(), enabled_only=False)

    async def balance(self, provider_id: int) -> Balance:
        return await self.call(provider_id, lambda c: c.balance(), enabled_only=False)

    # --- the pools --------------------------------------------------------------------------------

    def forget(self, provider_id: int) -> None:
        """Drop a provider's client (its URL or key changed, or it was disabled)."""
        self._registry.forget(provider_id)

    def breakers(self) -> dict[int | str, BreakerSnapshot]:
        return self._registry.breakers()

    def circuit_open(self, provider_id: int) -> bool:
        """Whether calls to the provider fail fast now (its circuit is open and cooling down);
        a half-open circuit lets a probe through, so it does not count as open."""
        return self._registry.circuit_state(provider_id) == "open"

    async def aclose(self) -> None:
        await self._registry.aclose()
