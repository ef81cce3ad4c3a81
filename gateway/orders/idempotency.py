"""Idempotency keys: the same ``add``, ``refill`` or ``cancel`` sent twice does it once.

A customer may send an ``Idempotency-Key`` header or an ``idempotency_key`` parameter (1 to 64
printable ASCII characters). Within ``GATEWAY_IDEMPOTENCY_TTL_SECONDS`` the same key from the same
customer answers what the first call answered, with no second charge and no second upstream call;
the same key with other parameters is refused (``Idempotency key reused with different
parameters``). Keys are the customer's own: another customer's key of the same text is another key.

- ``add`` stores the key with its order in the charge statement itself (the primary key is
  (customer, key)), so no crash and no race can make two orders for one key. Concurrent calls
  with one key: one charges, the others find its order and answer its id. A first call that
  changed nothing (not enough funds, a refused parameter) stores nothing: the same key may try
  again.
- ``refill`` and ``cancel`` claim the key before they act and store their answer after; a
  duplicate that arrives while the first is still working waits for its answer (a few seconds),
  and a claim left unanswered by a crash is taken over after :data:`CLAIM_TAKEOVER_SECONDS`
  (both actions are safe to repeat upstream: a refill request or a cancel asked twice does
  nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import HotPathPool
from gateway.errors import (
    ACTIVE_ORDER_EXISTS,
    DAILY_SPEND_LIMIT_REACHED,
    IDEMPOTENCY_IN_PROGRESS,
    IDEMPOTENCY_KEY_REUSED,
    INCORRECT_IDEMPOTENCY_KEY,
    NOT_ENOUGH_FUNDS,
    SERVICE_UNAVAILABLE,
    ProtocolError,
)
from gateway.orders.store import IdempotencyKeyTaken

__all__ = [
    "IDEMPOTENT_ACTIONS",
    "KEY_HEADER",
    "KEY_PARAM",
    "IdempotencyKeys",
    "KeyedCall",
    "keyed_call",
]

KEY_HEADER = "idempotency-key"
KEY_PARAM = "idempotency_key"
IDEMPOTENT_ACTIONS = frozenset({"add", "refill", "cancel"})
# Printable ASCII (spaces inside allowed), as HTTP headers carry it.
_KEY = re.compile(r"[\x20-\x7e]{1,64}")
# Parameters that do not make a request different: the API key (a rotated key is the same
# customer) and the idempotency key itself.
_NOT_HASHED = frozenset({"key", KEY_PARAM})

# A duplicate refill/cancel waits this long for the first call's answer, then is told to retry.
WAIT_FOR_ANSWER_SECONDS = 10.0
# A refill/cancel claim still unanswered after this long was left by a crash: the key is taken over.
CLAIM_TAKEOVER_SECONDS = 60.0
PURGE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class KeyedCall:
    """A call that carries an idempotency key: the key and a digest of what was asked."""

    action: str
    key: str
    request_hash: bytes


def keyed_call(action: str, header: str | None, params: Mapping[str, str]) -> KeyedCall | None:
    """The call's key (from the header or the parameter), or None when it has none or its action
    does not take one. A malformed key, or a header and a parameter that disagree, is refused."""
    if action not in IDEMPOTENT_ACTIONS:
        return None
    param = params.get(KEY_PARAM)
    if header is None and param is None:
        return None
    if header is not None and param is not None and header != param:
        raise ProtocolError(INCORRECT_IDEMPOTENCY_KEY)
    key = header if header is not None else param
    if key is None or not _KEY.fullmatch(key) or not key.strip():
        raise ProtocolError(INCORRECT_IDEMPOTENCY_KEY)
    asked = sorted((name, value) for name, value in params.items() if name not in _NOT_HASHED)
    digest = hashlib.sha256(json.dumps([action, asked], ensure_ascii=False).encode()).digest()
    return KeyedCall(action, key, digest)


@dataclass(frozen=True, slots=True)
class _Previous:
    order_id: int | None
    # For an add: the order's error when the upstream refused it (what the first call answered).
    order_error: str | None
    answer: Any
    claimed_seconds_ago: float


_LOOKUP = text(
    """
    SELECT r.action, r.request_hash, r.order_id, r.answer, r.created_at,
           extract(epoch FROM now() - r.created_at)::float8 AS age,
           CASE WHEN o.state = 'failed' THEN o.last_error END AS order_error
    FROM idempotent_requests r LEFT JOIN orders o ON o.id = r.order_id
    WHERE r.customer_id = :customer_id AND r.key = :key
    """
)
_FORGET = text(
    "DELETE FROM idempotent_requests WHERE customer_id = :customer_id AND key = :key AND created_at = :created_at"
)
_CLAIM = text(
    """
    INSERT INTO idempotent_requests (customer_id, key, action, request_hash)
    VALUES (:customer_id, :key, :action, :request_hash)
    ON CONFLICT (customer_id, key) DO NOTHING
    RETURNING created_at
    """
)
_TAKE_OVER = text(
    """
    UPDATE idempotent_requests SET created_at = now()
    WHERE customer_id = :customer_id AND key = :key AND answer IS NULL AND created_at = :created_at
    RETURNING created_at
    """
)
_ANSWER = text(
    """
    UPDATE idempotent_requests SET answer = :answer
    WHERE customer_id = :customer_id AND key = :key AND answer IS NULL
    """
)
_RELEASE = text("DELETE FROM idempotent_requests WHERE customer_id = :customer_id AND key = :key AND answer IS NULL")
_PURGE = text(
    """
    DELETE FROM idempotent_requests WHERE (customer_id, key) IN (
        SELECT customer_id, key FROM idempotent_requests
        WHERE created_at < now() - make_interval(secs => :ttl)
        ORDER BY created_at LIMIT :limit
    )
    RETURNING 1
    """
)


class IdempotencyKeys:
    """The customers' idempotency keys (``idempotent_requests``), kept ``ttl_seconds``."""

    def __init__(self, hot: HotPathPool, ttl_seconds: float) -> None:
        self._hot = hot
        self.ttl_seconds = ttl_seconds

    async def _previous(self, customer_id: int, call: KeyedCall) -> tuple[_Previous, Any] | None:
        """What an earlier call with this key left (and its claim time), or None: no live one
        (an expired one is forgotten here). Another action or other parameters: refused."""
        row = await self._hot.fetchrow(_LOOKUP, customer_id=customer_id, key=call.key)
        if row is None:
            return None
        if row["age"] >= self.ttl_seconds:
            await self._hot.fetchrow(_FORGET, customer_id=customer_id, key=call.key, created_at=row["created_at"])
            return None
        if row["action"] != call.action or bytes(row["request_hash"]) != call.request_hash:
            raise ProtocolError(IDEMPOTENCY_KEY_REUSED)
        previous = _Previous(row["order_id"], row["order_error"], row["answer"], row["age"])
        return previous, row["created_at"]

    # --- add ------------------------------------------------------------------------------------

    async def add(self, customer_id: int, call: KeyedCall, place: Callable[[KeyedCall], Awaitable[int]]) -> int:
        """Place an order once per key: ``place`` charges with the key stored by the charge
        statement; an earlier call's order is answered instead."""
        found = await self._previous(customer_id, call)
        if found is not None:
            return _replay_add(found[0])
        try:
            return await place(call)
        except IdempotencyKeyTaken:
            pass
        except ProtocolError as exc:
            # A concurrent call with this key may have charged first: then its funds, its link or
            # a database hiccup are why this one failed, and its order is the answer.
            if exc.message not in (
                NOT_ENOUGH_FUNDS,
                DAILY_SPEND_LIMIT_REACHED,
                ACTIVE_ORDER_EXISTS,
                SERVICE_UNAVAILABLE,
            ):
                raise
            with contextlib.suppress(DBAPIError):
                found = await self._previous(customer_id, call)
            if found is None:
                raise
            return _replay_add(found[0])
        found = await self._previous(customer_id, call)
        if found is None:
            # Taken, then forgotten in between (expired): nothing was charged; the client may retry.
            raise ProtocolError(SERVICE_UNAVAILABLE)
        return _replay_add(found[0])

    # --- refill and cancel -------------------------------------------------------------------

    async def answer_once(self, customer_id: int, call: KeyedCall, run: Callable[[], Awaitable[object]]) -> object:
        """Run ``run`` once per key and answer every call with its answer (or its error)."""
        deadline = time.monotonic() + WAIT_FOR_ANSWER_SECONDS
        while True:
            if time.monotonic() >= deadline:
                raise ProtocolError(IDEMPOTENCY_IN_PROGRESS)
            found = await self._previous(customer_id, call)
            if found is None:
                if await self._hot.fetchrow(
                    _CLAIM, customer_id=customer_id, key=call.key, action=call.action, request_hash=call.request_hash
                ):
                    break
                continue
            previous, claimed_at = found
            if previous.answer is not None:
                return _replay(previous.answer)
            if previous.claimed_seconds_ago >= CLAIM_TAKEOVER_SECONDS and await self._hot.fetchrow(
                _TAKE_OVER, customer_id=customer_id, key=call.key, created_at=claimed_at
            ):
                break
            await asyncio.sleep(0.1)
        try:
            answer = await run()
        except ProtocolError as exc:
            if exc.message == SERVICE_UNAVAILABLE:
                await self._release(customer_id, call)
            else:
                await self._store(customer_id, call, {"error": exc.message})
            raise
        except BaseException:
            await self._release(customer_id, call)
            raise
        await self._store(customer_id, call, {"answer": answer})
        return answer

    async def _store(self, customer_id: int, call: KeyedCall, answer: dict[str, Any]) -> None:
        # The action's effects are done: a failure to store the answer only loses the replay
        # (a duplicate then takes the claim over later and asks again, which both actions allow).
        with contextlib.suppress(DBAPIError):
            await asyncio.shield(self._hot.fetchrow(_ANSWER, customer_id=customer_id, key=call.key, answer=answer))

    async def _release(self, customer_id: int, call: KeyedCall) -> None:
        with contextlib.suppress(DBAPIError):
            await asyncio.shield(self._hot.fetchrow(_RELEASE, customer_id=customer_id, key=call.key))

    async def purge_expired(self, limit: int = PURGE_BATCH) -> int:
        """Forget up to ``limit`` expired keys (the worker's sweep); returns how many."""
        rows = await self._hot.fetch(_PURGE, ttl=float(self.ttl_seconds), limit=limit)
        return len(rows)


def _replay_add(previous: _Previous) -> int:
    if previous.order_error is not None:
        raise ProtocolError(previous.order_error)
    assert previous.order_id is not None  # an add's row always has its order (a CHECK)
    return int(previous.order_id)


def _replay(stored: Any) -> object:
    if isinstance(stored, dict) and "error" in stored:
        raise ProtocolError(str(stored["error"]))
    return stored.get("answer") if isinstance(stored, dict) else stored
