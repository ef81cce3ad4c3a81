"""The gateway app with the upstream on an in-process transport, under uvicorn.

``gateway serve`` talks to upstreams over the network; to measure the gateway without an upstream
server in the way, this builds the very same app with ``create_app(..., transport_factory=...)``
answering every ``add`` at once (``httpx.MockTransport``), and serves it like ``gateway serve``
does. Settings come from the environment (GATEWAY_*), the database URL must be explicit.

    python -m tests.bench.launcher --port 8081 [--workers 2]
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from litestar import Litestar

from gateway.app import create_app
from gateway.observability.logs import configure_logging
from gateway.settings import load_settings
from tests.bench.harness import mock_upstream


def build() -> Litestar:
    """The uvicorn factory (called once per worker process), like ``gateway serve``'s."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(
        settings,
        database_url=os.environ["GATEWAY_DATABASE_URL"],
        transport_factory=lambda _provider_id: mock_upstream(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "tests.bench.launcher:build",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
