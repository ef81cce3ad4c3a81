"""``/api/v2``: one endpoint, many actions, every answer HTTP 200 JSON (PROTOCOL.md section 1)."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.exceptions import ClientException
from sqlalchemy.exc import DBAPIError

from gateway.errors import INCORRECT_REQUEST, INVALID_API_KEY, SERVICE_UNAVAILABLE, ProtocolError
from gateway.ledger.customers import (
    AccountCache,
    CustomerAccount,
    account_for_key,
    address_allowed,
    lookup_hash,
    note_ip_refusal,
)
from gateway.observability.logs import current_request_id
from gateway.orders.idempotency import IDEMPOTENT_ACTIONS, KEY_HEADER, KEY_PARAM
from gateway.orders.placing import AccountChanged
from gateway.orders.store import OrderStatusRow
from gateway.v2.actions import ACTIONS, Call, V2Parts
from gateway.v2.actions import status_ids as read_status_ids
from gateway.v2.clients import Network, client_address
from gateway.v2.params import request_params, scope_header
from gateway.v2.ratelimit import Limiter
from gateway.v2.reads import account_and_statuses

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder(decimal_format="string")
JSON = "application/json"
IDEMPOTENCY_HEADER = KEY_HEADER.encode()


@dataclasses.dataclass(frozen=True, slots=True)
class V2Edge:
    """What ``/api/v2`` needs from the process (``app.state.v2``, set by the composition root)."""

    parts: V2Parts
    rate_limiter: Limiter
    # GATEWAY_TRUSTED_PROXIES: the peers whose X-Forwarded-For is believed.
    trusted_proxies: tuple[Network, ...]
    # The per-call metric: action label, outcome ("ok"/"error"), seconds.
    observe: Callable[[str, str, float], None]
    # Accounts read a moment ago, for add (see AccountCache).
    accounts: AccountCache = dataclasses.field(default_factory=AccountCache)


def protocol_answer(content: bytes, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=content, status_code=200, media_type=JSON, headers=headers)


def error_answer(message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return protocol_answer(_encoder.encode({"error": message}), headers)


# How many times an add is priced and charged when the account keeps changing under it (a
# catalog being edited): then the customer is asked to retry.
ACCOUNT_ATTEMPTS = 3


async def _identify(
    edge: V2Edge, key: str | None, key_hash: bytes | None, action_name: str, params: dict[str, str], address: str
) -> tuple[CustomerAccount, dict[int, OrderStatusRow] | None]:
    """The caller's account, read now (and remembered for a later add), with a status call's
    orders; refuses an unknown key and a key used from outside its allowed IPs."""
    # A status call reads its orders with the key lookup, in one round trip (they are only used
    # once the caller passed every check below).
    status_ids = read_status_ids(params) if action_name == "status" else None
    if status_ids is None:
        caller, statuses = await account_for_key(edge.parts.hot, key, key_hash), None
    else:
        caller, statuses = await account_and_statuses(edge.parts.hot, key, status_ids, key_hash)
    if caller is None:
        await edge.rate_limiter.invalid_key(address)
        raise ProtocolError(INVALID_API_KEY)
    if not address_allowed(caller.allowed_ips, address):
        # Answered exactly like an invalid key; the operator sees it on the customer.
        await edge.rate_limiter.invalid_key(address)
        await note_ip_refusal(edge.parts.hot, caller.id, address)
        log.warning("v2: customer %s's key used from %s, outside its allowed IPs; refused", caller.id, address)
        raise ProtocolError(INVALID_API_KEY)
    if key_hash is not None:
        edge.accounts.put(key_hash, caller)
    return caller, statuses


@route(["/api/v2", "/api/v2/"], http_method=["GET", "POST"], include_in_schema=False)
async def api_v2(request: Request[Any, Any, Any]) -> Response[bytes]:
    edge: V2Edge = request.app.state.v2
    started = time.perf_counter()
    # Metric labels stay bounded: a known action's name or "unknown"; "ok" or "error".
    action_label, outcome = "unknown", "error"
    try:
        params = await request_params(request)
        action_name = params.get("action", "").strip().lower()
        action_label = action_name if action_name in ACTIONS else "unknown"
        address = client_address(request.scope, edge.trusted_proxies)
        # An address that used up its guesses of keys is refused before any database lookup.
        await edge.rate_limiter.before_lookup(address)
        key = params.get("key")
        key_hash = lookup_hash(key)
        # Read only where it counts (add, refill, cancel).
        idempotency_header = scope_header(request, IDEMPOTENCY_HEADER) if action_name in IDEMPOTENT_ACTIONS else None
        # An add may act on the account read a moment ago: its charge goes through only if that
        # account is still the customer's (AccountChanged otherwise). Not with an idempotency key
        # (an earlier call's order would be answered before any charge), and no refusal is ever
        # decided on a remembered account.
        remembered = (
            action_name == "add" and key_hash is not None and idempotency_header is None and KEY_PARAM not in params
        )
        caller = edge.accounts.get(key_hash) if remembered and key_hash is not None else None
        statuses = None
        if caller is None or not address_allowed(caller.allowed_ips, address):
            caller, statuses = await _identify(edge, key, key_hash, action_name, params, address)
        await edge.rate_limiter.customer(caller.id)
        action = ACTIONS.get(action_name)
        if action is None:
            raise ProtocolError(INCORRECT_REQUEST)
        # Set by the request context middleware (from X-Request-ID, or generated).
        request_id = current_request_id() or uuid.uuid4().hex
        call = Call(
            parts=edge.parts,
            caller=caller,
            params=params,
            dialect=caller.dialect or edge.parts.default_dialect,
            request_id=request_id[:64],
            idempotency_header=idempotency_header,
            statuses=statuses,
        )
        for attempt in range(ACCOUNT_ATTEMPTS):
            try:
                result = await action(call)
                break
            except AccountChanged:
                # Nothing was charged; the account (or the catalog) moved since it was read.
                if key_hash is not None:
                    edge.accounts.drop(key_hash)
                if attempt == ACCOUNT_ATTEMPTS - 1:
                    raise ProtocolError(SERVICE_UNAVAILABLE) from None
                caller, _ = await _identify(edge, key, key_hash, action_name, params, address)
                call = dataclasses.replace(call, caller=caller, dialect=caller.dialect or edge.parts.default_dialect)
        outcome = "ok"
    except ProtocolError as exc:
        return error_answer(exc.message, getattr(exc, "headers", None))
    except ClientException:
        # Oversized or unreadable bodies: still a protocol answer, never a bare 4xx.
        return error_answer(INCORRECT_REQUEST)
    except (DBAPIError, OSError):
        # The database is unreachable: the customer's script should retry, not see a 5xx.
        log.warning("v2 %s: database unavailable", action_label, exc_info=True)
        return error_answer(SERVICE_UNAVAILABLE)
    finally:
        edge.observe(action_label, outcome, time.perf_counter() - started)
    if isinstance(result, bytes):
        return protocol_answer(result)
    return protocol_answer(_encoder.encode(result))
