"""``/api/v2``: one endpoint, many actions, every answer HTTP 200 JSON (PROTOCOL.md section 1)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.exceptions import ClientException
from sqlalchemy.exc import DBAPIError

from gateway.errors import INCORRECT_REQUEST, INVALID_API_KEY, SERVICE_UNAVAILABLE, ProtocolError
from gateway.ledger.customers import account_for_key
from gateway.observability.logs import current_request_id
from gateway.v2.actions import ACTIONS, Call, V2Parts
from gateway.v2.actions import status_ids as read_status_ids
from gateway.v2.params import request_params
from gateway.v2.ratelimit import RateLimiter
from gateway.v2.reads import account_and_statuses

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder(decimal_format="string")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class V2Edge:
    """What ``/api/v2`` needs from the process (``app.state.v2``, set by the composition root)."""

    parts: V2Parts
    rate_limiter: RateLimiter
    # The per-call metric: action label, outcome ("ok"/"error"), seconds.
    observe: Callable[[str, str, float], None]


def protocol_answer(content: bytes, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=content, status_code=200, media_type=JSON, headers=headers)


def error_answer(message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return protocol_answer(_encoder.encode({"error": message}), headers)


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
        # Keyless calls share one bucket per client address.
        client_host = request.client.host if request.client else "unknown"
        edge.rate_limiter.check(params.get("key") or f"addr:{client_host}")
        key = params.get("key")
        # A status call reads its orders with the key lookup, in one round trip.
        status_ids = read_status_ids(params) if action_name == "status" else None
        if status_ids is None:
            caller, statuses = await account_for_key(edge.parts.hot, key), None
        else:
            caller, statuses = await account_and_statuses(edge.parts.hot, key, status_ids)
        if caller is None:
            raise ProtocolError(INVALID_API_KEY)
        action = ACTIONS.get(action_name)
        if action is None:
            raise ProtocolError(INCORRECT_REQUEST)
        dialect = caller.dialect or edge.parts.default_dialect
        # Set by the request context middleware (from X-Request-ID, or generated).
        request_id = current_request_id() or uuid.uuid4().hex
        result = await action(
            Call(
                parts=edge.parts,
                caller=caller,
                params=params,
                dialect=dialect,
                request_id=request_id[:64],
                statuses=statuses,
            )
        )
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
