"""Every answer variant of PROTOCOL.md section 4, parser by parser (no HTTP here)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from gateway.upstream import (
    CancelAccepted,
    ItemError,
    OrderStatus,
    RefillStatus,
    RefillStatusAnswer,
    StatusAnswer,
    UpstreamRejected,
)
from gateway.upstream.parse import (
    UnreadableAnswer,
    decode_json,
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
    top_level_error,
)

# --- order status -----------------------------------------------------------------------------


def test_unknown_status_is_kept_raw_and_flagged_never_guessed() -> None:
    result = parse_status({"status": "Weird", "charge": "1", "remains": "3"})
    assert result.status is None
    assert result.raw_status == "Weird"
    assert not result.is_known
    assert result.remains == 3


def test_single_status_full() -> None:
    assert parse_status(
        {"status": "Partial", "charge": "0.27819", "start_count": "157", "remains": "50.000", "currency": "USD"}
    ) == StatusAnswer(
        status=OrderStatus.PARTIAL,
        raw_status="Partial",
        charge=Decimal("0.27819"),
        start_count=157,
        remains=50,
        currency="USD",
    )


@pytest.mark.parametrize("remains", ["Unknown", "", None, "n/a", "-"])
def test_remains_without_a_value_is_none(remains: Any) -> None:
    assert parse_status({"status": "In progress", "remains": remains}).remains is None


def test_status_numbers_as_json_numbers() -> None:
    answer = decode_json(b'{"status":"Completed","charge":0.27819,"start_count":157,"remains":0}')
    result = parse_status(answer)
    assert result.charge == Decimal("0.27819")
    assert isinstance(result.charge, Decimal)
    assert (result.start_count, result.remains) == (157, 0)


def test_status_missing_fields_are_none() -> None:
    assert parse_status({"status": "Pending"}) == StatusAnswer(status=OrderStatus.PENDING, raw_status="Pending")


def test_single_status_keyed_by_id_and_wrapped() -> None:
    assert parse_status({"42": {"status": "Completed"}}).status is OrderStatus.COMPLETED
    assert parse_status([{"status": "Completed"}]).status is OrderStatus.COMPLETED


def test_single_status_with_an_order_and_an_error_is_a_rejection() -> None:
    with pytest.raises(UpstreamRejected, match="Incorrect order ID"):
        parse_status({"order": 5, "error": "Incorrect order ID"})


# --- multi status -------------------------------------------------------------------------------


def test_multi_status_keyed_with_error_objects_and_bare_strings() -> None:
    result = parse_statuses(
        {"1": {"status": "Completed"}, "2": {"error": "Incorrect order ID"}, "3": "Incorrect order ID"},
        [1, 2, 3],
    )
    assert result[1] == StatusAnswer(status=OrderStatus.COMPLETED, raw_status="Completed")
    assert result[2] == ItemError("Incorrect order ID")
    assert result[3] == ItemError("Incorrect order ID")


def test_multi_status_list_with_string_ids() -> None:
    result = parse_statuses([{"order": "1", "status": "Inprogress"}, {"order": 2, "error": "nope"}], [1, 2])
    assert result == {
        1: StatusAnswer(status=OrderStatus.IN_PROGRESS, raw_status="Inprogress"),
        2: ItemError("nope"),
    }


def test_multi_status_keeps_only_the_ids_asked_and_leaves_out_missing_ones() -> None:
    result = parse_statuses({"1": {"status": "Completed"}, "99": {"status": "Completed"}}, [1, 2])
    assert set(result) == {1}


def test_multi_status_one_unreadable_item_does_not_spoil_the_rest() -> None:
    result = parse_statuses({"1": {"status": "Completed"}, "2": {"no": "status"}, "3": 17}, [1, 2, 3])
    assert isinstance(result[1], StatusAnswer)
    assert isinstance(result[2], ItemError)
    assert result[2].message.startswith("unreadable")
    assert isinstance(result[3], ItemError)


def test_multi_status_for_one_id_answered_as_a_single_status() -> None:
    assert parse_statuses({"status": "Completed"}, [5]) == {
        5: StatusAnswer(status=OrderStatus.COMPLETED, raw_status="Completed")
    }


def test_multi_status_empty_answers() -> None:
    assert parse_statuses({}, [1]) == {}
    assert parse_statuses([], [1]) == {}


@pytest.mark.parametrize(
    "answer",
    ["Completed", 5, {"status": "Completed", "charge": "1"} | {"x": 1}, [{"status": "Completed"}, {"a": 1}]],
)
def test_multi_status_unreadable_shapes(answer: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_statuses(answer, [1, 2])


# --- add ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"order": 23501},
        {"order": "23501"},
        {"order": " 23501 "},
        [{"order": "23501"}],
        {"status": "success", "order": 23501},
        {"order": 23501, "error": None},
        {"order": Decimal("23501.0")},
    ],
)
def test_add_variants(answer: Any) -> None:
    assert parse_add(answer) == 23501


@pytest.mark.parametrize(
    "answer",
    [{}, {"order": None}, {"order": "abc"}, {"order": 0}, {"order": -5}, {"order": "1.5"}, [], "23501", [{}, {}]],
)
def test_add_unreadable(answer: Any) -> None:
    with pytest.raises(ValueError):
        parse_add(answer)


# --- top-level errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"error": "Incorrect request"}, "Incorrect request"),
        ([{"error": "Incorrect request"}], "Incorrect request"),
        ({"status": "error", "error": "Not enough funds on balance"}, "Not enough funds on balance"),
        ({"error": {"message": "Invalid API key"}}, "Invalid API key"),
        ({"order": None, "error": "Incorrect service ID"}, "Incorrect service ID"),
        ({"order": 5}, None),
        ({"order": 5, "error": "per item"}, None),
        ({"error": ""}, None),
        ({"error": None, "balance": "1"}, None),
        ([{"order": 1, "status": "Completed"}], None),
        ([1, 2], None),
    ],
)
def test_top_level_error(answer: Any, message: str | None) -> None:
    assert top_level_error(answer) == message


# --- services -----------------------------------------------------------------------------------


def test_service_variants() -> None:
    services = parse_services(
        [
            {"service": "5", "name": " Likes ", "rate": "0.27819", "min": "50", "max": "5000.000", "category": "IG"},
            {
                "service": 6,
                "name": "Comments",
                "type": "Custom Comments",
                "rate": 12,
                "min": 1,
                "max": 10,
                "refill": "1",
                "cancel": True,
                "dripfeed": 1,
                "desc": "one per line",
            },
            {"service": 7, "name": "Views", "type": "", "rate": "1", "min": 1, "max": 2, "description": "fast"},
        ]
    )
    first, second, third = services
    assert (first.service, first.name, first.type, first.rate, first.min, first.max) == (
        5,
        "Likes",
        "Default",
        Decimal("0.27819"),
        50,
        5000,
    )
    assert (first.refill, first.cancel, first.dripfeed, first.desc) == (False, False, False, None)
    assert (second.type, second.refill, second.cancel, second.dripfeed, second.desc) == (
        "Custom Comments",
        True,
        True,
        True,
        "one per line",
    )
    assert (third.type, third.desc) == ("Default", "fast")


def test_services_skip_unreadable_entries() -> None:
    services = parse_services([{"service": 1, "name": "ok", "rate": "1", "min": 1, "max": 2}, {"service": "x"}, "junk"])
    assert [s.service for s in services] == [1]


def test_services_keyed_by_id_and_wrapped() -> None:
    entry = {"service": 1, "name": "ok", "rate": "1", "min": 1, "max": 2}
    assert len(parse_services({"1": entry})) == 1
    assert len(parse_services([[entry]])) == 1
    assert parse_services([]) == []


@pytest.mark.parametrize("answer", [[{"service": "x"}], "services", {"services": "none"}])
def test_services_unreadable(answer: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_services(answer)


# --- refill -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", [{"refill": 5555}, {"refill": "5555"}, [{"refill": "5555"}], {"order": 1, "refill": 5555}]
)
def test_refill_variants(answer: Any) -> None:
    assert parse_refill(answer) == 5555


def test_refill_item_error_is_a_rejection() -> None:
    with pytest.raises(UpstreamRejected, match="Refill is not available"):
        parse_refill({"refill": {"error": "Refill is not available for this order"}})


def test_multi_refill_variants() -> None:
    assert parse_refills(
        [
            {"order": 1, "refill": "101"},
            {"order": 3, "refill": {"error": "Incorrect order ID"}},
            {"order": 4, "error": "x"},
        ],
        [1, 3, 4],
    ) == {1: 101, 3: ItemError("Incorrect order ID"), 4: ItemError("x")}
    assert parse_refills({"1": 101, "2": "Incorrect order ID"}, [1, 2]) == {1: 101, 2: ItemError("Incorrect order ID")}


def test_refill_status_variants() -> None:
    assert parse_refill_status({"status": "Completed"}) == RefillStatusAnswer(
        status=RefillStatus.COMPLETED, raw_status="Completed"
    )
    assert parse_refill_status({"status": "Stuck"}) == RefillStatusAnswer(status=None, raw_status="Stuck")
    with pytest.raises(UpstreamRejected, match="Refill not found"):
        parse_refill_status({"status": {"error": "Refill not found"}})


def test_multi_refill_status_variants() -> None:
    result = parse_refill_statuses(
        [
            {"refill": 101, "status": "Completed"},
            {"refill": "102", "status": "Rejected"},
            {"refill": 103, "status": {"error": "Refill not found"}},
            {"refill": 104, "error": "Refill not found"},
        ],
        [101, 102, 103, 104],
    )
    assert result == {
        101: RefillStatusAnswer(status=RefillStatus.COMPLETED, raw_status="Completed"),
        102: RefillStatusAnswer(status=RefillStatus.REJECTED, raw_status="Rejected"),
        103: ItemError("Refill not found"),
        104: ItemError("Refill not found"),
    }
    keyed = parse_refill_statuses({"1": "Pending", "2": "Refill not found"}, [1, 2])
    assert keyed == {
        1: RefillStatusAnswer(status=RefillStatus.PENDING, raw_status="Pending"),
        2: ItemError("Refill not found"),
    }


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_variants() -> None:
    result = parse_cancel(
        [
            {"order": 1, "canceled": True},
            {"order": 2, "cancel": 1},
            {"order": 3, "cancel": "1"},
            {"order": 4, "canceled": False, "error": "Order cannot be canceled"},
            {"order": 5, "canceled": False},
            {"order": 6, "cancel": {"error": "Incorrect order ID"}},
            {"order": 7, "error": "Incorrect order ID"},
            {"order": 8, "cancelled": "success"},
        ],
        list(range(1, 9)),
    )
    accepted = CancelAccepted()
    assert result == {
        1: accepted,
        2: accepted,
        3: accepted,
        4: ItemError("Order cannot be canceled"),
        5: ItemError("Not canceled"),
        6: ItemError("Incorrect order ID"),
        7: ItemError("Incorrect order ID"),
        8: accepted,
    }


def test_cancel_single_item_shapes() -> None:
    assert parse_cancel({"cancel": {"error": "Incorrect order ID"}}, [9]) == {9: ItemError("Incorrect order ID")}
    assert parse_cancel({"order": 9, "cancel": 1}, [9]) == {9: CancelAccepted()}
    assert parse_cancel({"9": {"cancel": 1}, "10": "Incorrect order ID"}, [9, 10]) == {
        9: CancelAccepted(),
        10: ItemError("Incorrect order ID"),
    }


def test_cancel_unreadable_outcome_is_an_item_error() -> None:
    result = parse_cancel([{"order": 1, "cancel": [1]}], [1])
    assert isinstance(result[1], ItemError)


# --- balance and numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [{"balance": "25.50", "currency": "USD"}, {"balance": 25.5, "currency": "USD"}])
def test_balance_variants(answer: Any) -> None:
    result = parse_balance(decode_json(json.dumps(answer).encode()))
    assert result.balance == Decimal("25.5")
    assert result.currency == "USD"


def test_balance_without_currency_and_negative() -> None:
    result = parse_balance({"balance": "-1.20"})
    assert (result.balance, result.currency) == (Decimal("-1.20"), None)


@pytest.mark.parametrize("answer", [{}, {"balance": "lots"}, {"balance": True}, {"balance": "NaN"}])
def test_balance_unreadable(answer: Any) -> None:
    with pytest.raises(ValueError):
        parse_balance(answer)


def test_money_never_passes_through_float() -> None:
    answer = decode_json(b'{"balance": 0.1000000000000000055511151231257827}')
    assert parse_balance(answer).balance == Decimal("0.1000000000000000055511151231257827")


def test_json_constants_are_refused() -> None:
    with pytest.raises(ValueError):
        decode_json(b'{"balance": NaN}')
