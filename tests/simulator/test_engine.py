"""The in-memory panel without HTTP: validation, money, lifecycle, refunds, cancel, refills."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.simulator import OrderStatus, Panel, PanelError, RefillStatus, SimulatorConfig
from gateway.simulator.catalog import ServiceType, generate_catalog, service_from_mapping
from gateway.simulator.lifecycle import plan_delivery

DAY = 86_400.0
LINK = "https://instagram.com/some.account"


def make_panel(**overrides: Any) -> Panel:
    settings: dict[str, Any] = {
        "speed": 0.0,
        "seed": 3,
        "partial_probability": 0.0,
        "cancel_probability": 0.0,
        "refill_reject_probability": 0.0,
        **overrides,
    }
    return Panel(SimulatorConfig(**settings))


def refusal(panel: Panel, service_id: int, **params: str) -> str:
    with pytest.raises(PanelError) as caught:
        panel.add(service_id, params)
    return caught.value.message


# -- validation per type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_id", "params", "message"),
    [
        (999, {"link": LINK, "quantity": "100"}, "Incorrect service ID"),
        (101, {"quantity": "100"}, "Incorrect link"),
        (101, {"link": "  ", "quantity": "100"}, "Incorrect link"),
        (101, {"link": "has space", "quantity": "100"}, "Incorrect link"),
        (101, {"link": LINK}, "Quantity less than minimal 50"),
        (101, {"link": LINK, "quantity": "49"}, "Quantity less than minimal 50"),
        (101, {"link": LINK, "quantity": "100001"}, "Quantity more than maximal 100000"),
        (101, {"link": LINK, "quantity": "ten"}, "Incorrect quantity"),
        (101, {"link": LINK, "quantity": "100", "runs": "3", "interval": "10"}, "Drip-feed is not available "
         "for this service"),
        (111, {"link": LINK, "quantity": "100", "runs": "x", "interval": "10"}, "Incorrect runs"),
        (111, {"link": LINK, "quantity": "100", "runs": "3"}, "Incorrect interval"),
        (121, {"link": LINK}, "Incorrect comments"),
        (121, {"link": LINK, "comments": "one\ntwo"}, "Quantity less than minimal 5"),
        (123, {"link": LINK, "quantity": "100"}, "Incorrect usernames"),
        (124, {"link": LINK, "quantity": "100", "usernames": "a\nb"}, "Incorrect hashtags"),
        (125, {"link": LINK}, "Incorrect usernames"),
        (126, {"link": LINK, "quantity": "500"}, "Incorrect hashtag"),
        (127, {"link": LINK, "quantity": "500"}, "Incorrect username"),
        (128, {"link": LINK, "quantity": "500"}, "Incorrect media"),
        (129, {"link": LINK, "quantity": "20"}, "Incorrect username"),
        (204, {"link": LINK, "comments": "a\nb\nc\nd\ne"}, "Incorrect username"),
        (304, {"link": LINK, "quantity": "100"}, "Incorrect answer_number"),
        (304, {"link": LINK, "quantity": "100", "answer_number": "0"}, "Incorrect answer_number"),
        (404, {"link": LINK, "quantity": "100"}, "Incorrect groups"),
        (131, {"min": "50", "max": "100", "posts": "5"}, "Incorrect username"),
        (131, {"username": "acc", "min": "100", "max": "50", "posts": "5"}, "Incorrect max"),
        (131, {"username": "acc", "min": "10", "max": "100", "posts": "5"}, "Quantity less than minimal 50"),
        (131, {"username": "acc", "min": "50", "max": "9000", "posts": "5"}, "Quantity more than maximal 5000"),
        (131, {"username": "acc", "min": "50", "max": "100"}, "Incorrect posts"),
        (131, {"username": "acc", "min": "50", "max": "100", "posts": "5", "delay": "7"}, "Incorrect delay"),
        (131, {"username": "acc", "min": "50", "max": "100", "posts": "5", "expiry": "2030-01-01"},
         "Incorrect expiry"),
    ],
)  # fmt: skip
def test_add_refuses_like_a_panel(service_id: int, params: dict[str, str], message: str) -> None:
    panel = make_panel()
    assert refusal(panel, service_id, **params) == message
    assert panel.balance() == Decimal("1000.00")
    assert panel.orders() == []


@pytest.mark.parametrize(
    ("service_id", "params", "units", "charge"),
    [
        (101, {"link": LINK, "quantity": "1000"}, 1000, "1.85"),
        (111, {"link": LINK, "quantity": "100", "runs": "5", "interval": "30"}, 500, "0.13910"),  # 0.27819*0.5
        (114, {"link": LINK, "quantity": "12345"}, 1, "0.35"),  # a package costs its rate
        (121, {"link": LINK, "comments": "Nice!\nWow, great\n\nLove it\nSo good\nCool"}, 5, "0.0625"),
        (122, {"link": LINK, "comments": "a\nb\nc"}, 3, "2.1375"),
        (123, {"link": LINK, "quantity": "1000", "usernames": "a\nb"}, 1000, "4.95"),
        (124, {"link": LINK, "quantity": "1000", "usernames": "a", "hashtags": "#x"}, 1000, "7.40"),
        (125, {"link": LINK, "usernames": "a,b,c\nd\ne,f,g,h,i,j"}, 10, "0.09"),
        (126, {"link": LINK, "quantity": "1000", "hashtag": "travel"}, 1000, "5.25"),
        (127, {"link": LINK, "quantity": "1000", "username": "nasa"}, 1000, "6.80"),
        (128, {"link": LINK, "quantity": "1000", "media": "https://instagram.com/p/x"}, 1000, "5.90"),
        (129, {"link": LINK, "quantity": "1000", "username": "commenter"}, 1000, "3.20"),
        (204, {"link": LINK, "username": "u", "comments": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"}, 10, "0.15"),
        (304, {"link": LINK, "quantity": "1000", "answer_number": "2"}, 1000, "4.40"),
        (404, {"link": LINK, "quantity": "1000", "groups": "t.me/a\nt.me/b"}, 1000, "8.50"),
        (131, {"username": "acc", "min": "50", "max": "200", "posts": "10", "delay": "30",
               "expiry": "31/12/2030"}, 2000, "1.10"),
    ],
)  # fmt: skip
def test_add_charges_per_type(service_id: int, params: dict[str, str], units: int, charge: str) -> None:
    panel = make_panel()
    view = panel.add(service_id, params)
    assert view.quantity == units
    assert view.charge == Decimal(charge)
    assert view.status is OrderStatus.PENDING
    assert panel.balance() == Decimal("1000.00") - Decimal(charge)
    assert panel.get_order(view.order_id).params == params


def test_every_service_type_is_in_the_default_catalog() -> None:
    catalog = make_panel().services()
    assert len(catalog) >= 20
    assert {s.type for s in catalog} == set(ServiceType)
    assert len({s.category for s in catalog}) >= 6


def test_balance_running_out() -> None:
    panel = make_panel(starting_balance=Decimal("2.00"))
    panel.add(101, {"link": LINK, "quantity": "1000"})  # 1.85
    assert refusal(panel, 101, link=LINK, quantity="100") == "Not enough funds on balance"
    panel.add(101, {"link": LINK, "quantity": "50"})  # 0.0925 still fits
    assert panel.balance() == Decimal("0.05750")
    panel.set_balance(Decimal(0))
    assert refusal(panel, 114, link=LINK) == "Not enough funds on balance"


def test_duplicate_link_guard() -> None:
    panel = make_panel(duplicate_link_guard=True)
    first = panel.add(101, {"link": LINK, "quantity": "100"})
    assert refusal(panel, 101, link=LINK, quantity="100").startswith("You have active order with this link")
    panel.add(102, {"link": LINK, "quantity": "100"})  # another service is another queue
    panel.force_order(first.order_id, "Completed")
    panel.add(101, {"link": LINK, "quantity": "100"})


# -- lifecycle -------------------------------------------------------------------------------


def test_order_moves_through_its_lifecycle_on_the_clock() -> None:
    panel = make_panel()
    order_id = panel.add(101, {"link": LINK, "quantity": "5000"}).order_id
    plan = panel.get_order(order_id).plan
    seen = []
    while True:
        view = panel.order(order_id)
        seen.append((view.status, view.remains))
        if view.status.is_terminal:
            break
        panel.advance(60)
    statuses = [status for status, _ in seen]
    assert statuses[0] is OrderStatus.PENDING
    assert OrderStatus.PROCESSING in statuses
    assert OrderStatus.IN_PROGRESS in statuses
    assert statuses[-1] is OrderStatus.COMPLETED
    assert seen[-1][1] == 0
    remains = [r for status, r in seen if status is OrderStatus.IN_PROGRESS]
    assert remains == sorted(remains, reverse=True)
    assert remains[0] > remains[-1]
    assert panel.order(order_id).start_count == plan.start_count > 0
    assert panel.balance() == Decimal("1000.00") - Decimal("9.25")


def test_same_seed_same_fate() -> None:
    config = SimulatorConfig(seed=11, partial_probability=0.3, cancel_probability=0.2)
    plans = [plan_delivery(config, order_id, 0.0, 1000, 0.0) for order_id in range(10_001, 10_041)]
    assert plans == [plan_delivery(config, order_id, 0.0, 1000, 0.0) for order_id in range(10_001, 10_041)]
    assert {p.outcome for p in plans} == {OrderStatus.COMPLETED, OrderStatus.PARTIAL, OrderStatus.CANCELED}


def test_planned_partial_refunds_the_undelivered_part() -> None:
    panel = make_panel(partial_probability=1.0)
    view = panel.add(101, {"link": LINK, "quantity": "1000"})
    panel.advance(DAY)
    done = panel.order(view.order_id)
    assert done.status is OrderStatus.PARTIAL
    assert 0 < done.remains < 1000
    kept = Decimal("1.85") * (1000 - done.remains) / 1000
    assert done.charge == kept.quantize(Decimal("0.00001"))
    assert panel.balance() == Decimal("1000.00") - done.charge


def test_planned_cancel_refunds_everything_once() -> None:
    panel = make_panel(cancel_probability=1.0)
    view = panel.add(101, {"link": LINK, "quantity": "1000"})
    assert panel.balance() == Decimal("998.15")
    panel.advance(DAY)
    assert panel.order(view.order_id).status is OrderStatus.CANCELED
    assert panel.balance() == Decimal("1000.00")
    panel.advance(DAY)
    panel.force_order(view.order_id, "Canceled")
    assert panel.balance() == Decimal("1000.00")


def test_forced_statuses_move_money_like_the_panel() -> None:
    panel = make_panel()
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    partial = panel.force_order(order_id, OrderStatus.PARTIAL, remains=400, start_count=10)
    assert (partial.status, partial.remains, partial.start_count) == (OrderStatus.PARTIAL, 400, 10)
    assert partial.charge == Decimal("1.11")
    assert panel.balance() == Decimal("998.89")
    panel.force_order(order_id, "Canceled")
    assert panel.balance() == Decimal("1000.00")
    panel.advance(DAY)  # pinned: time no longer moves it
    assert panel.order(order_id).status is OrderStatus.CANCELED
    with pytest.raises(ValueError, match="remains"):
        panel.force_order(order_id, "Partial", remains=5000)


# -- cancel and refill -----------------------------------------------------------------------


def test_cancel_rules() -> None:
    panel = make_panel()
    pending = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    assert panel.cancel(pending).status is OrderStatus.CANCELED
    assert panel.balance() == Decimal("1000.00")
    with pytest.raises(PanelError, match="Cancel is not available"):
        panel.cancel(pending)  # already terminal
    no_cancel = panel.add(303, {"link": LINK, "quantity": "100"}).order_id
    with pytest.raises(PanelError, match="Cancel is not available"):
        panel.cancel(no_cancel)
    with pytest.raises(PanelError, match="Incorrect order ID"):
        panel.cancel(1)


def test_cancel_midway_ends_partial_and_refunds_the_rest() -> None:
    panel = make_panel()
    order_id = panel.add(101, {"link": LINK, "quantity": "10000"}).order_id
    panel.force_order(order_id, "In progress", remains=2500)
    view = panel.cancel(order_id)
    assert (view.status, view.remains) == (OrderStatus.PARTIAL, 2500)
    assert view.charge == Decimal("13.875")
    assert panel.balance() == Decimal("1000.00") - Decimal("13.875")


def test_refill_lifecycle_and_rules() -> None:
    panel = make_panel(refill_reject_probability=0.0)
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    with pytest.raises(PanelError, match="Refill is not available"):
        panel.refill(order_id)  # not completed yet
    panel.advance(DAY)
    refill_id = panel.refill(order_id)
    with pytest.raises(PanelError, match="Refill is not available"):
        panel.refill(order_id)  # one active refill at a time
    seen = {panel.refill_status(refill_id)}
    for _ in range(200):
        panel.advance(60)
        seen.add(panel.refill_status(refill_id))
    assert seen == {RefillStatus.PENDING, RefillStatus.IN_PROGRESS, RefillStatus.COMPLETED}
    assert panel.refill(order_id) == refill_id + 1  # the first one is done
    assert panel.force_refill(refill_id + 1, "Rejected") is RefillStatus.REJECTED
    no_refill = panel.add(102, {"link": LINK, "quantity": "100"}).order_id
    panel.force_order(no_refill, "Completed")
    with pytest.raises(PanelError, match="Refill is not available"):
        panel.refill(no_refill)
    with pytest.raises(PanelError, match="Refill not found"):
        panel.refill_status(1)


def test_refills_can_be_rejected() -> None:
    panel = make_panel(refill_reject_probability=1.0)
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    panel.advance(DAY)
    refill_id = panel.refill(order_id)
    panel.advance(DAY)
    assert panel.refill_status(refill_id) is RefillStatus.REJECTED


# -- catalog ---------------------------------------------------------------------------------


def test_catalog_replacement_keeps_existing_orders() -> None:
    panel = make_panel()
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    repriced = service_from_mapping({"service": "101", "name": "F", "rate": "2.50", "min": "10", "max": "100"})
    added = service_from_mapping({"service": 9001, "name": "New", "type": "Package", "rate": 3, "refill": 1})
    assert panel.replace_catalog([repriced, added]) == 2
    assert [(s.service_id, s.rate) for s in panel.services()] == [(101, Decimal("2.50")), (9001, Decimal(3))]
    assert refusal(panel, 102, link=LINK, quantity="100") == "Incorrect service ID"
    assert panel.order(order_id).charge == Decimal("1.85")
    with pytest.raises(ValueError, match="duplicate"):
        panel.replace_catalog([repriced, repriced])


def test_generated_catalog_is_big_varied_and_deterministic() -> None:
    catalog = generate_catalog(5000, seed=1)
    assert len(catalog) == 5000 == len({s.service_id for s in catalog})
    assert catalog == generate_catalog(5000, seed=1)
    assert {s.type for s in catalog} == set(ServiceType)
    assert all(s.min_quantity <= s.max_quantity and s.rate > 0 for s in catalog)
    panel = make_panel(catalog=catalog)
    assert len(panel.services()) == 5000


# -- hostile status answers ------------------------------------------------------------------


def test_sloppy_status_is_a_snapshot_per_order_replaced_and_cleared() -> None:
    panel = make_panel()
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    other = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    nested = {"done": [1, 2]}
    panel.sloppy_status(order_id, {"status": "Weird status", "remains": "-7", "extra": nested}, omit=["charge"] * 2)
    nested["done"].append(3)  # the caller's object changing later must not change the answers
    view = panel.order(order_id)
    assert view.status_fields == (("status", "Weird status"), ("remains", "-7"), ("extra", {"done": [1, 2]}))
    assert view.status_omit == ("charge",)
    assert (view.status, view.remains) == (OrderStatus.PENDING, 1000)  # only the answer lies
    assert (panel.order(other).status_fields, panel.order(other).status_omit) == ((), ())
    panel.force_order(order_id, "Completed")
    assert panel.order(order_id).status_fields[0] == ("status", "Weird status")

    panel.sloppy_status(order_id, omit=["currency"])
    assert (panel.order(order_id).status_fields, panel.order(order_id).status_omit) == ((), ("currency",))
    panel.clear_sloppy_status(order_id)
    assert (panel.order(order_id).status_fields, panel.order(order_id).status_omit) == ((), ())

    panel.sloppy_status(order_id, {"remains": 10**30})
    assert panel.order(order_id).status_fields == (("remains", 10**30),)
    panel.reset()
    again = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    assert again == order_id
    assert (panel.order(again).status_fields, panel.order(again).status_omit) == ((), ())


def test_sloppy_status_refusals() -> None:
    panel = make_panel()
    with pytest.raises(PanelError, match="Incorrect order ID"):
        panel.sloppy_status(1, {"status": "Unknown"})
    with pytest.raises(PanelError, match="Incorrect order ID"):
        panel.clear_sloppy_status(1)
    order_id = panel.add(101, {"link": LINK, "quantity": "1000"}).order_id
    with pytest.raises(TypeError):
        panel.sloppy_status(order_id, {"remains": object()})  # no JSON for it
    with pytest.raises(TypeError, match="omit"):
        panel.sloppy_status(order_id, omit="remains")
    assert (panel.order(order_id).status_fields, panel.order(order_id).status_omit) == ((), ())
