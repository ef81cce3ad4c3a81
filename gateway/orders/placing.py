"""Placing an order: validate, price, charge (one statement), send, record.

The customer gets ``{"order": id}`` as soon as the order is charged and either placed or queued
(or its outcome is unknown: it may exist upstream); when the upstream refuses it for the
customer's own input, the customer gets that error and the charge back at once. The answer
follows what the upstream said, even when recording it failed (it is then recorded by a retry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import DBAPIError

from gateway.catalog.pricebook import PriceBook, PricedService, Route
from gateway.errors import (
    ACTIVE_ORDER_EXISTS,
    DAILY_SPEND_LIMIT_REACHED,
    INCORRECT_REQUEST,
    INCORRECT_SERVICE,
    NOT_ENOUGH_FUNDS,
    SERVICE_UNAVAILABLE,
    ProtocolError,
)
from gateway.failpoints import failpoint
from gateway.ledger.customers import CustomerAccount
from gateway.money import charge_for
from gateway.orders.dispatch import dispatch
from gateway.orders.outcomes import Failed, OrderToSend, PendingOutcomes
from gateway.orders.policy import OrderPolicy
from gateway.orders.routing import RoutePlan
from gateway.orders.store import ActiveOrderOnLink, NotCharged, OrderStore
from gateway.orders.validation import OrderRequest, validate_add
from gateway.providers import ProviderGateway

log = logging.getLogger(__name__)


class AccountChanged(Exception):
    """Nothing was charged: the account the order was priced for is not the current one (the
    customer disabled, the key rotated, the allowlist or the discount changed since it was read),
    or the price book it was priced from is not the current one; or a remembered account met a
    refusal. The caller reads the account again and places the order again."""


def parse_id(value: str | None) -> int | None:
    """An id as clients send it (``"12"``, `` 12 ``); None when it is not one."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    number = int(text)
    return number if number > 0 else None


def _priced(
    book: PriceBook,
    customer: CustomerAccount,
    params: Mapping[str, str],
    providers: ProviderGateway,
    request_id: str | None,
    policy: OrderPolicy,
) -> tuple[dict[str, Any], PricedService, OrderRequest, RoutePlan, Route]:
    """The order as it will be charged (the charge statement's values), its service, its
    request, its routes and the route it goes to first; raises the protocol's refusals."""
    service_id = parse_id(params.get("service"))
    if service_id is None:
        raise ProtocolError(INCORRECT_SERVICE)
    service = book.for_sale(service_id)
    if service is None:
        raise ProtocolError(INCORRECT_SERVICE)
    request = validate_add(
        service.type, params, min_quantity=service.min, max_quantity=service.max, dripfeed=service.dripfeed
    )
    quote = book.quote(service, customer.id, customer.discount_percent)
    charge = charge_for(quote.rate, request.units, per_package=request.per_package)
    plan = RoutePlan.for_order(service, units=request.units, per_package=request.per_package, params=request.params)
    route = plan.first(lambda provider_id: not providers.circuit_open(provider_id))
    if route is None:
        # A drip-feed order on a service whose every drip-feed route is gone.
        raise ProtocolError(INCORRECT_SERVICE)
    values = {
        "customer_id": customer.id,
        "service_id": service.id,
        "provider_id": route.provider_id,
        "upstream_service_id": route.upstream_service_id,
        "route_priority": route.priority,
        "link": request.link,
        "quantity": request.quantity,
        "params": request.params,
        "rate": quote.rate,
        "charge": charge,
        "cost": plan.cost(route),
        "currency": policy.currency,
        "request_id": request_id,
        # The charge goes through only for the account as read (enabled, its key, allowlist and
        # discount) and at the revision of the price book the price came from.
        "key_hash": customer.key_hash,
        "discount": customer.discount_percent,
        "allowed_ips": None if customer.allowed_ips is None else list(customer.allowed_ips),
        "revision": book.revision,
    }
    return values, service, request, plan, route


async def place_order(
    orders: OrderStore,
    providers: ProviderGateway,
    pending: PendingOutcomes,
    book: PriceBook,
    customer: CustomerAccount,
    params: Mapping[str, str],
    request_id: str | None,
    policy: OrderPolicy,
    idempotency: tuple[str, bytes] | None = None,
) -> int:
    """Place an order for ``customer``; returns the gateway's order id or raises ProtocolError.

    ``idempotency`` (key, request hash) is stored with the order by the charge statement; a key
    another call stored first raises :class:`IdempotencyKeyTaken` with nothing charged."""
    try:
        values, service, request, plan, route = _priced(book, customer, params, providers, request_id, policy)
    except ProtocolError:
        if customer.remembered:
            raise AccountChanged from None  # a refusal is never decided on a remembered account
        raise
    try:
        created = await orders.charge_and_create(
            values, guard_link=policy.duplicate_link_guard and request.link is not None, idempotency=idempotency
        )
    except ActiveOrderOnLink:
        if customer.remembered:
            raise AccountChanged from None  # said only to the account as it is now
        raise ProtocolError(ACTIVE_ORDER_EXISTS) from None
    except DBAPIError:
        log.warning("database error while charging an order", exc_info=True)
        raise ProtocolError(SERVICE_UNAVAILABLE) from None
    if created is None:
        why = await orders.why_not_charged(values)
        if why is NotCharged.ACCOUNT_CHANGED:
            raise AccountChanged
        raise ProtocolError(DAILY_SPEND_LIMIT_REACHED if why is NotCharged.DAILY_LIMIT else NOT_ENOUGH_FUNDS)
    order_id, created_at = created
    failpoint("after_charge")
    order = OrderToSend(
        id=order_id,
        provider_id=route.provider_id,
        upstream_service_id=route.upstream_service_id,
        params=request.params,
        created_at=created_at,
        attempts=1,
        request_id=request_id,
        service_id=service.id,
        route_priority=route.priority,
        quantity=request.quantity,
    )
    # Shielded: a client that hangs up must not leave the order half-recorded.
    outcome = await asyncio.shield(
        dispatch(orders, providers, pending, order, policy, revision=customer.catalog_revision, plan=plan)
    )
    if isinstance(outcome, Failed):
        raise ProtocolError(outcome.message or INCORRECT_REQUEST)
    return int(order_id)
