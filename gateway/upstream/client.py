"""The async client of one upstream panel: every API v2 action, typed answers, the error classes
of PROTOCOL.md section 5, retries where they are safe, a circuit breaker and an observer hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TypeVar

import httpx

from gateway.upstream.addresses import (
    HostGuard,
    Resolver,
    check_upstream_url,
    normalise_upstream_url,
    system_resolver,
)
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.calls import CallRunner, Observer
from gateway.upstream.config import UpstreamConfig
from gateway.upstream.parse import (
    parse_add,
    parse_balance,
    parse_cancel,
    parse_refill,
    parse_refill_status,
    parse_refill_statuses,
    parse_refills,
    parse_services,
    parse_status,
    parse_statuses,
)
from gateway.upstream.redact import ApiKey
from gateway.upstream.types import (
    Balance,
    CancelAccepted,
    ItemError,
    RefillStatusAnswer,
    Service,
    StatusAnswer,
)
from gateway.upstream.wire import UpstreamHttp

__all__ = ["Observer", "UpstreamClient"]

T = TypeVar("T")
# Fields the adapter sets itself; a customer's parameters must not override them.
_RESERVED_FIELDS = frozenset({"key", "action", "service"})


class UpstreamClient:
    """One provider's client, over its own connection pool (:class:`~gateway.upstream.wire.UpstreamHttp`).

    Every attempt runs under ``config.deadline`` (the whole exchange, body included). Reads
    (``status``, ``statuses``, ``services``, ``refill_status``, ``refill_statuses``, ``balance``)
    are retried on :class:`UpstreamNotSent` and :class:`UpstreamUnknown`; writes (``add``,
    ``refill``, ``refills``, ``cancel``) only on :class:`UpstreamNotSent`, never once the request
    may have arrived. :class:`UpstreamRejected` is never retried.

    ``request_id`` on every call is the caller's correlation id: it goes to the observer and the
    logs, never upstream. The API key appears in the request body only.
    """

    def __init__(
        self,
        provider_id: int | str,
        api_url: str,
        api_key: str,
        *,
        config: UpstreamConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: Observer | None = None,
        breaker: CircuitBreaker | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises :class:`~gateway.upstream.addresses.UnsafeUpstreamURL` for a malformed URL or,
        unless ``config.allow_private``, one whose literal host is not public."""
        self.config = config or UpstreamConfig()
        self.provider_id = provider_id
        self.api_url = check_upstream_url(api_url, allow_private=self.config.allow_private)
        self._key = ApiKey(api_key)
        self.breaker = breaker or CircuitBreaker(
            self.config.breaker_failure_threshold, self.config.breaker_reset_timeout, clock=clock
        )
        self._http = UpstreamHttp(self.config, transport)
        guard = (
            None
            if self.config.allow_private
            else HostGuard(resolver or system_resolver, ttl=self.config.resolve_cache_ttl, clock=clock)
        )
        self._calls = CallRunner(
            provider_id=provider_id,
            api_url=self.api_url,
            key=self._key,
            config=self.config,
            http=self._http,
            breaker=self.breaker,
            guard=guard,
            observer=observer,
        )
        self._in_flight = 0
        self._retiring = False
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"UpstreamClient(provider_id={self.provider_id!r}, host={httpx.URL(self.api_url).host!r})"

    def uses(self, api_url: str, api_key: str) -> bool:
        """Whether this client talks to ``api_url`` with ``api_key`` (the registry's reuse test).

        ``self.api_url`` is normalised; a row stored before URLs were normalised may spell the
        same URL in upper case, and must not get a new client (and a fresh breaker) per call.
        """
        if api_key != self._key.reveal():
            return False
        url = api_url.strip()
        return url == self.api_url or normalise_upstream_url(url) == self.api_url

    @property
    def is_closed(self) -> bool:
        """True once the underlying connection pool is closed."""
        return self._http.is_closed

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def retire(self) -> None:
        """Close the pool once the calls in flight are done (used when the provider's URL or key
        changed: closing at once would turn those calls into "unknown" outcomes)."""
        self._retiring = True
        if self._in_flight == 0 and not self._http.is_closed and self._close_task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no running loop: the registry's aclose() closes it
            self._close_task = loop.create_task(self.aclose())

    # --- actions ------------------------------------------------------------------------------

    async def add(self, service: int, params: Mapping[str, str], *, request_id: str | None = None) -> int:
        """Place an order; returns the upstream order id. ``params`` are the type-specific fields
        as the customer sent them (``link``, ``quantity``, ``comments``, ``runs`` ...).

        Sent at most once unless it provably never left: an :class:`UpstreamUnknown` here means
        the order may exist upstream and must be resolved, not re-sent.
        """
        reserved = _RESERVED_FIELDS.intersection(params)
        if reserved:
            raise ValueError(f"params may not set {sorted(reserved)}")
        form = {"service": str(_positive(service, "service")), **{k: str(v) for k, v in params.items()}}
        return await self._call(
            "add", form, lambda a: parse_add(a, clean=self._key.scrub), write=True, request_id=request_id
        )

    async def status(self, order_id: int, *, request_id: str | None = None) -> StatusAnswer:
        """One order's status. A top-level error (``Incorrect order ID``) is a rejection."""
        form = {"order": str(_positive(order_id, "order id"))}
        return await self._read("status", form, lambda a: parse_status(a, clean=self._key.scrub), request_id)

    async def statuses(
        self, order_ids: Iterable[int], *, request_id: str | None = None
    ) -> dict[int, StatusAnswer | ItemError]:
        """Many orders' statuses, in calls of at most ``config.max_ids_per_call`` ids. Ids the
        upstream left out of its answer are absent from the result."""
        result: dict[int, StatusAnswer | ItemError] = {}
        for chunk in self._chunks(order_ids):
            form = {"orders": ",".join(map(str, chunk))}
            result.update(
                await self._read("status", form, partial(parse_statuses, ids=chunk, clean=self._key.scrub), request_id)
            )
        return result

    async def services(self, *, request_id: str | None = None) -> list[Service]:
        """The upstream's service list (rates in the upstream's currency, per 1000)."""
        return await self._read("services", {}, lambda a: parse_services(a, clean=self._key.scrub), request_id)

    async def refill(self, order_id: int, *, request_id: str | None = None) -> int:
        """Request a refill of one order; returns the refill id. Never re-sent once it may have
        arrived."""
        form = {"order": str(_positive(order_id, "order id"))}
        return await self._call(
            "refill", form, lambda a: parse_refill(a, clean=self._key.scrub), write=True, request_id=request_id
        )

    async def refills(self, order_ids: Iterable[int], *, request_id: str | None = None) -> dict[int, int | ItemError]:
        """Request refills of several orders (at most ``config.max_ids_per_call``: a write is not
        split, since a failure of a later chunk could not report the earlier chunks' outcome);
        returns order id -> refill id or error."""
        ids = self._write_ids(order_ids)
        if not ids:
            return {}
        form = {"orders": ",".join(map(str, ids))}
        return await self._call(
            "refill", form, lambda a: parse_refills(a, ids, clean=self._key.scrub), write=True, request_id=request_id
        )

    async def refill_status(self, refill_id: int, *, request_id: str | None = None) -> RefillStatusAnswer:
        """One refill's status."""
        form = {"refill": str(_positive(refill_id, "refill id"))}
        return await self._read(
            "refill_status", form, lambda a: parse_refill_status(a, clean=self._key.scrub), request_id
        )

    async def refill_statuses(
        self, refill_ids: Iterable[int], *, request_id: str | None = None
    ) -> dict[int, RefillStatusAnswer | ItemError]:
        """Many refills' statuses, split into calls of at most ``config.max_ids_per_call`` ids."""
        result: dict[int, RefillStatusAnswer | ItemError] = {}
        for chunk in self._chunks(refill_ids):
            form = {"refills": ",".join(map(str, chunk))}
            result.update(
                await self._read(
                    "refill_status",
                    form,
                    partial(parse_refill_statuses, ids=chunk, clean=self._key.scrub),
                    request_id,
                )
            )
        return result

    async def cancel(
        self, order_ids: Iterable[int], *, request_id: str | None = None
    ) -> dict[int, CancelAccepted | ItemError]:
        """Ask the upstream to cancel orders (at most ``config.max_ids_per_call``, not split, like
        :meth:`refills`); returns order id -> accepted or error."""
        ids = self._write_ids(order_ids)
        if not ids:
            return {}
        form = {"orders": ",".join(map(str, ids))}
        return await self._call(
            "cancel", form, lambda a: parse_cancel(a, ids, clean=self._key.scrub), write=True, request_id=request_id
        )

    async def balance(self, *, request_id: str | None = None) -> Balance:
        """The gateway's balance on the upstream account."""
        return await self._read("balance", {}, lambda a: parse_balance(a, clean=self._key.scrub), request_id)

    # --- machinery ------------------------------------------------------------------------------

    def _chunks(self, ids: Iterable[int]) -> list[list[int]]:
        unique = list(dict.fromkeys(_positive(i, "id") for i in ids))
        size = self.config.max_ids_per_call
        return [unique[i : i + size] for i in range(0, len(unique), size)]

    def _write_ids(self, ids: Iterable[int]) -> list[int]:
        unique = list(dict.fromkeys(_positive(i, "id") for i in ids))
        if len(unique) > self.config.max_ids_per_call:
            raise ValueError(f"at most {self.config.max_ids_per_call} ids per call")
        return unique

    async def _read(self, action: str, form: dict[str, str], parse: Callable[[object], T], request_id: str | None) -> T:
        return await self._call(action, form, parse, write=False, request_id=request_id)

    async def _call(
        self,
        action: str,
        form: dict[str, str],
        parse: Callable[[object], T],
        *,
        write: bool,
        request_id: str | None,
    ) -> T:
        self._in_flight += 1
        try:
            return await self._calls.run(action, form, parse, write=write, request_id=request_id)
        finally:
            self._in_flight -= 1
            if self._retiring and self._in_flight == 0 and not self._http.is_closed:
                await self.aclose()


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive integer")
    return value
