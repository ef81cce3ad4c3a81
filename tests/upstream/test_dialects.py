"""The answer corpus: every dialect under tests/fixtures/upstream/ parses to the same result.

Each ``<dialect>/<action>.json`` is what that kind of panel answers to the call in ``CALLS``;
``expected/<action>.json`` is the normalized result all of them must give. The comparison drops
what is dialect-specific by nature (``raw_status``, a service's ``desc``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.upstream import (
    CancelAccepted,
    ItemError,
    RefillStatusAnswer,
    Service,
    StatusAnswer,
    UpstreamClient,
    UpstreamRejected,
)
from tests.upstream.helpers import FakePanel, make_client

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
DIALECTS = ("documented", "perfectpanel", "smartpanel", "arraywrap")

Call = Callable[[UpstreamClient], Awaitable[Any]]
CALLS: dict[str, tuple[Call, dict[str, str]]] = {
    "add": (
        lambda c: c.add(1, {"link": "https://instagram.com/p/x", "quantity": "100"}),
        {"action": "add", "service": "1", "link": "https://instagram.com/p/x", "quantity": "100"},
    ),
    "status": (lambda c: c.status(23501), {"action": "status", "order": "23501"}),
    "statuses": (lambda c: c.statuses([1, 2, 3, 4]), {"action": "status", "orders": "1,2,3,4"}),
    "services": (lambda c: c.services(), {"action": "services"}),
    "refill": (lambda c: c.refill(23501), {"action": "refill", "order": "23501"}),
    "refills": (lambda c: c.refills([1, 2, 3]), {"action": "refill", "orders": "1,2,3"}),
    "refill_status": (lambda c: c.refill_status(5555), {"action": "refill_status", "refill": "5555"}),
    "refill_statuses": (
        lambda c: c.refill_statuses([101, 102, 103]),
        {"action": "refill_status", "refills": "101,102,103"},
    ),
    "cancel": (lambda c: c.cancel([1, 2, 9]), {"action": "cancel", "orders": "1,2,9"}),
    "balance": (lambda c: c.balance(), {"action": "balance"}),
}


def comparable(value: Any) -> Any:
    """The dialect-independent JSON form of a result (Decimals normalized to plain strings)."""
    if isinstance(value, StatusAnswer | RefillStatusAnswer):
        return comparable({k: v for k, v in msgspec.structs.asdict(value).items() if k != "raw_status"})
    if isinstance(value, Service):
        return comparable({k: v for k, v in msgspec.structs.asdict(value).items() if k != "desc"})
    if isinstance(value, ItemError):
        return {"error": value.message}
    if isinstance(value, CancelAccepted):
        return "accepted"
    if isinstance(value, msgspec.Struct):
        return comparable(msgspec.structs.asdict(value))
    if isinstance(value, dict):
        return {str(k): comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


def load(*parts: str) -> Any:
    return json.loads((CORPUS.joinpath(*parts)).read_text())


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("action", sorted(CALLS))
async def test_every_dialect_parses_to_the_same_result(dialect: str, action: str) -> None:
    call, expected_form = CALLS[action]
    panel = FakePanel(load(dialect, f"{action}.json"))
    async with make_client(panel) as client:
        result = await call(client)
    assert comparable(result) == load("expected", f"{action}.json")
    # The request itself is dialect-independent too: one url-encoded POST with key and action.
    assert panel.count == 1
    form = panel.forms[0]
    assert form.pop("key")
    assert form == expected_form


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_top_level_error_is_a_rejection(dialect: str) -> None:
    expected = load("expected", "error.json")
    panel = FakePanel(load(dialect, "error.json"))
    async with make_client(panel) as client:
        with pytest.raises(UpstreamRejected) as caught:
            await client.add(1, {"link": "https://x.test/p", "quantity": "10"})
    assert caught.value.message == expected["rejected"]
    assert caught.value.reason == expected["reason"]
    assert panel.count == 1


def test_the_corpus_is_complete() -> None:
    for dialect in DIALECTS:
        present = {p.stem for p in (CORPUS / dialect).glob("*.json")}
        assert present == {*CALLS, "error"}, dialect


async def test_smartpanel_descriptions_are_kept() -> None:
    panel = FakePanel(load("smartpanel", "services.json"))
    async with make_client(panel) as client:
        services = await client.services()
    assert [s.desc for s in services] == ["Real likes, 0-1 hour start", "One comment per line"]


async def test_raw_status_keeps_the_panels_spelling() -> None:
    panel = FakePanel(load("smartpanel", "statuses.json"))
    async with make_client(panel) as client:
        result = await client.statuses([1, 3, 4])
    assert {k: v.raw_status for k, v in result.items() if isinstance(v, StatusAnswer)} == {
        1: "Completed",
        3: "Cancelled",
        4: "Inprogress",
    }


def test_answers_are_plain_json() -> None:
    # The corpus is raw upstream text: keep it loadable by anything, not just this test.
    for path in CORPUS.rglob("*.json"):
        httpx.Response(200, content=path.read_bytes()).json()
