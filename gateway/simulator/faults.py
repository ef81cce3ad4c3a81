"""Fault injection: rules switchable at run time, and the transport tricks that carry them out.

A ``FaultRule`` says what goes wrong (``kind``), for which action (or all), how often
(``probability``, at most ``times`` firings) and ``when``: ``before`` the panel processes the
request (the request has no effect) or ``after`` (it took effect, then the answer goes wrong, e.g.
an ``add`` that placed the order but whose answer never arrives).

Content faults (error text, 5xx, HTML, malformed JSON, empty body, a custom answer) are ordinary
responses built by the HTTP layer. ``drop`` and ``hang`` need the raw connection, so
``TransportFaults`` wraps the ASGI app: ``drop`` starts a response and raises, which makes the
server close the connection mid-answer (clients see a protocol error / reset); ``hang`` answers
nothing until the client gives up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

FaultKind = Literal["latency", "error", "http_5xx", "html", "malformed_json", "empty", "answer", "drop", "hang"]
CONTENT_FAULTS = frozenset(("error", "http_5xx", "html", "malformed_json", "empty", "answer"))


class FaultRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One switchable fault. Also the JSON body of ``POST /control/faults``.

    ``latency`` is the added delay (kind ``latency``), or for ``hang`` how long to hang before
    dropping the connection (0: until the client leaves or the simulator stops). ``answer`` sends
    ``body`` verbatim as a JSON answer, so it needs one.
    """

    kind: FaultKind
    action: str | None = None
    probability: float = 1.0
    times: int | None = None
    when: Literal["before", "after"] = "before"
    latency: float = 0.0
    error: str = "Incorrect request"
    status_code: int | None = None
    body: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1")
        if self.latency < 0:
            raise ValueError("latency must not be negative")
        if self.status_code is not None and not 100 <= self.status_code <= 599:
            raise ValueError("status_code must be an HTTP status")
        if self.kind == "answer" and self.body is None:
            raise ValueError("body is required for kind answer")


@dataclass(slots=True)
class _ArmedRule:
    rule_id: int
    rule: FaultRule
    remaining: int | None


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What goes wrong with one request: delays before/after processing, and at most one fault."""

    delay_before: float = 0.0
    delay_after: float = 0.0
    fault: FaultRule | None = None


NO_FAULT = FaultDecision()


class FaultPlan:
    """The armed rules; thread-safe so tests can switch faults from outside the server's loop."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[_ArmedRule] = []
        self._next_id = 1

    def add(self, rule: FaultRule) -> int:
        """Arm a rule (after those already armed); returns its id."""
        with self._lock:
            rule_id = self._next_id
            self._next_id += 1
            self._rules.append(_ArmedRule(rule_id, rule, rule.times))
            return rule_id

    def replace(self, rules: list[FaultRule]) -> list[int]:
        """Disarm everything, then arm ``rules``."""
        self.clear()
        return [self.add(rule) for rule in rules]

    def remove(self, rule_id: int) -> bool:
        """Disarm one rule; whether it was armed."""
        with self._lock:
            before = len(self._rules)
            self._rules = [armed for armed in self._rules if armed.rule_id != rule_id]
            return len(self._rules) < before

    def clear(self) -> None:
        """Disarm every rule."""
        with self._lock:
            self._rules = []

    def reset(self) -> None:
        """Disarm every rule, number rules from 1 again and restart the fault dice from the seed."""
        with self._lock:
            self._rules = []
            self._next_id = 1
            self._rng = random.Random(self._seed)

    def armed(self) -> list[dict[str, Any]]:
        """The armed rules with their ids and remaining firings, for the control plane."""
        with self._lock:
            return [
                {"id": a.rule_id, "remaining": a.remaining, "rule": msgspec.to_builtins(a.rule)} for a in self._rules
            ]

    def decide(self, action: str | None) -> FaultDecision:
        """Roll the dice for one request. Every matching latency rule adds up; the first other
        matching rule that fires is the fault (later ones are not consumed)."""
        with self._lock:
            if not self._rules:
                return NO_FAULT
            before = after = 0.0
            chosen: FaultRule | None = None
            for armed in list(self._rules):
                rule = armed.rule
                if rule.action not in (None, action) or (rule.kind != "latency" and chosen is not None):
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._rules.remove(armed)
                if rule.kind != "latency":
                    chosen = rule
                elif rule.when == "before":
                    before += rule.latency
                else:
                    after += rule.latency
            return FaultDecision(before, after, chosen)


# -- transport faults ----------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DIRECTIVE_SCOPE_KEY = "gateway.simulator.transport"


@dataclass(slots=True)
class TransportDirective:
    """Set by the v2 handler when its answer must not be delivered normally."""

    kind: Literal["drop", "hang"] | None = None
    hang_limit: float = 0.0


class SimulatedConnectionDrop(Exception):
    """Raised after the response started, so the ASGI server closes the connection mid-answer."""


class _HideSimulatedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedConnectionDrop))


def quiet_simulated_drops() -> None:
    """Keep uvicorn from logging a traceback for every drop we cause on purpose (idempotent)."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideSimulatedDrops) for f in server_log.filters):
        server_log.addFilter(_HideSimulatedDrops())


@dataclass(slots=True)
class TransportFaults:
    """ASGI wrapper that carries out ``drop`` and ``hang`` directives for the app inside.

    ``released`` is set when the simulator stops, so hanging requests end instead of holding up
    the server's shutdown.
    """

    app: ASGIApp
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        directive = TransportDirective()
        scope[DIRECTIVE_SCOPE_KEY] = directive
        held: list[MutableMapping[str, Any]] = []

        async def send_unless_faulted(message: MutableMapping[str, Any]) -> None:
            if directive.kind is None:
                await send(message)
            else:
                held.append(message)

        await self.app(scope, receive, send_unless_faulted)
        if directive.kind == "hang" and await self._client_left(receive, directive.hang_limit):
            return  # nobody is listening any more; there is nothing left to drop
        if directive.kind is not None:
            await self._drop(send, held)

    async def _client_left(self, receive: Receive, limit: float) -> bool:
        """Wait until the client disconnects (True), or the limit passes / the simulator stops."""

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        disconnect = asyncio.ensure_future(until_disconnect())
        released = asyncio.ensure_future(self.released.wait())
        await asyncio.wait({disconnect, released}, timeout=limit or None, return_when=asyncio.FIRST_COMPLETED)
        left = disconnect.done() and not disconnect.cancelled() and disconnect.exception() is None
        disconnect.cancel()
        released.cancel()
        return left

    async def _drop(self, send: Send, held: list[MutableMapping[str, Any]]) -> None:
        # Promise a body, send only the headers, then break off: the client sees the connection
        # close in the middle of a response, as when a panel's worker dies.
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        headers = list(start["headers"]) if start else [(b"content-type", b"application/json")]
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", b"4096"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise SimulatedConnectionDrop
