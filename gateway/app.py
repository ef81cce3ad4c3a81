"""``create_app(settings)``: the Litestar application, wired plainly.

Nothing connects at import time: the engine is built here (the embedded Postgres, when used, is
started here too), and the lifespan disposes of it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import __version__, alerts
from gateway.admin.alerts import AlertController
from gateway.admin.auth import admin_guard
from gateway.admin.catalog import CustomerRateController, MarkupRuleController, ServiceController
from gateway.admin.customers import CustomerController
from gateway.admin.deps import AdminAccess
from gateway.admin.orders import OrderController
from gateway.admin.providers import ProviderController
from gateway.admin.refills import RefillController
from gateway.admin.reports import ReportController
from gateway.admin.system import system_info
from gateway.admin.tokens import AuditController, TokenController
from gateway.apidoc import ApiPage, apidoc_routes
from gateway.console import console_routes
from gateway.db import current_revision, head_revision
from gateway.errors import DomainError
from gateway.observability.logs import configure_logging, request_context_middleware
from gateway.observability.metrics import metrics_response
from gateway.runtime import Runtime
from gateway.settings import Settings, load_settings
from gateway.upstream.registry import TransportFactory
from gateway.v2.actions import V2Parts
from gateway.v2.handler import V2Edge, api_v2
from gateway.worker import Worker

log = logging.getLogger(__name__)

Hook = Callable[[Runtime], Any]


# The composition root's own handlers (health, readiness, metrics) may take the whole process.
RuntimeDep: TypeAlias = NamedDependency[Runtime]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _db_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit when the handler returns, roll back when it raises.

    The commit happens before the response is sent, so a failed commit is answered as an error,
    never as a success.
    """
    async with runtime.sessions() as session, session.begin():
        yield session


def _parts(runtime: Runtime) -> dict[str, Provide]:
    """The narrow parts handlers may ask for by name (gateway/admin/deps.py), from this process."""
    return {
        "runtime": Provide(_runtime, sync_to_thread=False),
        "db": Provide(_db_session),
        "sessions": Provide(lambda: runtime.sessions, sync_to_thread=False),
        "providers": Provide(lambda: runtime.providers, sync_to_thread=False),
        "settings": Provide(lambda: runtime.settings, sync_to_thread=False),
        "engine": Provide(lambda: runtime.engine, sync_to_thread=False),
        "webhook_sender": Provide(lambda: runtime.webhooks, sync_to_thread=False),
    }


def _error_body(message: str, status_code: int, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "status_code": status_code}
    if field is not None:
        body["field"] = field
    return body


def _domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return Response(_error_body(exc.message, exc.status_code, exc.field), status_code=exc.status_code)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    field = None
    message = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict):
            field = str(first.get("key") or "") or None
            message = f"{exc.detail}: {first.get('message', 'invalid value')}"
    return Response(
        _error_body(message, exc.status_code, field), status_code=exc.status_code, headers=exc.headers or None
    )


def _crash(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        _error_body("internal error", HTTP_500_INTERNAL_SERVER_ERROR),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


@get("/health", summary="The process is alive", include_in_schema=True)
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@get("/ready", summary="The database is reachable and migrated to head")
async def ready(runtime: RuntimeDep) -> Response[dict[str, str | None]]:
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(runtime.engine)
    except Exception as exc:
        log.warning("readiness check: database unreachable: %s", type(exc).__name__)
        return Response({"status": "unavailable", "database": "unreachable"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    head = head_revision()
    if revision != head:
        body = {"status": "unavailable", "database": "not migrated", "revision": revision, "head": head}
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ready", "database": "ok", "revision": revision})


@get("/metrics", include_in_schema=False, summary="Prometheus metrics")
async def metrics_endpoint(runtime: RuntimeDep) -> Response[bytes]:
    async def open_alerts() -> dict[str, int]:
        async with runtime.engine.connect() as conn:
            return await alerts.open_counts(conn)

    return metrics_response(
        await runtime.metrics.render(runtime.orders.snapshot, runtime.providers.breakers(), alerts_now=open_alerts)
    )


def v2_edge(runtime: Runtime) -> V2Edge:
    """What the customer protocol is given of this process."""
    parts = V2Parts(
        orders=runtime.orders,
        providers=runtime.providers,
        pending=runtime.pending_outcomes,
        catalog=runtime.catalog,
        policy=runtime.policy,
        hot=runtime.hot,
        idempotency=runtime.idempotency,
        default_dialect=runtime.settings.v2_dialect,
    )
    return V2Edge(
        parts=parts,
        rate_limiter=runtime.rate_limiter,
        trusted_proxies=runtime.settings.trusted_networks,
        observe=runtime.metrics.observe_v2,
    )


def admin_router() -> Router:
    """Every admin route, behind the bearer-token guard."""
    return Router(
        path="/admin",
        route_handlers=[
            system_info,
            ProviderController,
            ServiceController,
            MarkupRuleController,
            CustomerRateController,
            CustomerController,
            OrderController,
            RefillController,
            ReportController,
            TokenController,
            AuditController,
            AlertController,
        ],
        guards=[admin_guard],
        security=[{"BearerToken": []}],
        tags=["admin"],
    )


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """Once per process, after the first start-up: what exists by then lives as long as the
    process, so take it out of the garbage collector's sight. A full collection then no longer
    walks the whole import-time heap (a 100+ ms pause otherwise, the p99 of figure 4 in
    docs/BENCHMARKS.md)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    transport_factory: TransportFactory | None = None,
    on_startup: list[Hook] | None = None,
    on_shutdown: list[Hook] | None = None,
) -> Litestar:
    """Build the gateway application for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings()
    runtime = Runtime.build(settings, database_url, transport_factory=transport_factory)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        runtime.start_background()
        worker = Worker(runtime) if settings.serve_worker else None
        worker_task = asyncio.create_task(worker.run(), name="worker") if worker else None
        for hook in on_startup or []:
            result = hook(runtime)
            if hasattr(result, "__await__"):
                await result
        _freeze_startup_heap()
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                # The worker finishes its current step; nothing is left half-done.
                worker.stop()
                await worker_task
            for hook in reversed(on_shutdown or []):
                result = hook(runtime)
                if hasattr(result, "__await__"):
                    await result
            await runtime.aclose()

    return Litestar(
        route_handlers=[
            health,
            ready,
            metrics_endpoint,
            api_v2,
            *apidoc_routes(),
            admin_router(),
            *console_routes(),
        ],
        dependencies=_parts(runtime),
        exception_handlers={
            DomainError: _domain_error,
            HTTPException: _http_error,
            Exception: _crash,
        },
        lifespan=[lifespan],
        middleware=[request_context_middleware],
        # Logging is the process' business (gateway.observability.logs), not the app's.
        logging_config=None,
        state=State(
            {
                "runtime": runtime,
                "v2": v2_edge(runtime),
                "apidoc": ApiPage.from_settings(settings),
                "admin": AdminAccess(token=settings.admin_token, engine=runtime.engine),
            }
        ),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="SMM reseller gateway",
            version=__version__,
            path="/schema",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", description="GATEWAY_ADMIN_TOKEN")
                }
            ),
        ),
        debug=False,
    )


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory`` (one call per API worker process)."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
