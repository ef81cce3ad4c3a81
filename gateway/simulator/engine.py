"""The simulated panel itself: catalog, reseller balance, orders, refills, all in memory.

``Panel`` is transport-free and synchronous. Every public method takes one lock and never awaits,
so concurrent requests on the server's event loop, and test code poking at it from another thread,
always see whole transitions. Refunds for orders that end Partial or Canceled are applied lazily
("settled") at the start of every call, in order of the simulated time they became due.
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from gateway.simulator import errors
from gateway.simulator.catalog import Service, index_catalog
from gateway.simulator.clock import SimClock
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.errors import PanelError
from gateway.simulator.intake import OrderRequest, read_order_request
from gateway.simulator.lifecycle import (
    DeliveryPlan,
    OrderProgress,
    OrderStatus,
    RefillPlan,
    RefillStatus,
    plan_delivery,
    plan_refill,
)
from gateway.simulator.money import ZERO, to_money


@dataclass(slots=True)
class Order:
    """An order as the panel keeps it. ``forced`` pins its progress (cancel, control overrides);
    ``status_fields``/``status_omit`` are its ``sloppy_status`` override."""

    order_id: int
    service: Service
    request: OrderRequest
    params: dict[str, str]
    created_at: float
    plan: DeliveryPlan
    forced: OrderProgress | None = None
    refunded: Decimal = ZERO
    status_fields: tuple[tuple[str, object], ...] = ()
    status_omit: tuple[str, ...] = ()

    @property
    def charge(self) -> Decimal:
        """What the order costs now: the price, less what went back to the balance."""
        return self.request.charge - self.refunded

    def progress_at(self, now: float) -> OrderProgress:
        """The order's progress at simulated time ``now``."""
        return self.forced if self.forced is not None else self.plan.progress_at(now)


@dataclass(frozen=True, slots=True)
class OrderView:
    """A consistent snapshot of one order, as ``status`` reports it."""

    order_id: int
    service_id: int
    status: OrderStatus
    charge: Decimal
    start_count: int
    remains: int
    link: str
    quantity: int
    created_at: float
    # What ``sloppy_status`` asked for: the dialects write these raw fields over the status answer
    # and then drop the omitted names, so the panel's own state never sees the hostile values.
    status_fields: tuple[tuple[str, object], ...] = ()
    status_omit: tuple[str, ...] = ()


@dataclass(slots=True)
class Refill:
    """A refill request on a completed order."""

    refill_id: int
    order_id: int
    created_at: float
    plan: RefillPlan
    forced: RefillStatus | None = None

    def status_at(self, now: float) -> RefillStatus:
        """The refill's status at simulated time ``now``."""
        return self.forced if self.forced is not None else self.plan.status_at(now)


@dataclass(slots=True)
class _Books:
    """Everything ``reset`` throws away."""

    balance: Decimal
    services: dict[int, Service]
    next_order_id: int
    next_refill_id: int
    orders: dict[int, Order] = field(default_factory=dict)
    refills: dict[int, Refill] = field(default_factory=dict)
    # (due time, order id) of planned Partial/Canceled endings whose refund is not applied yet.
    due_refunds: list[tuple[float, int]] = field(default_factory=list)
    last_order_on_link: dict[tuple[int, str], int] = field(default_factory=dict)
    refills_by_order: dict[int, list[Refill]] = field(default_factory=dict)
    # A panel that bills more than its catalog says: each new order is charged this much more (%).
    overcharge_percent: Decimal = Decimal(0)


class Panel:
    """The in-memory panel behind the v2 endpoint; also driven directly by tests and the control plane."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self.clock = SimClock(config.speed)
        self._books = self._fresh_books()

    def _fresh_books(self) -> _Books:
        return _Books(
            balance=to_money(self.config.starting_balance),
            services=index_catalog(self.config.catalog),
            next_order_id=self.config.first_order_id,
            next_refill_id=self.config.first_refill_id,
        )

    # -- the v2 actions -------------------------------------------------------------------------

    def services(self) -> list[Service]:
        """The catalog currently for sale, in id order."""
        with self._lock:
            return sorted(self._books.services.values(), key=lambda s: s.service_id)

    def balance(self) -> Decimal:
        """The reseller balance, after every refund that is due."""
        with self._lock:
            self._settle()
            return self._books.balance

    def add(self, service_id: int, params: Mapping[str, str]) -> OrderView:
        """Validate, charge and create an order; ``PanelError`` with the panel's text otherwise."""
        with self._lock:
            self._settle()
            books = self._books
            service = books.services.get(service_id)
            if service is None:
                raise PanelError(errors.INCORRECT_SERVICE)
            request = read_order_request(service, params)
            if books.overcharge_percent:
                billed = to_money(request.charge * (100 + books.overcharge_percent) / 100)
                request = dataclasses.replace(request, charge=billed)
            now = self.clock.now()
            link_key = (service_id, request.link)
            if self.config.duplicate_link_guard and link_key in books.last_order_on_link:
                previous = books.orders[books.last_order_on_link[link_key]]
                if not previous.progress_at(now).status.is_terminal:
                    raise PanelError(errors.ACTIVE_ORDER_EXISTS)
            if request.charge > books.balance:
                raise PanelError(errors.NOT_ENOUGH_FUNDS)
            order_id = books.next_order_id
            books.next_order_id += 1
            plan = plan_delivery(self.config, order_id, now, request.units, request.drip_seconds)
            order = Order(order_id, service, request, dict(params), now, plan)
            books.orders[order_id] = order
            books.balance -= request.charge
            books.last_order_on_link[link_key] = order_id
            if plan.outcome is not OrderStatus.COMPLETED:
                heapq.heappush(books.due_refunds, (plan.finished_at, order_id))
            return self._view(order, now)

    def order(self, order_id: int) -> OrderView:
        """One order's status; ``Incorrect order ID`` if there is no such order."""
        with self._lock:
            self._settle()
            return self._view(self._order(order_id), self.clock.now())

    def refill(self, order_id: int) -> int:
        """Request a refill of a completed order of a refill-enabled service; returns the refill id."""
        with self._lock:
            self._settle()
            order = self._order(order_id)
            now = self.clock.now()
            earlier = self._books.refills_by_order.get(order_id, [])
            active = any(r.status_at(now) in (RefillStatus.PENDING, RefillStatus.IN_PROGRESS) for r in earlier)
            if not order.service.refill or order.progress_at(now).status is not OrderStatus.COMPLETED or active:
                raise PanelError(errors.REFILL_NOT_AVAILABLE)
            refill_id = self._books.next_refill_id
            self._books.next_refill_id += 1
            plan = plan_refill(self.config, refill_id, now)
            refill = Refill(refill_id, order_id, now, plan)
            self._books.refills[refill_id] = refill
            self._books.refills_by_order.setdefault(order_id, []).append(refill)
            return refill_id

    def refill_status(self, refill_id: int) -> RefillStatus:
        """One refill's status; ``Refill not found`` if there is no such refill."""
        with self._lock:
            return self._refill(refill_id).status_at(self.clock.now())

    def cancel(self, order_id: int) -> OrderView:
        """Cancel a running order of a cancel-enabled service, refunding what was not delivered."""
        with self._lock:
            self._settle()
            order = self._order(order_id)
            progress = order.progress_at(self.clock.now())
            if not order.service.cancel or progress.status.is_terminal:
                raise PanelError(errors.CANCEL_NOT_AVAILABLE)
            delivered = order.request.units - progress.remains
            status = OrderStatus.PARTIAL if delivered > 0 else OrderStatus.CANCELED
            self._pin(order, OrderProgress(status, progress.start_count, progress.remains))
            return self._view(order, self.clock.now())

    # -- control: what tests and operators use to steer the panel -------------------------------

    def force_order(
        self,
        order_id: int,
        status: OrderStatus | str,
        *,
        remains: int | None = None,
        start_count: int | None = None,
    ) -> OrderView:
        """Pin an order's status (and remains / start count), adjusting the balance like the panel would.

        Defaults: remains 0 for Completed, all units for Canceled/Pending/Processing, the current
        remains otherwise. A non-terminal status stays pinned until forced again.
        """
        with self._lock:
            self._settle()
            order = self._order(order_id)
            status = OrderStatus(status)
            current = order.progress_at(self.clock.now())
            units = order.request.units
            untouched = status in (OrderStatus.PENDING, OrderStatus.PROCESSING)
            if remains is None:
                by_status = {OrderStatus.COMPLETED: 0, OrderStatus.CANCELED: units}
                remains = units if untouched else by_status.get(status, current.remains)
            if not 0 <= remains <= units:
                raise ValueError(f"remains must be within [0, {units}]")
            if start_count is None:
                # Panels show 0 until they have looked at the target, its real count afterwards.
                start_count = 0 if untouched else current.start_count or order.plan.start_count
            self._pin(order, OrderProgress(status, start_count, remains))
            return self._view(order, self.clock.now())

    def sloppy_status(
        self,
        order_id: int,
        fields: Mapping[str, object] | None = None,
        *,
        omit: Iterable[str] = (),
    ) -> None:
        """Make every ``status`` answer for the order hostile, as real panels' answers can be.

        ``fields`` are written over the answer's normal fields verbatim (any JSON value: ``"-7"``,
        ``"Unknown"``, ``10**30``, ``None``, nested objects; ``"status"`` too, while the order's
        real state is untouched), then the ``omit`` names are removed. Applies to single and multi
        status in both dialects until replaced by another call, ``clear_sloppy_status`` or ``reset``.
        ``TypeError`` for a value JSON cannot carry; ``PanelError`` for an unknown order.
        """
        if isinstance(omit, str):
            raise TypeError("omit takes a collection of field names, not one string")
        # A JSON round trip both refuses what could never go on the wire (now, not in the middle of
        # a request) and detaches the snapshot from the caller's objects.
        raw = msgspec.json.decode(msgspec.json.encode(dict(fields or {})))
        status_fields = tuple(raw.items())
        status_omit = tuple(dict.fromkeys(str(name) for name in omit))
        with self._lock:
            order = self._order(order_id)
            order.status_fields, order.status_omit = status_fields, status_omit

    def clear_sloppy_status(self, order_id: int) -> None:
        """Answer ``status`` for the order normally again; ``PanelError`` for an unknown order."""
        with self._lock:
            order = self._order(order_id)
            order.status_fields, order.status_omit = (), ()

    def force_refill(self, refill_id: int, status: RefillStatus | str) -> RefillStatus:
        """Pin a refill's status."""
        with self._lock:
            refill = self._refill(refill_id)
            refill.forced = RefillStatus(status)
            return refill.forced

    def set_balance(self, amount: Decimal) -> Decimal:
        """Set the reseller balance (e.g. to zero, to test ``Not enough funds on balance``)."""
        with self._lock:
            self._settle()
            self._books.balance = to_money(amount)
            return self._books.balance

    def replace_catalog(self, services: Iterable[Service]) -> int:
        """Put a new catalog on sale; existing orders keep the service they were placed with."""
        by_id = index_catalog(services)
        with self._lock:
            self._books.services = by_id
            return len(by_id)

    def advance(self, seconds: float) -> float:
        """Move simulated time ahead; returns the new simulated time."""
        with self._lock:
            now = self.clock.advance(seconds)
            self._settle()
            return now

    def get_order(self, order_id: int) -> Order:
        """The stored order itself (params as sent, plan, refunds); ``PanelError`` if unknown."""
        with self._lock:
            self._settle()
            return self._order(order_id)

    def orders(self) -> list[OrderView]:
        """Every order, oldest first."""
        with self._lock:
            self._settle()
            now = self.clock.now()
            return [self._view(order, now) for order in self._books.orders.values()]

    def refills_of(self, order_id: int) -> list[Refill]:
        """The refills requested for one order, oldest first."""
        with self._lock:
            return list(self._books.refills_by_order.get(order_id, []))

    @property
    def overcharge_percent(self) -> Decimal:
        """How much more than the catalog rate new orders are billed (0: exactly the rate)."""
        return self._books.overcharge_percent

    def set_overcharge(self, percent: Decimal) -> None:
        """Bill new orders ``percent`` more than the catalog says (an upstream's silent price drift);
        0 bills at the catalog rate again. Orders already placed keep their charge."""
        if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(1000):
            raise ValueError("overcharge_percent must be between 0 and 1000")
        with self._lock:
            self._books.overcharge_percent = percent

    def reset(self) -> None:
        """Back to the configured start: balance, catalog, clock; no orders (nor status overrides), no refills."""
        with self._lock:
            self.clock = SimClock(self.config.speed)
            self._books = self._fresh_books()

    # -- internals ----------------------------------------------------------------------------

    def _order(self, order_id: int) -> Order:
        order = self._books.orders.get(order_id)
        if order is None:
            raise PanelError(errors.INCORRECT_ORDER)
        return order

    def _refill(self, refill_id: int) -> Refill:
        refill = self._books.refills.get(refill_id)
        if refill is None:
            raise PanelError(errors.REFILL_NOT_FOUND)
        return refill

    def _view(self, order: Order, now: float) -> OrderView:
        progress = order.progress_at(now)
        return OrderView(
            order_id=order.order_id,
            service_id=order.service.service_id,
            status=progress.status,
            charge=order.charge,
            start_count=progress.start_count,
            remains=progress.remains,
            link=order.request.link,
            quantity=order.request.units,
            created_at=order.created_at,
            status_fields=order.status_fields,
            status_omit=order.status_omit,
        )

    def _pin(self, order: Order, progress: OrderProgress) -> None:
        order.forced = progress
        self._refund_to(order, self._kept_charge(order, progress))

    def _settle(self) -> None:
        books, now = self._books, self.clock.now()
        while books.due_refunds and books.due_refunds[0][0] <= now:
            _, order_id = heapq.heappop(books.due_refunds)
            order = books.orders[order_id]
            if order.forced is None:  # a pinned order was already settled when it was pinned
                self._refund_to(order, self._kept_charge(order, order.plan.progress_at(now)))

    def _kept_charge(self, order: Order, progress: OrderProgress) -> Decimal:
        price = order.request.charge
        if progress.status is OrderStatus.CANCELED:
            return ZERO
        if progress.status is OrderStatus.PARTIAL:
            units = order.request.units
            return to_money(price * (units - progress.remains) / units)
        return price

    def _refund_to(self, order: Order, kept: Decimal) -> None:
        # Moves the balance by the difference, so pinning twice never refunds twice.
        delta = order.charge - kept
        order.refunded += delta
        self._books.balance += delta
