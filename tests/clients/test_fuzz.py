"""Hostile input at /api/v2 of a real gateway process: every answer is HTTP 200 JSON with a result
or one of the documented errors, and a rejected call changes no balance and no order."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import errors
from tests.clients.conftest import LiveGateway
from tests.reliability.test_crash import Db

EXACT = {value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)} | {
    "Cancel is not available for this order"
}
PATTERNS = [re.compile(r"Quantity (less than minimal|more than maximal) \d+"), re.compile(r"Incorrect [a-z_]+")]

NAMES = [
    "key",
    "action",
    "service",
    "link",
    "quantity",
    "order",
    "orders",
    "refill",
    "refills",
    "comments",
    "runs",
    "interval",
    "username",
    "usernames",
    "hashtags",
    "hashtag",
    "media",
    "answer_number",
    "groups",
    "min",
    "max",
    "delay",
    "posts",
    "old_posts",
    "expiry",
    "junk",
]
ACTIONS = ["add", "status", "services", "balance", "refill", "refill_status", "cancel", "ADD", "", "status ", "x"]
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e9",
            "99999999999999999999",
            "1.5",
            "١٢",
            "NaN",
            "null",
            "[]",
            "{}",
            "1,2,3",
            ",,,",
            "https://instagram.com/p/x",
            "\x00",
            "💥" * 5,
            "a\nb\nc",
            "' OR 1=1 --",
        ]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)


# What a rejected call must leave as it was. An order the upstream itself refused for the
# customer's input is kept (state failed, refunded) as a record; it changes no balance.
SNAPSHOT = "SELECT (SELECT sum(balance) FROM customers), (SELECT count(*) FROM orders WHERE state <> 'failed')"


def allowed_error(message: str) -> bool:
    return message in EXACT or any(p.fullmatch(message) for p in PATTERNS)


def send(client: httpx.Client, live: LiveGateway, encoding: str, params: dict[str, str]) -> httpx.Response:
    if encoding == "form":
        return client.post(live.api, data=params)
    if encoding == "json":
        return client.post(live.api, content=json.dumps(params), headers={"Content-Type": "application/json"})
    if encoding == "multipart":
        return client.post(live.api, files={k: (None, v) for k, v in params.items()} or {"x": (None, "")})
    return client.get(live.api, params=params)


def test_hostile_parameters(live: LiveGateway) -> None:
    db = Db(live.database_url)
    client = httpx.Client(timeout=30)
    service_ids = [str(i) for i in live.services.values()]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        params=st.dictionaries(st.sampled_from(NAMES), nasty_text, max_size=8),
        action=st.sampled_from(ACTIONS),
        service=st.sampled_from([*service_ids, "0", "abc"]),
        use_key=st.sampled_from(["valid", "valid", "valid", "wrong", "none"]),
        encoding=st.sampled_from(["form", "json", "multipart", "query"]),
    )
    def run(params: dict[str, str], action: str, service: str, use_key: str, encoding: str) -> None:
        params = {**params, "action": action}
        params.setdefault("service", service)
        if use_key == "valid":
            params["key"] = live.key
        elif use_key == "wrong":
            params["key"] = "smm_" + "x" * 32
        else:
            params.pop("key", None)
        before = db.fetch(SNAPSHOT)[0]
        response = send(client, live, encoding, params)
        assert response.status_code == 200, (params, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body: Any = response.json()
        if isinstance(body, dict) and set(body) == {"error"}:
            assert allowed_error(body["error"]), (params, body)
            after = db.fetch(SNAPSHOT)[0]
            assert tuple(after) == tuple(before), (params, body)

    run()
    db.check_money()
