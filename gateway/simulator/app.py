"""The HTTP layer of the simulated panel: ``/api/v2`` with fault injection, plus the control plane.

Parameters are read the way PHP panels read them: form-encoded or multipart bodies, a JSON object
body, or the query string, body winning; blank values are kept (``link=`` is an empty link, not a
missing one) and the last of repeated keys wins.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast
from urllib.parse import parse_qsl

import msgspec
from litestar import HttpMethod, Litestar, Request, Response, route
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException

from gateway.simulator import actions
from gateway.simulator.control import control_router
from gateway.simulator.dialects import Json
from gateway.simulator.faults import (
    DIRECTIVE_SCOPE_KEY,
    ASGIApp,
    FaultRule,
    TransportDirective,
    TransportFaults,
)
from gateway.simulator.recorder import RecordedRequest
from gateway.simulator.simulation import Simulation

JSON = "application/json"
HTML = "text/html; charset=utf-8"
_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_MAINTENANCE_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><title>Just a moment...</title></head><body>'
    "<h1>We'll be back soon!</h1><p>The panel is under maintenance. Please try again later.</p>"
    "</body></html>"
)


def _form_value(value: Any) -> str | None:
    # JSON clients send numbers, booleans and id lists; a PHP panel would see them as strings.
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return None


async def read_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """All request parameters as strings; an unreadable body counts as an empty one."""
    params = dict(parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True))
    media_type = request.content_type[0]
    body = await request.body()
    if not body:
        return params
    if media_type == JSON:
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return params
        if isinstance(decoded, dict):
            values = {str(k): _form_value(v) for k, v in decoded.items()}
            params.update({k: v for k, v in values.items() if v is not None})
    elif media_type == "multipart/form-data":
        try:
            form = await request.form()
        except ClientException:  # e.g. no boundary: a PHP panel would just see an empty $_POST
            return params
        params.update({k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)})
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _faulty_response(fault: FaultRule, answer: bytes | None, directive: TransportDirective) -> Response[bytes]:
    body = fault.body.encode() if fault.body is not None else None
    if fault.kind in ("drop", "hang"):
        directive.kind = fault.kind
        directive.hang_limit = fault.latency
        return Response(b"", media_type=JSON)  # never delivered: the transport wrapper takes over
    if fault.kind == "error":
        return Response(msgspec.json.encode({"error": fault.error}), status_code=fault.status_code or 200)
    if fault.kind == "http_5xx":
        page = body or _BAD_GATEWAY_PAGE.encode()
        return Response(page, status_code=fault.status_code or 502, media_type=HTML)
    if fault.kind == "html":
        return Response(body or _MAINTENANCE_PAGE.encode(), status_code=fault.status_code or 200, media_type=HTML)
    if fault.kind == "answer":
        # A well-formed answer the panel never meant, e.g. an ``add`` answered with a reused id.
        return Response(body or b"", status_code=fault.status_code or 200, media_type=JSON)
    if fault.kind == "malformed_json":
        # The real answer cut short when there is one, as when a worker dies mid-write.
        truncated = answer[: max(1, len(answer) // 2)] if answer else b'{"status":"Compl'
        return Response(body or truncated, status_code=fault.status_code or 200, media_type=JSON)
    return Response(body or b"", status_code=fault.status_code or 200, media_type=JSON)  # "empty"


@route(["/api/v2", "/api/v2/"], http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def api_v2(request: Request[Any, Any, Any], simulation: NamedDependency[Simulation]) -> Response[bytes]:
    """The panel's one endpoint; see PROTOCOL.md §2 for the actions."""
    seq, received_at = simulation.requests.next_seq(), time.time()
    params = await read_params(request)
    key = params.pop("key", None)
    action = params.get("action", "").strip() or None
    decision = simulation.faults.decide(action)
    if decision.delay_before:
        await asyncio.sleep(decision.delay_before)
    fault = decision.fault
    processed = fault is None or fault.when == "after"
    panel = simulation.panel
    answer: Json | None = actions.answer(panel, simulation.dialect, key, params) if processed else None
    if decision.delay_after:
        await asyncio.sleep(decision.delay_after)
    error = answer.get("error") if isinstance(answer, dict) else None
    simulation.requests.append(
        RecordedRequest(
            seq=seq,
            received_at=received_at,
            sim_time=panel.clock.now(),
            method=request.method,
            content_type=request.content_type[0],
            action=action,
            params=params,
            key_valid=actions.key_is_valid(panel, key),
            processed=processed,
            error=error if isinstance(error, str) else None,
            fault=fault.kind if fault is not None else None,
        )
    )
    encoded = msgspec.json.encode(answer) if answer is not None else None
    if fault is not None:
        directive = cast(dict[str, Any], request.scope)[DIRECTIVE_SCOPE_KEY]
        return _faulty_response(fault, encoded, directive)
    return Response(encoded or b"", media_type=JSON)


def create_app(simulation: Simulation) -> TransportFaults:
    """The simulator's ASGI app for ``simulation``; nothing starts until a server runs it."""
    app = Litestar(
        route_handlers=[api_v2, control_router()],
        dependencies={"simulation": Provide(lambda: simulation, use_cache=True, sync_to_thread=False)},
        logging_config=None,
        openapi_config=None,
    )
    return TransportFaults(cast(ASGIApp, app))
