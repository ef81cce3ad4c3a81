"""Failpoints: named places where a test can make this process die, or its database fail, on purpose.

The crash tests start the gateway with ``GATEWAY_FAILPOINTS=after_charge`` (comma separated) and
check that a process killed exactly there leaves nothing charged twice, sent twice or lost.
``name:error`` (or ``name:error*3``, three times) makes the place raise a database error instead,
as if Postgres had failed right there; in-process tests use :func:`arm`. With nothing armed
(always, in production) a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError


@dataclass(slots=True)
class _Armed:
    action: str  # "kill" or "error"
    remaining: int | None  # None: every time


_armed: dict[str, _Armed] | None = None


def _parse(spec: str) -> dict[str, _Armed]:
    armed: dict[str, _Armed] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, action = item.partition(":")
        action, _, times = action.partition("*")
        armed[name.strip()] = _Armed(action.strip() or "kill", int(times) if times.strip() else None)
    return armed


def _table() -> dict[str, _Armed]:
    global _armed
    if _armed is None:
        _armed = _parse(os.environ.get("GATEWAY_FAILPOINTS", ""))
    return _armed


def arm(name: str, action: str = "error", times: int | None = None) -> None:
    """Arm a failpoint in this process (tests); ``times`` firings, or every time when None."""
    if action not in ("kill", "error"):
        raise ValueError("action must be kill or error")
    _table()[name] = _Armed(action, times)


def disarm_all() -> None:
    """Forget every failpoint armed in this process, and re-read the environment next time."""
    global _armed
    _armed = None


def failpoint(name: str) -> None:
    """Die here at once and without cleanup, or raise a database error, when ``name`` is armed."""
    armed = _table().get(name)
    if armed is None:
        return
    if armed.remaining is not None:
        if armed.remaining <= 0:
            return
        armed.remaining -= 1
    if armed.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise DBAPIError(f"failpoint {name}", None, ConnectionError(f"failpoint {name}: the database failed here"))
