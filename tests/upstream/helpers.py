"""Small builders for the adapter tests: a recording fake panel on ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import httpx

from gateway.upstream import AttemptRecord, UpstreamClient, UpstreamConfig

API_KEY = "sk-live-7f3c9a1be55d4e0fa8c2"
API_URL = "https://panel.example.com/api/v2"
PUBLIC_ADDRESS = "93.184.216.34"

# Fast but otherwise the defaults: tiny backoff, short deadline.
FAST = UpstreamConfig(backoff_base=0.001, backoff_max=0.002, deadline=2.0, connect_timeout=0.5, pool_timeout=0.5)

Answer = Any  # JSON-able value, httpx.Response, an exception, or a callable(request) -> any of these


async def public_resolver(host: str, port: int) -> list[str]:
    return [PUBLIC_ADDRESS]


class FakePanel:
    """A MockTransport handler that answers from a script and records every request.

    Answers are used in order; the last one repeats. An answer may be a JSON-able value (HTTP
    200 JSON), an ``httpx.Response``, an exception instance (raised as the transport failure), or
    a callable taking the request and returning / awaiting one of these.
    """

    def __init__(self, *answers: Answer) -> None:
        self.requests: list[httpx.Request] = []
        self._answers = list(answers) or [{}]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
            if isinstance(answer, Awaitable):
                answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, content=json.dumps(answer).encode())

    @property
    def forms(self) -> list[dict[str, str]]:
        """The url-encoded body of every request, decoded."""
        return [dict(parse_qsl(r.content.decode(), keep_blank_values=True)) for r in self.requests]

    @property
    def count(self) -> int:
        return len(self.requests)


def make_client(
    panel: Callable[[httpx.Request], Awaitable[httpx.Response]],
    *,
    records: list[AttemptRecord] | None = None,
    observer: Callable[[AttemptRecord], None] | None = None,
    api_key: str = API_KEY,
    clock: Callable[[], float] | None = None,
    **config: Any,
) -> UpstreamClient:
    """A client on a MockTransport; the host resolves to a public address through a fake resolver
    (so the address guard runs in every test without DNS)."""
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return UpstreamClient(
        7,
        API_URL,
        api_key,
        config=replace(FAST, **config),
        transport=httpx.MockTransport(panel),
        observer=records.append if records is not None else observer,
        resolver=public_resolver,
        **kwargs,
    )


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
