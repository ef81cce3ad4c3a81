"""The tables of the whole product.

The schema changes only through Alembic migrations (``migrations/``); a test compares these
models with the migrated database so the two never drift apart. Constraints here are the last
line of defence for money: a balance never below zero, one charge and at most one refund per
order, a refund never above its charge.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CIDR, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.lifecycle import (
    FINAL_REFILL_STATUSES,
    FINAL_STATUSES,
    HELD_STATUSES,
    OrderState,
    OrderStatus,
    RefillState,
    RefillStatus,
    sql_list,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Amount = Numeric(20, 5, asdecimal=True)
Rate = Numeric(20, 6, asdecimal=True)
Percent = Numeric(9, 4, asdecimal=True)

# The names come from the one table of the order's and the refill's life (gateway/lifecycle.py).
ORDER_STATUSES = tuple(OrderStatus)
TERMINAL_STATUSES = tuple(FINAL_STATUSES)
ORDER_STATES = tuple(OrderState)
HELD_STATUS_NAMES = tuple(HELD_STATUSES)
REFILL_STATUSES = tuple(RefillStatus)
REFILL_STATES = tuple(RefillState)
LEDGER_KINDS = ("deposit", "charge", "refund", "adjustment")
MARKUP_SCOPES = ("global", "provider", "category", "service")
DIALECTS = ("documented", "perfectpanel")
SERVICE_TYPES = (
    "Default",
    "Package",
    "Custom Comments",
    "Custom Comments Package",
    "Mentions",
    "Mentions with Hashtags",
    "Mentions Custom List",
    "Mentions Hashtag",
    "Mentions User Followers",
    "Mentions Media Likers",
    "Comment Likes",
    "Comment Replies",
    "Poll",
    "Invites from Groups",
    "Subscriptions",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN {sql_list(values)}"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("discount_percent >= 0 AND discount_percent <= 100", name="discount_range"),
        CheckConstraint(f"dialect IS NULL OR {_in('dialect', DIALECTS)}", name="dialect_known"),
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("daily_spend_limit IS NULL OR daily_spend_limit > 0", name="daily_spend_limit_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # sha256 of the key; the key itself is shown once and never stored.
    api_key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    api_key_hint: Mapped[str] = mapped_column(String(32), nullable=False)
    balance: Mapped[Decimal] = mapped_column(Amount, nullable=False, server_default=text("0"))
    dialect: Mapped[str | None] = mapped_column(String(20))
    discount_percent: Mapped[Decimal] = mapped_column(Percent, nullable=False, server_default=text("0"))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # The addresses (CIDR ranges) the key may be used from; NULL: anywhere.
    allowed_ips: Mapped[list[Any] | None] = mapped_column(ARRAY(CIDR))
    # At most this much charged per UTC day; NULL: no limit. Enforced by the charge statement on
    # the running total below (the day it counts and what it reached).
    daily_spend_limit: Mapped[Decimal | None] = mapped_column(Amount)
    spent_today: Mapped[Decimal] = mapped_column(Amount, nullable=False, server_default=text("0"))
    spent_day: Mapped[date | None] = mapped_column(Date)
    # The last time the key was used from an address outside ``allowed_ips``, and from where.
    ip_refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip_refused_from: Mapped[str | None] = mapped_column(String(45))
    # Where status changes are POSTed (signed with the secret, shown once); NULL: no webhooks.
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class LedgerEntry(Base):
    """Append-only: per customer, the cached balance equals the sum of these amounts."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(_in("kind", LEDGER_KINDS), name="kind_known"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        # A charge may be zero (a free service still gets its one charge entry); nothing else may.
        CheckConstraint("amount <> 0 OR kind = 'charge'", name="amount_not_zero"),
        CheckConstraint(
            "(kind = 'charge' AND amount <= 0 AND order_id IS NOT NULL)"
            " OR (kind = 'refund' AND amount > 0 AND order_id IS NOT NULL)"
            " OR (kind = 'deposit' AND amount > 0 AND order_id IS NULL)"
            " OR (kind = 'adjustment' AND order_id IS NULL)",
            name="kind_shape",
        ),
        # One charge and at most one refund per order, whatever the code does.
        Index(
            "uq_ledger_entries_order_charge",
            "order_id",
            unique=True,
            postgresql_where=text("kind = 'charge'"),
        ),
        Index(
            "uq_ledger_entries_order_refund",
            "order_id",
            unique=True,
            postgresql_where=text("kind = 'refund'"),
        ),
        Index("ix_ledger_entries_customer_id_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Amount, nullable=False)
    balance_after: Mapped[Decimal] = mapped_column(Amount, nullable=False)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created()


class Provider(Base):
    __tablename__ = "providers"
    __table_args__ = (
        CheckConstraint("fx_rate > 0", name="fx_rate_positive"),
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("api_url ~ '^https?://'", name="api_url_http"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    api_url: Mapped[str] = mapped_column(Text, nullable=False)
    # Needed in clear to call the upstream; never returned by an endpoint nor logged.
    api_key: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default=text("'USD'"))
    fx_rate: Mapped[Decimal] = mapped_column(Numeric(20, 8), nullable=False, server_default=text("1"))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    low_balance_threshold: Mapped[Decimal | None] = mapped_column(Amount)
    last_balance: Mapped[Decimal | None] = mapped_column(Amount)
    last_balance_currency: Mapped[str | None] = mapped_column(String(8))
    last_balance_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Service(Base):
    """A service as customers see it, under the gateway's own stable id.

    ``upstream_*`` columns mirror the provider's catalog and are overwritten by every sync;
    the operator's local edits live in their own columns and survive syncs.
    """

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("provider_id", "upstream_service_id"),
        CheckConstraint(_in("type", SERVICE_TYPES), name="type_known"),
        CheckConstraint("upstream_rate >= 0", name="upstream_rate_not_negative"),
        CheckConstraint("upstream_min >= 0 AND upstream_max >= upstream_min", name="upstream_limits"),
        CheckConstraint("min_override IS NULL OR min_override >= 0", name="min_override_not_negative"),
        CheckConstraint(
            "max_override IS NULL OR min_override IS NULL OR max_override >= min_override",
            name="override_limits",
        ),
        CheckConstraint("fixed_rate IS NULL OR fixed_rate >= 0", name="fixed_rate_not_negative"),
        Index("ix_services_category", "category_override", "upstream_category"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), nullable=False)
    upstream_service_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    upstream_type: Mapped[str] = mapped_column(Text, nullable=False)
    upstream_name: Mapped[str] = mapped_column(Text, nullable=False)
    upstream_category: Mapped[str] = mapped_column(Text, nullable=False)
    upstream_rate: Mapped[Decimal] = mapped_column(Rate, nullable=False)
    upstream_min: Mapped[int] = mapped_column(BigInteger, nullable=False)
    upstream_max: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refill: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    cancel: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    dripfeed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    description: Mapped[str | None] = mapped_column(Text)
    # The operator's description, shown instead of the upstream's (NULL: the upstream's).
    description_override: Mapped[str | None] = mapped_column(Text)
    # False once the service vanished from the upstream catalog (orders refused).
    upstream_present: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # The operator's edits.
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    name_override: Mapped[str | None] = mapped_column(Text)
    category_override: Mapped[str | None] = mapped_column(Text)
    min_override: Mapped[int | None] = mapped_column(BigInteger)
    max_override: Mapped[int | None] = mapped_column(BigInteger)
    fixed_rate: Mapped[Decimal | None] = mapped_column(Rate)
    # Set by the margin guard (not the operator): off sale since then because an upstream price rise
    # took a customer price below the margin floor; cleared by the sync that finds it back above.
    margin_hold_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class MarkupRule(Base):
    __tablename__ = "markup_rules"
    __table_args__ = (
        CheckConstraint(_in("scope", MARKUP_SCOPES), name="scope_known"),
        CheckConstraint(
            "(scope = 'global' AND provider_id IS NULL AND category IS NULL AND service_id IS NULL)"
            " OR (scope = 'provider' AND provider_id IS NOT NULL AND category IS NULL AND service_id IS NULL)"
            " OR (scope = 'category' AND provider_id IS NULL AND category IS NOT NULL AND service_id IS NULL)"
            " OR (scope = 'service' AND provider_id IS NULL AND category IS NULL AND service_id IS NOT NULL)",
            name="scope_target",
        ),
        CheckConstraint("percent >= -100 AND percent <= 10000", name="percent_range"),
        # One rule per target: the most specific wins, so two at one target would be ambiguous.
        Index("uq_markup_rules_global", "scope", unique=True, postgresql_where=text("scope = 'global'")),
        Index(
            "uq_markup_rules_provider_id",
            "provider_id",
            unique=True,
            postgresql_where=text("scope = 'provider'"),
        ),
        Index("uq_markup_rules_category", "category", unique=True, postgresql_where=text("scope = 'category'")),
        Index(
            "uq_markup_rules_service_id",
            "service_id",
            unique=True,
            postgresql_where=text("scope = 'service'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    category: Mapped[str | None] = mapped_column(Text)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    percent: Mapped[Decimal] = mapped_column(Percent, nullable=False, server_default=text("0"))
    fixed: Mapped[Decimal] = mapped_column(Rate, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = _created()


class CustomerRate(Base):
    """A customer's own price for one service; beats every markup and the discount."""

    __tablename__ = "customer_rates"
    __table_args__ = (CheckConstraint("rate >= 0", name="rate_not_negative"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Rate, nullable=False)
    created_at: Mapped[datetime] = _created()


class Order(Base):
    """A customer's order: the protocol ``status`` and the gateway's dispatch ``state``."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", ORDER_STATUSES), name="status_known"),
        CheckConstraint(_in("state", ORDER_STATES), name="state_known"),
        CheckConstraint("charge >= 0", name="charge_not_negative"),
        CheckConstraint("refunded >= 0 AND refunded <= charge", name="refund_within_charge"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("state <> 'placed' OR upstream_order_id IS NOT NULL", name="placed_has_upstream_id"),
        CheckConstraint("remains IS NULL OR remains >= 0", name="remains_not_negative"),
        Index("ix_orders_customer_id_id", "customer_id", "id"),
        Index("ix_orders_dispatch", "next_attempt_at", postgresql_where=text("state = 'queued'")),
        # The status sync's lease (most overdue first) and its lag gauge (the oldest next check).
        Index(
            "ix_orders_due",
            "next_check_at",
            postgresql_where=text(f"state = 'placed' AND status NOT IN {sql_list(FINAL_STATUSES)}"),
        ),
        Index("ix_orders_state", "state", "id"),
        # The last completed orders of a service, newest first (its average delivery time).
        Index(
            "ix_orders_completed_by_service",
            "service_id",
            text("completed_at DESC"),
            postgresql_where=text("status = 'Completed' AND completed_at IS NOT NULL"),
        ),
        Index(
            "ix_orders_link",
            "service_id",
            "link",
            postgresql_where=text("status IN ('Pending', 'In progress', 'Processing')"),
        ),
        Index("ix_orders_created_at", "created_at"),
        # One upstream order, one gateway order: otherwise one upstream answer moves the money of several.
        Index(
            "uq_orders_provider_id_upstream_order_id",
            "provider_id",
            "upstream_order_id",
            unique=True,
            postgresql_where=text("upstream_order_id IS NOT NULL"),
        ),
        CheckConstraint(f"held_status IS NULL OR {_in('held_status', HELD_STATUS_NAMES)}", name="held_status_known"),
        CheckConstraint("held_status IS NULL OR state = 'placed'", name="held_only_placed"),
        Index("ix_orders_held", "id", postgresql_where=text("held_status IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), nullable=False)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), nullable=False)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), nullable=False)
    upstream_service_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    upstream_order_id: Mapped[int | None] = mapped_column(BigInteger)
    link: Mapped[str | None] = mapped_column(Text)
    # The count charged for (drip-feed: quantity × runs; comment types: the number of lines).
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The type-specific fields as the customer sent them, forwarded upstream as sent.
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    rate: Mapped[Decimal] = mapped_column(Rate, nullable=False)
    charge: Mapped[Decimal] = mapped_column(Amount, nullable=False)
    cost: Mapped[Decimal] = mapped_column(Amount, nullable=False)
    refunded: Mapped[Decimal] = mapped_column(Amount, nullable=False, server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'Pending'"))
    status_raw: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'queued'"))
    start_count: Mapped[int | None] = mapped_column(BigInteger)
    remains: Mapped[int | None] = mapped_column(BigInteger)
    upstream_charge: Mapped[Decimal | None] = mapped_column(Amount)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    placed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The upstream's final status (Partial/Canceled) while its refund waits for a usable remains
    # (shown to the customer only once the refund is known); ``held_checks`` answers so far.
    held_status: Mapped[str | None] = mapped_column(String(16))
    held_checks: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # Which route of its service the order went to (0: the service's own provider service) and
    # what was tried before it, each {"priority", "provider_id", "upstream_service_id", "error"}.
    route_priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    routes_tried: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Refill(Base):
    """A refill request for a completed order, under the gateway's own refill id."""

    __tablename__ = "refills"
    __table_args__ = (
        CheckConstraint(_in("status", REFILL_STATUSES), name="status_known"),
        CheckConstraint(_in("state", REFILL_STATES), name="state_known"),
        CheckConstraint("state <> 'placed' OR upstream_refill_id IS NOT NULL", name="placed_has_upstream_id"),
        Index("ix_refills_customer_id_id", "customer_id", "id"),
        Index("ix_refills_order_id", "order_id"),
        Index(
            "ix_refills_sync",
            "provider_id",
            "next_check_at",
            postgresql_where=text(f"state = 'placed' AND status NOT IN {sql_list(FINAL_REFILL_STATUSES)}"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), nullable=False)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), nullable=False)
    upstream_refill_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'Pending'"))
    status_raw: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'submitting'"))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ServiceRoute(Base):
    """Another provider's service that can serve this gateway service when its own cannot place an
    order (failover), in ``priority`` order after the service's own provider service."""

    __tablename__ = "service_routes"
    __table_args__ = (
        UniqueConstraint("service_id", "route_service_id"),
        CheckConstraint("priority >= 1", name="priority_positive"),
        CheckConstraint("route_service_id <> service_id", name="not_itself"),
    )

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, primary_key=True)
    route_service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = _created()


class IdempotentRequest(Base):
    """A customer's ``add``, ``refill`` or ``cancel`` sent with an idempotency key: the same key
    again answers what the first call answered. An ``add``'s row is written by the charge
    statement itself (with its order), so a crash can never make two orders for one key."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (
        CheckConstraint("action IN ('add', 'refill', 'cancel')", name="action_known"),
        CheckConstraint("action <> 'add' OR order_id IS NOT NULL", name="add_has_order"),
        Index("ix_idempotent_requests_created_at", "created_at"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    # sha256 of the request's parameters: the same key with other parameters is refused.
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    # refill/cancel: what the first call answered ({"answer": ...} or {"error": ...}), replayed as is;
    # NULL while the first call is still working.
    answer: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class OrderAnomaly(Base):
    """An upstream value about an order that made no sense (negative, oversized, unreadable,
    contradictory). The order is still followed; the operator sees what was sent. The same
    anomaly seen again only bumps ``times``."""

    __tablename__ = "order_anomalies"
    __table_args__ = (
        UniqueConstraint("order_id", "kind", "detail"),
        Index("ix_order_anomalies_kind", "kind"),
        Index("ix_order_anomalies_last_seen_at", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    times: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class UpstreamCall(Base):
    """One HTTP attempt to an upstream: for the operator's view of an order and for debugging."""

    __tablename__ = "upstream_calls"
    __table_args__ = (
        CheckConstraint(_in("outcome", ("ok", "rejected", "not_sent", "unknown")), name="outcome_known"),
        Index("ix_upstream_calls_order_id", "order_id", postgresql_where=text("order_id IS NOT NULL")),
        Index("ix_upstream_calls_provider_id_id", "provider_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), nullable=False)
    # No foreign keys to orders/refills: the log is written outside the order's transaction.
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    refill_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome: Mapped[str] = mapped_column(String(10), nullable=False)
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()


class WebhookOutbox(Base):
    """One status event for a customer's webhook, written by a trigger in the transaction of the
    change (migration 0007), delivered by the worker in order per order, retried for 24 h."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        Index(
            "ix_webhook_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_webhook_outbox_customer", "customer_id", "id"),
        Index("ix_webhook_outbox_failed", "id", postgresql_where=text("failed_at IS NOT NULL")),
        Index(
            "ix_webhook_outbox_order_pending",
            "order_id",
            "id",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # X-Gateway-Event-Id: stable across retries, for the receiver's de-duplication.
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), nullable=False, unique=True, server_default=text("gen_random_uuid()")
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), nullable=False)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    refill_id: Mapped[int | None] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created()
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminToken(Base):
    """Extra named admin tokens (besides GATEWAY_ADMIN_TOKEN); stored hashed, revocable."""

    __tablename__ = "admin_tokens"
    __table_args__ = (CheckConstraint("scope IN ('read', 'operator', 'admin')", name="scope_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    # read: every GET; operator: also customers, orders, services, markup, sync; admin: everything.
    scope: Mapped[str] = mapped_column(String(10), nullable=False, server_default=text("'admin'"))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Every admin change: who (token name), what, before and after, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    # The scope of the token that made the change (NULL: the CLI or the gateway itself).
    scope: Mapped[str | None] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(60), nullable=False)
    entity: Mapped[str] = mapped_column(String(40), nullable=False)
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class CatalogRevision(Base):
    """One row whose ``revision`` moves whenever anything that changes a price changes.

    Triggers (migration 0002) bump it on writes to providers, services, markup rules, customer
    rates and customers' discounts, whatever code path writes them; every process keeps its
    price book in memory and rebuilds it when the number it last saw is stale.
    """

    __tablename__ = "catalog_revision"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))


ALERT_KINDS = (
    "margin",
    "charge_drift",
    "low_balance",
    "orders_unknown",
    "orders_queued",
    "circuit_open",
    "order_anomalies",
)


class Alert(Base):
    """A condition the operator must know about (a margin lost to a price rise, an upstream that
    bills more than it said, money stuck). Opened and closed by the gateway as the condition starts
    and ends; the partial unique index makes one condition (kind + subject) one open alert, however
    many processes see it at once."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind_known"),
        CheckConstraint("length(subject) BETWEEN 1 AND 200", name="subject_length"),
        Index("uq_alerts_open", "kind", "subject", unique=True, postgresql_where=text("closed_at IS NULL")),
        Index("ix_alerts_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
