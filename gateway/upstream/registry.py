"""One pooled client per provider, kept for the life of the app or worker."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from gateway.upstream.addresses import Resolver
from gateway.upstream.breaker import BreakerSnapshot, BreakerState
from gateway.upstream.client import Observer, UpstreamClient
from gateway.upstream.config import UpstreamConfig

__all__ = ["TransportFactory", "UpstreamRegistry"]

TransportFactory = Callable[[int | str], httpx.AsyncBaseTransport]


class UpstreamRegistry:
    """Holds one :class:`UpstreamClient` (and so one connection pool and one circuit breaker)
    per provider. Create it in the app's/worker's lifespan and ``aclose()`` it on shutdown.

    ``transport_factory`` (provider id -> transport) is for tests; ``None`` means real network.
    ``on_key`` is told every API key a client is created with (the log redactor learns them).
    """

    def __init__(
        self,
        config: UpstreamConfig | None = None,
        *,
        transport_factory: TransportFactory | None = None,
        observer: Observer | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_key: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or UpstreamConfig()
        self._on_key = on_key
        self._transport_factory = transport_factory
        self._observer = observer
        self._resolver = resolver
        self._clock = clock
        self._clients: dict[int | str, UpstreamClient] = {}
        self._retired: list[UpstreamClient] = []

    def client_for(self, provider_id: int | str, api_url: str, api_key: str) -> UpstreamClient:
        """The provider's client, created on first use and re-created when its URL or key
        changed (the old one is retired: closed once its calls in flight finish). The new client
        starts with a fresh circuit breaker, since a new URL or key is a new upstream.

        Raises :class:`~gateway.upstream.addresses.UnsafeUpstreamURL` for an unsafe URL.
        """
        current = self._clients.get(provider_id)
        if current is not None and current.uses(api_url, api_key):
            return current
        if self._on_key is not None:
            self._on_key(api_key)
        client = UpstreamClient(
            provider_id,
            api_url,
            api_key,
            config=self.config,
            transport=self._transport_factory(provider_id) if self._transport_factory else None,
            observer=self._observer,
            resolver=self._resolver,
            clock=self._clock,
        )
        if current is not None:
            self._retire(current)
        self._clients[provider_id] = client
        return client

    def forget(self, provider_id: int | str) -> None:
        """Drop a provider's client (e.g. the provider was deleted or disabled)."""
        current = self._clients.pop(provider_id, None)
        if current is not None:
            self._retire(current)

    def _retire(self, client: UpstreamClient) -> None:
        client.retire()
        self._retired = [c for c in self._retired if not c.is_closed]
        self._retired.append(client)

    def breakers(self) -> dict[int | str, BreakerSnapshot]:
        """Every provider's circuit breaker state, for metrics and the admin API."""
        return {pid: client.breaker.snapshot() for pid, client in self._clients.items()}

    def circuit_state(self, provider_id: int | str) -> BreakerState:
        """The provider's circuit as of now ("closed" for a provider never called)."""
        client = self._clients.get(provider_id)
        return "closed" if client is None else client.breaker.state

    async def aclose(self) -> None:
        """Close every pool, including retired ones still open."""
        clients = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._retired.clear()
        for client in clients:
            if not client.is_closed:
                await client.aclose()

    def __repr__(self) -> str:
        return f"UpstreamRegistry(providers={sorted(map(str, self._clients))})"
