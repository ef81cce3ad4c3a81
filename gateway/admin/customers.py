"""Admin: customers, their keys, their funds and their ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from gateway import audit
from gateway.admin.common import ERRORS, actor, money
from gateway.admin.deps import DbSession, EngineDep, SessionsDep, SettingsDep, WebhooksDep
from gateway.errors import InvalidInput, NotFound
from gateway.ledger import customers as domain
from gateway.models import Customer, LedgerEntry
from gateway.orders import webhooks

Id = Annotated[int, PathParameter(gt=0, le=2**62)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Before = Annotated[int | None, QueryParameter(gt=0, le=2**62)]


class CustomerCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    balance: str | int = "0"
    dialect: str | None = None
    discount_percent: str | int = "0"


class CustomerPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    dialect: str | msgspec.UnsetType | None = msgspec.UNSET
    discount_percent: str | int | msgspec.UnsetType = msgspec.UNSET
    # Addresses or CIDR ranges the key may be used from; null or []: anywhere.
    allowed_ips: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    # At most this much charged per UTC day; null: no limit.
    daily_spend_limit: str | int | msgspec.UnsetType | None = msgspec.UNSET
    # Where status changes are POSTed (http(s), a public address); null: no webhooks.
    webhook_url: str | msgspec.UnsetType | None = msgspec.UNSET


class FundsIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: str | int
    note: str | None = None


class CustomerOut(msgspec.Struct):
    id: int
    name: str
    balance: str
    dialect: str | None
    discount_percent: str
    enabled: bool
    api_key_hint: str
    allowed_ips: list[str] | None
    daily_spend_limit: str | None
    # Charged so far on the current UTC day (what the limit counts).
    spent_today: str
    # The last use of the key from outside ``allowed_ips``: when, and from where.
    ip_refused_at: datetime | None
    ip_refused_from: str | None
    webhook_url: str | None
    # Whether a signing secret exists (it is shown once, by POST .../webhook-secret).
    webhook_secret_set: bool
    created_at: datetime


class NewCustomerOut(CustomerOut):
    api_key: str


class KeyOut(msgspec.Struct):
    api_key: str


class SecretOut(msgspec.Struct):
    secret: str


def _webhook_url(value: str | None, allow_private: bool) -> str | None:
    if value is None or value.strip() == "":
        return None
    try:
        return webhooks.check_webhook_url(value, allow_private=allow_private)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="webhook_url") from None


class BalanceOut(msgspec.Struct):
    balance: str


class LedgerEntryOut(msgspec.Struct):
    id: int
    kind: str
    amount: str
    balance_after: str
    order_id: int | None
    note: str | None
    actor: str | None
    created_at: datetime


def customer_fields(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "balance": money(customer.balance) or "0.00",
        "dialect": customer.dialect,
        "discount_percent": format(customer.discount_percent.normalize(), "f"),
        "enabled": customer.enabled,
        "api_key_hint": customer.api_key_hint,
        "allowed_ips": None if customer.allowed_ips is None else [str(n) for n in customer.allowed_ips],
        "daily_spend_limit": money(customer.daily_spend_limit),
        "spent_today": money(domain.spent_today(customer)) or "0.00",
        "ip_refused_at": customer.ip_refused_at,
        "ip_refused_from": customer.ip_refused_from,
        "webhook_url": customer.webhook_url,
        "webhook_secret_set": customer.webhook_secret is not None,
        "created_at": customer.created_at,
    }


def entry_out(entry: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.id,
        kind=entry.kind,
        amount=money(entry.amount) or "0.00",
        balance_after=money(entry.balance_after) or "0.00",
        order_id=entry.order_id,
        note=entry.note,
        actor=entry.actor,
        created_at=entry.created_at,
    )


class CustomerController(Controller):
    path = "/customers"
    tags = ["customers"]

    @post("/", summary="Create a customer; the API key is shown this once", status_code=201, responses=ERRORS)
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[CustomerCreate], db: DbSession
    ) -> NewCustomerOut:
        created = await domain.create_customer(
            db,
            name=domain.validate_name(data.name),
            balance=domain.validate_amount(data.balance, "balance"),
            dialect=domain.validate_dialect(data.dialect),
            discount_percent=domain.validate_discount(data.discount_percent),
            actor=actor(request),
        )
        fields = customer_fields(created.customer)
        await audit.record(db, actor(request), "customer.create", "customer", created.customer.id, None, fields)
        return NewCustomerOut(**fields, api_key=created.api_key)

    @get("/", summary="Customers, newest first", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        search: Annotated[str | None, QueryParameter(max_length=200)] = None,
        enabled: Annotated[bool | None, QueryParameter()] = None,
        limit: Limit = 100,
        before: Before = None,
    ) -> list[CustomerOut]:
        customers = await domain.list_customers(db, search=search, enabled=enabled, limit=limit, before=before)
        return [CustomerOut(**customer_fields(c)) for c in customers]

    @get("/{customer_id:int}", summary="One customer", responses=ERRORS)
    async def show(self, customer_id: Id, db: DbSession) -> CustomerOut:
        return CustomerOut(**customer_fields(await domain.require_customer(db, customer_id)))

    @patch(
        "/{customer_id:int}",
        summary="Rename, enable or disable, set dialect, discount, allowed IPs or daily spend limit",
        responses=ERRORS,
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        customer_id: Id,
        data: JSONBody[CustomerPatch],
        db: DbSession,
        settings: SettingsDep,
    ) -> CustomerOut:
        values: dict[str, Any] = {}
        if data.name is not msgspec.UNSET:
            values["name"] = domain.validate_name(data.name)
        if data.enabled is not msgspec.UNSET:
            values["enabled"] = data.enabled
        if data.dialect is not msgspec.UNSET:
            values["dialect"] = domain.validate_dialect(data.dialect)
        if data.discount_percent is not msgspec.UNSET:
            values["discount_percent"] = domain.validate_discount(data.discount_percent)
        if data.allowed_ips is not msgspec.UNSET:
            values["allowed_ips"] = domain.validate_allowed_ips(data.allowed_ips)
        if data.daily_spend_limit is not msgspec.UNSET:
            values["daily_spend_limit"] = domain.validate_spend_limit(data.daily_spend_limit)
        customer = await domain.require_customer(db, customer_id)
        if data.webhook_url is not msgspec.UNSET:
            values["webhook_url"] = _webhook_url(data.webhook_url, settings.allow_private_upstreams)
            if values["webhook_url"] is not None and customer.webhook_secret is None:
                # Signed from the first event; the operator reads the secret with webhook-secret.
                values["webhook_secret"] = webhooks.new_secret()
        before = customer_fields(customer)
        customer = await domain.update_customer(db, customer, values)
        after = customer_fields(customer)
        await audit.record(db, actor(request), "customer.update", "customer", customer_id, before, after)
        return CustomerOut(**after)

    @post(
        "/{customer_id:int}/rotate-key",
        summary="A new API key; the old one stops working at once",
        status_code=200,
        responses=ERRORS,
    )
    async def rotate(self, request: Request[Any, Any, Any], customer_id: Id, db: DbSession) -> KeyOut:
        key = await domain.rotate_key(db, customer_id)
        await audit.record(db, actor(request), "customer.rotate_key", "customer", customer_id)
        return KeyOut(api_key=key)

    @post(
        "/{customer_id:int}/webhook-secret",
        summary="A new webhook signing secret, shown this once (the old one stops signing at once)",
        status_code=200,
        responses=ERRORS,
    )
    async def webhook_secret(self, request: Request[Any, Any, Any], customer_id: Id, db: DbSession) -> SecretOut:
        customer = await domain.require_customer(db, customer_id)
        secret = webhooks.new_secret()
        await domain.update_customer(db, customer, {"webhook_secret": secret})
        await audit.record(db, actor(request), "customer.webhook_secret", "customer", customer_id)
        return SecretOut(secret=secret)

    @get("/{customer_id:int}/webhooks", summary="The customer's webhook deliveries, newest first", responses=ERRORS)
    async def webhook_log(
        self, customer_id: Id, db: DbSession, limit: Limit = 100, before: Before = None
    ) -> list[webhooks.DeliveryRow]:
        await domain.require_customer(db, customer_id)
        return await webhooks.deliveries(db, customer_id, limit=limit, before=before)

    @post(
        "/{customer_id:int}/webhooks/{delivery_id:int}/resend",
        summary="Send a webhook event again (due now, another 24 h of retries)",
        status_code=200,
        responses=ERRORS,
    )
    async def webhook_resend(
        self, request: Request[Any, Any, Any], customer_id: Id, delivery_id: Id, db: DbSession
    ) -> webhooks.DeliveryRow:
        row = await webhooks.resend(db, customer_id, delivery_id)
        if row is None:
            raise NotFound(f"webhook delivery {delivery_id} of customer {customer_id} not found")
        await audit.record(
            db, actor(request), "customer.webhook_resend", "customer", customer_id, None, {"delivery": delivery_id}
        )
        return row

    @post(
        "/{customer_id:int}/webhook-test",
        summary="Send a signed webhook.test event to the customer's receiver now; the attempt's result",
        status_code=200,
        responses=ERRORS,
    )
    async def webhook_test(
        self,
        request: Request[Any, Any, Any],
        customer_id: Id,
        sessions: SessionsDep,
        engine: EngineDep,
        webhook_sender: WebhooksDep,
    ) -> webhooks.DeliveryRow:
        # Queued and committed first (no transaction open while the receiver answers), then sent.
        async with sessions.begin() as session:
            customer = await domain.require_customer(session, customer_id)
            if customer.webhook_url is None:
                raise InvalidInput("the customer has no webhook_url", field="webhook_url")
            delivery_id = await webhooks.queue_test(session, customer_id)
            await audit.record(session, actor(request), "customer.webhook_test", "customer", customer_id)
        await webhooks.send_now(engine, webhook_sender, delivery_id)
        async with sessions() as session:
            (row,) = await webhooks.deliveries(session, customer_id, limit=1, before=delivery_id + 1)
        return row

    @post(
        "/{customer_id:int}/funds",
        summary="Add (positive) or deduct (negative) funds with a note",
        status_code=200,
        responses=ERRORS,
    )
    async def funds(
        self, request: Request[Any, Any, Any], customer_id: Id, data: JSONBody[FundsIn], db: DbSession
    ) -> BalanceOut:
        amount = domain.validate_amount(data.amount)
        note = domain.validate_note(data.note)
        balance = await domain.move_funds(db, customer_id, amount, note, actor(request))
        await audit.record(
            db,
            actor(request),
            "customer.funds",
            "customer",
            customer_id,
            None,
            {"amount": amount, "note": note, "balance": balance},
        )
        return BalanceOut(balance=money(balance) or "0.00")

    @get("/{customer_id:int}/ledger", summary="The customer's ledger entries, newest first", responses=ERRORS)
    async def ledger(
        self, customer_id: Id, db: DbSession, limit: Limit = 100, before: Before = None
    ) -> list[LedgerEntryOut]:
        return [entry_out(e) for e in await domain.ledger_entries(db, customer_id, limit=limit, before=before)]
