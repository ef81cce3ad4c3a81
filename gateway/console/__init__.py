"""The operator console: static pages at ``/console`` that are a client of the admin API.

Nothing here reads the database or skips the admin guard: the browser holds the admin token (in
``sessionStorage``) and calls ``/admin/*`` with it like any other script. The server only hands out
files (``/console`` and ``/console/`` are the index page), with headers that forbid inline script,
framing and any other origin.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC_DIR = Path(__file__).resolve().parent / "static"
PATH = "/console"

# Everything comes from the gateway itself: no inline script or style, no framing, no plugins.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
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
}


def _secure(response: Response[object]) -> Response[object]:
    response.headers.update(SECURITY_HEADERS)
    return response


def console_routes() -> list[ControllerRouterHandler]:
    """The console's route handlers: its static files, ``index.html`` at ``/console`` and ``/console/``."""
    files: Router = create_static_files_router(
        path=PATH,
        directories=[STATIC_DIR],
        html_mode=True,  # a directory (the console's root) answers with its index.html
        name="console",
        include_in_schema=False,
        # Revalidated on every load (a cheap 304), so a new release is picked up at once.
        cache_control=CacheControlHeader(no_cache=True),
        after_request=_secure,
    )
    return [files]
