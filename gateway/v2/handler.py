"""``/api/v2``: one endpoint, many actions, every answer HTTP 200 JSON (PROTOCOL.md section 1)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.exceptions import ClientException

from gateway.errors import INCORRECT_REQUEST, ProtocolError
from gateway.runtime import Runtime
from gateway.v2.actions import ACTIONS, Call
from gateway.v2.customers import authenticate
from gateway.v2.params import request_params

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder(decimal_format="string")
JSON = "application/json"


def protocol_answer(content: bytes, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=content, status_code=200, media_type=JSON, headers=headers)


def error_answer(message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return protocol_answer(_encoder.encode({"error": message}), headers)


@route(["/api/v2", "/api/v2/"], http_method=["GET", "POST"], include_in_schema=False)
async def api_v2(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime: Runtime = request.app.state.runtime
    try:
        params = await request_params(request)
        # Keyless calls share one bucket per client address.
        client_host = request.client.host if request.client else "unknown"
        runtime.rate_limiter.check(params.get("key") or f"addr:{client_host}")
        caller = await authenticate(runtime.engine, params.get("key"))
        action = ACTIONS.get(params.get("action", "").strip().lower())
        if action is None:
            raise ProtocolError(INCORRECT_REQUEST)
        dialect = caller.dialect or runtime.settings.v2_dialect
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        result = await action(
            Call(runtime=runtime, caller=caller, params=params, dialect=dialect, request_id=request_id[:64])
        )
    except ProtocolError as exc:
        return error_answer(exc.message, getattr(exc, "headers", None))
    except ClientException:
        # Oversized or unreadable bodies: still a protocol answer, never a bare 4xx.
        return error_answer(INCORRECT_REQUEST)
    if isinstance(result, bytes):
        return protocol_answer(result)
    return protocol_answer(_encoder.encode(result))
