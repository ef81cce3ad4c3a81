"""Failpoints: named places where a test can make this process die (SIGKILL) on purpose.

The crash tests start the gateway with ``GATEWAY_FAILPOINTS=after_charge`` (comma separated) and
check that a process killed exactly there leaves nothing charged twice, sent twice or lost. With
the variable unset (always, in production) a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_armed: frozenset[str] | None = None


def failpoint(name: str) -> None:
    """Die here, at once and without cleanup, when the failpoint ``name`` is armed."""
    global _armed
    if _armed is None:
        _armed = frozenset(p.strip() for p in os.environ.get("GATEWAY_FAILPOINTS", "").split(",") if p.strip())
    if name in _armed:
        os.kill(os.getpid(), signal.SIGKILL)
