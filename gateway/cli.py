"""The ``gateway`` command (ADMIN-API.md, "CLI").

Every command reads the settings first; a bad setting prints one line naming it and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gateway.db import DatabaseUnavailable, migrate, resolve_database_url, stop_embedded
from gateway.observability.logs import configure_logging
from gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from gateway.catalog.sync import SyncSummary

EXIT_USAGE = 2
EXIT_FAILURE = 1

log = logging.getLogger("gateway.cli")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {port}")
    return port


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _setup_logging(settings: Settings) -> None:
    # One line per event, key=value or JSON, secrets redacted (gateway/observability/logs.py).
    configure_logging(settings)


def _database(settings: Settings) -> str:
    url = resolve_database_url(settings)
    migrate(url, settings.database_pooler)
    return url


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    url = resolve_database_url(settings)
    migrate(url, settings.database_pooler)
    print("database migrated to head")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    url = _database(settings)
    if args.no_worker:
        os.environ["GATEWAY_SERVE_WORKER"] = "false"
        settings = settings.model_copy(update={"serve_worker": False})
    if args.workers > 1:
        # Worker processes build their own app from the environment; hand them the resolved
        # database so they join this process' embedded Postgres instead of starting their own.
        os.environ["GATEWAY_DATABASE_URL"] = url
        uvicorn.run(
            "gateway.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level="warning",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    else:
        app = create_app(settings, database_url=url)
        # Our logging setup stays in charge (log_config=None); the access line comes from our middleware.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    return 0


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from gateway.worker import run_worker

    url = _database(settings)
    asyncio.run(run_worker(settings, url))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(settings, args.port)


def _progress_bar(name: str) -> Callable[[str, int, int], None]:
    def show(stage: str, done: int, total: int) -> None:
        width = 30
        filled = width if total == 0 else width * done // total
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if stage == "write" and done == total else ""
        print(f"\r{name}: {stage:<5} [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


async def sync_all(
    settings: Settings,
    database_url: str,
    provider_id: int | None,
    progress_for: Callable[[str], Callable[[str, int, int], None]] | None,
) -> list[tuple[str, SyncSummary | str]]:
    """``gateway sync``: sync one provider or every enabled one; failures are reported, not raised."""
    from gateway.catalog.providers import list_providers
    from gateway.catalog.sync import sync_provider
    from gateway.errors import DomainError
    from gateway.runtime import Runtime
    from gateway.upstream import UpstreamError

    runtime = Runtime.build(settings, database_url)
    results: list[tuple[str, SyncSummary | str]] = []
    try:
        async with runtime.sessions() as session:
            providers = [
                (p.id, p.name)
                for p in await list_providers(session)
                if (p.id == provider_id if provider_id is not None else p.enabled)
            ]
        for pid, name in providers:
            try:
                summary = await sync_provider(
                    runtime.sessions,
                    runtime.providers,
                    pid,
                    progress_for(name) if progress_for else None,
                    guard=runtime.margin_guard,
                )
            except (UpstreamError, DomainError) as exc:
                results.append((name, str(exc)))
            else:
                results.append((name, summary))
    finally:
        await runtime.aclose()
    return results


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    url = _database(settings)
    results = asyncio.run(sync_all(settings, url, args.provider, _progress_bar))
    failed = 0
    for name, outcome in results:
        if isinstance(outcome, str):
            failed += 1
            print(f"{name}: FAILED: {outcome}")
        else:
            counts = outcome.as_dict()
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not results:
        print("no provider to sync" if args.provider is None else f"provider {args.provider} not found")
        return EXIT_FAILURE if args.provider is not None else 0
    return EXIT_FAILURE if failed else 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "demo": cmd_demo,
    "sync": cmd_sync,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="SMM reseller gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API (and the worker, unless --no-worker)")
    serve.add_argument("--host", help="listen address (default: GATEWAY_HOST)")
    serve.add_argument("--port", type=_port, help="listen port (default: GATEWAY_PORT)")
    serve.add_argument("--workers", type=_positive, default=1, help="API processes (default 1)")
    serve.add_argument("--no-worker", action="store_true", help="do not run the background worker in-process")

    sub.add_parser("worker", help="run the background worker alone (dispatch, status sync, catalog sync)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("simulate", help="the simulated upstream panel alone (see: gateway simulate --help)", add_help=False)
    sync = sub.add_parser("sync", help="sync provider catalogs now, with progress")
    sync.add_argument("--provider", type=_positive, help="only this provider id (default: every enabled one)")
    demo = sub.add_parser("demo", help="everything on one machine, ready to try")
    demo.add_argument("--port", type=_port, help="listen port (default: GATEWAY_PORT)")
    return parser


class Terminated(Exception):
    """SIGTERM arrived: leave through the normal exit path so cleanup (the embedded Postgres) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal to the handler that
    # was there before it; this one turns it into a clean exit instead of a kill.
    signal.signal(signal.SIGTERM, _on_sigterm)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["simulate"]:
        # The simulated panel needs no gateway settings or database: it has its own options.
        from gateway.simulator.command import main as simulate

        try:
            return simulate(arguments[1:])
        except (KeyboardInterrupt, Terminated):
            return 0
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(settings)
    try:
        return COMMANDS[args.command](settings, args)
    except DatabaseUnavailable as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (KeyboardInterrupt, Terminated):
        return 0
    finally:
        stop_embedded()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
