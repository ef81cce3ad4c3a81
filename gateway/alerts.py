"""Alerts as data: a condition the operator must know about, opened and closed by the gateway.

A condition is a ``kind`` and a ``subject`` (``margin`` / ``service:12``, ``charge_drift`` /
``provider:3``, ``orders_unknown`` / ``orders``). Whoever evaluates a kind (the catalog sync, the
worker) calls :func:`reconcile` with every condition of that kind that holds now: an alert opens
for each new one, an open one gets its details refreshed, and an open one whose condition ended is
closed. The partial unique index ``uq_alerts_open`` (one open alert per kind and subject) makes
concurrent evaluators meet in the database: ``INSERT ... ON CONFLICT`` can never open a second
alert for the same condition, whichever process gets there first.

Details are JSON the operator reads; they never hold a key or a token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Result, select, text, update
from sqlalchemy.sql import Executable

from gateway.models import ALERT_KINDS, Alert

__all__ = [
    "ALERT_KINDS",
    "AlertFilter",
    "Reconciled",
    "acknowledge",
    "get_alert",
    "list_alerts",
    "open_counts",
    "reconcile",
]

log = logging.getLogger(__name__)


class Executor(Protocol):
    """An ``AsyncSession`` or ``AsyncConnection``: whatever unit of work the caller is in."""

    async def execute(self, statement: Executable, parameters: Any = None, /) -> Result[Any]: ...


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one evaluation changed."""

    opened: list[str]
    closed: list[str]


_OPEN = text(
    """
    INSERT INTO alerts (kind, subject, details)
    SELECT :kind, s.subject, CAST(s.details AS jsonb)
    FROM unnest(CAST(:subjects AS text[]), CAST(:details AS text[])) AS s(subject, details)
    ON CONFLICT (kind, subject) WHERE closed_at IS NULL
    DO UPDATE SET details = alerts.details || EXCLUDED.details
    WHERE alerts.details IS DISTINCT FROM alerts.details || EXCLUDED.details
    RETURNING subject, (xmax = 0) AS inserted
    """
)

_CLOSE = text(
    """
    UPDATE alerts SET closed_at = now()
    WHERE kind = :kind AND closed_at IS NULL
      AND NOT (subject = ANY(CAST(:current AS text[])))
      AND (CAST(:within AS text[]) IS NULL OR subject = ANY(CAST(:within AS text[])))
    RETURNING subject
    """
)


async def reconcile(
    conn: Executor,
    kind: str,
    current: Mapping[str, Mapping[str, Any]],
    *,
    within: Iterable[str] | None = None,
) -> Reconciled:
    """Make the open alerts of ``kind`` match ``current`` (subject -> details, every condition that
    holds now; an open alert's details are updated key by key, so a key an evaluation leaves out keeps
    what an earlier one said). With ``within``, only those subjects may be closed (an evaluator that looked at part
    of the subjects, e.g. one provider's services, leaves the others alone)."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    opened: list[str] = []
    if current:
        subjects = sorted(current)
        rows = await conn.execute(
            _OPEN,
            {
                "kind": kind,
                "subjects": subjects,
                "details": [json.dumps(dict(current[s]), default=str, sort_keys=True) for s in subjects],
            },
        )
        opened = [str(row.subject) for row in rows if row.inserted]
    closed_rows = await conn.execute(
        _CLOSE,
        {"kind": kind, "current": sorted(current), "within": None if within is None else sorted(set(within))},
    )
    closed = [str(row.subject) for row in closed_rows]
    for subject in opened:
        log.warning("alert opened kind=%s subject=%s", kind, subject)
    for subject in closed:
        log.info("alert closed kind=%s subject=%s", kind, subject)
    return Reconciled(opened, closed)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts to list, newest first: open or closed (None: both), one kind, ids below ``before``."""

    open: bool | None = None
    kind: str | None = None
    limit: int = 100
    before: int | None = None


async def list_alerts(conn: Any, flt: AlertFilter) -> list[Alert]:
    """The alerts matching ``flt``, newest first (``conn``: an ``AsyncSession``)."""
    query = select(Alert).order_by(Alert.id.desc()).limit(flt.limit)
    if flt.open is True:
        query = query.where(Alert.closed_at.is_(None))
    elif flt.open is False:
        query = query.where(Alert.closed_at.is_not(None))
    if flt.kind is not None:
        query = query.where(Alert.kind == flt.kind)
    if flt.before is not None:
        query = query.where(Alert.id < flt.before)
    return list((await conn.scalars(query)).all())


async def get_alert(conn: Any, alert_id: int) -> Alert | None:
    """One alert (``conn``: an ``AsyncSession``)."""
    result: Alert | None = await conn.get(Alert, alert_id)
    return result


async def acknowledge(conn: Any, alert_id: int, actor: str, at: datetime) -> bool:
    """Mark an alert acknowledged by ``actor``; False when it already was (the first one stays)."""
    result = await conn.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.acknowledged_at.is_(None))
        .values(acknowledged_by=actor[:100], acknowledged_at=at)
        .returning(Alert.id)
    )
    return result.first() is not None


async def open_counts(conn: Executor) -> dict[str, int]:
    """Open alerts per kind, every kind present (0 when none): for ``gateway_alerts_open{kind}``."""
    counts = dict.fromkeys(ALERT_KINDS, 0)
    rows = await conn.execute(text("SELECT kind, count(*) AS n FROM alerts WHERE closed_at IS NULL GROUP BY kind"))
    for row in rows:
        counts[str(row.kind)] = int(row.n)
    return counts
