"""Turning a v2 request into flat string parameters, whatever the client sent.

Clients in the wild send ``application/x-www-form-urlencoded`` (PHP curl, Python ``requests``),
``multipart/form-data``, a JSON object, or a ``GET`` with a query string. Body parameters win over
query parameters; unknown parameters are kept (and ignored by the actions).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request

from gateway.errors import INCORRECT_REQUEST, ProtocolError

MAX_PARAMS = 200


# Lists of ids join with commas, like the form encoding clients use; lists of text (comments,
# usernames) join with line breaks, one item per line as the protocol counts them.
_ID_LISTS = frozenset({"orders", "refills"})


def _flatten(value: object, separator: str = ",") -> str | None:
    """A JSON value as the string a form would have carried."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        parts = [_flatten(item, separator) for item in value]
        return separator.join(p for p in parts if p is not None)
    raise ProtocolError(INCORRECT_REQUEST)


def _from_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
    if len(pairs) > MAX_PARAMS:
        raise ProtocolError(INCORRECT_REQUEST)
    params: dict[str, str] = {}
    for name, value in pairs:
        # PHP-style ``orders[]=1&orders[]=2`` becomes ``orders=1,2``.
        if name.endswith("[]"):
            name = name[:-2]
            params[name] = f"{params[name]},{value}" if params.get(name) else value
        else:
            params[name] = value
    return params


def parse_query(query: str) -> dict[str, str]:
    return _from_pairs(parse_qsl(query, keep_blank_values=True))


def scope_header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """One request header (``name`` in lower case) straight from the ASGI scope: building
    Litestar's Headers for one header costs more than the rest of the parsing (this runs on every
    v2 call)."""
    for key, value in request.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _content_type(request: Request[Any, Any, Any]) -> str:
    value = scope_header(request, b"content-type")
    return "" if value is None else value.split(";", 1)[0].strip().lower()


async def request_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Every parameter of a v2 call as strings; raises the protocol's ``Incorrect request``."""
    query = request.scope.get("query_string", b"")
    params = parse_query(query.decode("latin-1")) if query else {}
    if request.method != "POST":
        return params
    content_type = _content_type(request)
    try:
        if content_type == "multipart/form-data":
            form = await request.form()
            body = _from_pairs([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
        else:
            raw = await request.body()
            if not raw.strip():
                body = {}
            elif content_type == "application/json" or (not content_type and raw.lstrip()[:1] == b"{"):
                decoded = msgspec.json.decode(raw)
                if not isinstance(decoded, dict):
                    raise ProtocolError(INCORRECT_REQUEST)
                if len(decoded) > MAX_PARAMS:
                    raise ProtocolError(INCORRECT_REQUEST)
                flat = ((str(k), _flatten(v, "," if k in _ID_LISTS else "\n")) for k, v in decoded.items())
                body = {k: v for k, v in flat if v is not None}
            else:
                body = _from_pairs(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    except ProtocolError:
        raise
    except Exception:
        raise ProtocolError(INCORRECT_REQUEST) from None
    params.update(body)
    return params
