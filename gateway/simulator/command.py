"""``gateway simulate``: run a simulated upstream panel from the command line."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from decimal import Decimal

from gateway.simulator.catalog import default_catalog, generate_catalog
from gateway.simulator.config import DEFAULT_API_KEY, Dialect, SimulatorConfig
from gateway.simulator.runner import LOOPBACK, serve


def build_parser() -> argparse.ArgumentParser:
    """The options of ``gateway simulate``."""
    parser = argparse.ArgumentParser(
        prog="gateway simulate", description="Run a simulated upstream SMM panel (API v2)."
    )
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--dialect", choices=[d.value for d in Dialect], default=Dialect.DOCUMENTED.value)
    parser.add_argument("--key", default=DEFAULT_API_KEY, help="the API key the panel accepts")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--balance", type=Decimal, default=Decimal("1000.00"), help="reseller balance")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--partial-probability", type=float, default=0.1)
    parser.add_argument("--cancel-probability", type=float, default=0.05)
    parser.add_argument("--catalog-size", type=int, default=0, help="serve a generated catalog of N services instead")
    parser.add_argument("--duplicate-link-guard", action="store_true", help="refuse a 2nd active order")
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The ``SimulatorConfig`` the parsed options describe."""
    catalog = generate_catalog(args.catalog_size, seed=args.seed) if args.catalog_size else default_catalog()
    return SimulatorConfig(
        api_key=args.key,
        dialect=Dialect(args.dialect),
        speed=args.speed,
        seed=args.seed,
        currency=args.currency,
        starting_balance=args.balance,
        catalog=catalog,
        partial_probability=args.partial_probability,
        cancel_probability=args.cancel_probability,
        duplicate_link_guard=args.duplicate_link_guard,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (without the program name), serve until interrupted; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as bad:
        parser.error(str(bad))
    with_host = f"[{args.host}]" if ":" in args.host else args.host
    if not _is_loopback(args.host):
        sys.stderr.write(f"warning: the simulator is reachable from outside on {args.host}; control needs no key\n")
    sys.stderr.write(
        f"simulated panel: http://{with_host}:{args.port}/api/v2  key={config.api_key}  "
        f"dialect={config.dialect.value}  speed={config.speed}x  services={len(config.catalog)}\n"
        f"control plane:   http://{with_host}:{args.port}/control/state\n"
    )
    serve(args.host, args.port, config)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
