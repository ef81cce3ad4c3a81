"""The customers' API page: ``GET /api``, what every panel publishes for its customers.

No key is needed: the page says how to call ``/api/v2`` (the endpoint as this client reaches the
gateway, every action with an example answer in the gateway's default dialect, the service types and
their fields, the exact error strings) and offers example clients at ``/api/example.php`` and
``/api/example.py`` with the endpoint filled in. It is server-rendered HTML with the console's
stylesheet and no script at all; its headers allow nothing but the gateway's own styles and images.

The composition root puts an :class:`~gateway.apidoc.page.ApiPage` into ``app.state.apidoc``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.types import ControllerRouterHandler

from gateway.apidoc.page import CLIENTS, ApiPage, endpoint_base

__all__ = ["ApiPage", "apidoc_routes"]

# No script, no framing, no forms, nothing from another origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The page and the clients carry the endpoint as this client named it: no shared cache may keep them.
    "Cache-Control": "no-cache, private",
    "Vary": "Host",
}


def _page(request: Request[Any, Any, Any]) -> ApiPage:
    page: ApiPage = request.app.state.apidoc
    return page


def _base(request: Request[Any, Any, Any], page: ApiPage) -> str:
    return endpoint_base(
        page.public_url, request.scope.get("scheme"), request.headers.get("host"), request.scope.get("server")
    )


@get(["/api", "/api/"], include_in_schema=False, sync_to_thread=False)
def api_page(request: Request[Any, Any, Any]) -> Response[str]:
    page = _page(request)
    return Response(page.html(_base(request, page)), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@get("/api/page.css", include_in_schema=False, sync_to_thread=False)
def api_page_css(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(_page(request).stylesheet, media_type="text/css; charset=utf-8", headers=SECURITY_HEADERS)


def _client(request: Request[Any, Any, Any], name: str) -> Response[str]:
    page, client = _page(request), CLIENTS[name]
    return Response(
        page.client(name, _base(request, page)),
        media_type=client.media_type,
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{client.filename}"'},
    )


@get("/api/example.php", include_in_schema=False, sync_to_thread=False)
def api_example_php(request: Request[Any, Any, Any]) -> Response[str]:
    return _client(request, "example.php")


@get("/api/example.py", include_in_schema=False, sync_to_thread=False)
def api_example_py(request: Request[Any, Any, Any]) -> Response[str]:
    return _client(request, "example.py")


def apidoc_routes() -> list[ControllerRouterHandler]:
    """The page, its stylesheet and the example clients."""
    return [api_page, api_page_css, api_example_php, api_example_py]
