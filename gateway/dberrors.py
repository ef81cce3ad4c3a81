"""Reading a database error without its row contents.

Postgres error texts can echo the row that failed (``Failing row contains (...)``, ``Key (...)=(...)``),
and rows hold provider keys and customers' links. Code that must say what went wrong (a log line,
an order's ``last_error``, an anomaly) uses these instead of ``str(exc)``.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


def _causes(exc: BaseException) -> list[BaseException]:
    """The error and what it wraps (SQLAlchemy's ``orig``, the driver's own cause)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 5:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint or unique index a write violated, if the driver says."""
    for error in _causes(exc):
        name = getattr(error, "constraint_name", None)
        if isinstance(name, str) and name:
            return name
    return None


def error_summary(exc: BaseException) -> str:
    """A short description safe to log or store: the driver's error class, its SQLSTATE and the
    constraint, never the message (which may quote the row)."""
    driver = _causes(exc)[-1]
    parts = [type(driver).__name__]
    state = getattr(driver, "sqlstate", None)
    if isinstance(state, str) and state:
        parts.append(f"sqlstate {state}")
    constraint = violated_constraint(exc)
    if constraint:
        parts.append(f"constraint {constraint}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        parts.append("connection lost")
    return ", ".join(parts)


def raised_by_server(exc: BaseException) -> bool:
    """True when the database itself refused the statement (a constraint, a deadlock, a timeout
    of the statement): it ended without committing anything. False for a failure on the way,
    which leaves that unknown: the connection lost (SQLSTATE class 08, which asyncpg also gives
    to connections it found closed), the server shutting down (57P) or failing (XX)."""
    for error in _causes(exc):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state:
            return not state.startswith(("08", "57P", "XX"))
    return False
