"""How one upstream call is carried out: the deadline, the address guard, the circuit breaker,
retries where PROTOCOL.md section 5 allows them, and one observer record per attempt."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlencode

import httpx

from gateway.upstream.addresses import HostGuard
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.config import UpstreamConfig
from gateway.upstream.errors import (
    UpstreamAddressRefused,
    UpstreamCircuitOpen,
    UpstreamNotSent,
    UpstreamRejected,
    UpstreamUnknown,
)
from gateway.upstream.redact import ApiKey, excerpt
from gateway.upstream.types import AttemptOutcome, AttemptRecord
from gateway.upstream.wire import AttemptPhase, UpstreamHttp, post_form, read_answer

__all__ = ["CallRunner", "Observer"]

logger = logging.getLogger("gateway.upstream")

T = TypeVar("T")
Observer = Callable[[AttemptRecord], None]


class CallRunner:
    """Runs the calls of one provider over its pool. The client decides *what* to send and how to
    read the answer; this decides *how*, and what a failure means."""

    def __init__(
        self,
        *,
        provider_id: int | str,
        api_url: str,
        key: ApiKey,
        config: UpstreamConfig,
        http: UpstreamHttp,
        breaker: CircuitBreaker,
        guard: HostGuard | None,
        observer: Observer | None,
    ) -> None:
        self.provider_id = provider_id
        self.api_url = api_url
        self.config = config
        self.breaker = breaker
        self.guard = guard
        self.observer = observer
        self._key = key
        self._key_field = urlencode({"key": key.reveal()})
        self._http = http
        # Parsed once per provider, not on every call (httpx re-parses a URL given as text).
        self._url = url = httpx.URL(api_url)
        self._host = url.raw_host.decode("ascii")
        self._port = url.port or (443 if url.scheme == "https" else 80)

    async def run(
        self,
        action: str,
        form: dict[str, str],
        parse: Callable[[object], T],
        *,
        write: bool,
        request_id: str | None,
    ) -> T:
        """Send ``form`` as ``action`` and parse the answer, retrying reads on "not sent" and
        "unknown" and writes only on "not sent" (never once the request may have arrived)."""
        attempts = self.config.write_attempts if write else self.config.read_attempts
        # Encoded once per call (the key's part once per provider): every attempt sends these bytes.
        body = f"{self._key_field}&{urlencode({'action': action, **form})}".encode()
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(action, body, parse, request_id, attempt)
            except (UpstreamCircuitOpen, UpstreamAddressRefused):
                raise  # retrying cannot help: fail fast
            except UpstreamNotSent as exc:
                if attempt == attempts:
                    raise
                retry_reason = exc.message
            except UpstreamUnknown as exc:
                # A write that may have arrived is never sent again (PROTOCOL.md section 5).
                if write or attempt == attempts:
                    raise
                retry_reason = exc.message
            delay = self._backoff(attempt)
            logger.info(
                "upstream %s %s attempt %d failed (%s); retrying in %.2fs [request_id=%s]",
                self.provider_id,
                action,
                attempt,
                retry_reason,
                delay,
                request_id,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int) -> float:
        # Capped exponential with "equal jitter": never zero, never in lockstep with other workers.
        delay = min(self.config.backoff_max, self.config.backoff_base * 2.0 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    async def _attempt(
        self,
        action: str,
        body: bytes,
        parse: Callable[[object], T],
        request_id: str | None,
        attempt: int,
    ) -> T:
        started = time.perf_counter()
        if not self.breaker.allow():
            error = UpstreamCircuitOpen(f"circuit open for provider {self.provider_id}")
            self._record(action, "not_sent", None, started, error.message, request_id, attempt, short=True)
            raise error
        http_status: int | None = None
        try:
            phase = AttemptPhase(check_peer=self.guard is not None)
            resolved = False
            try:
                async with asyncio.timeout(self.config.deadline):
                    if self.guard is not None:
                        await self.guard.check(self._host, self._port)
                    resolved = True
                    raw = await post_form(
                        self._http,
                        self._url,
                        body,
                        phase,
                        key=self._key,
                        max_bytes=self.config.max_response_bytes,
                    )
            except TimeoutError:
                message = f"no complete answer within the {self.config.deadline:g}s deadline"
                if not resolved or phase.proven_not_sent:
                    raise UpstreamNotSent(message) from None
                raise UpstreamUnknown(message) from None
            http_status = raw.status_code
            answer = read_answer(raw, self._key)
            try:
                result = parse(answer)
            except ValueError as exc:
                raise UpstreamUnknown(
                    f"unreadable answer: {self._key.scrub(str(exc))}",
                    excerpt=excerpt(raw.body, self._key),
                    http_status=http_status,
                ) from None
        except UpstreamRejected as exc:
            self.breaker.record_success()  # it answered: the upstream is alive
            self._record(action, "rejected", http_status, started, exc.message, request_id, attempt)
            raise
        except UpstreamAddressRefused as exc:
            self.breaker.record_abandoned()  # a configuration problem, not an outage
            self._record(action, "not_sent", None, started, exc.message, request_id, attempt)
            logger.warning("upstream %s %s refused: %s", self.provider_id, action, exc.message)
            raise
        except (UpstreamNotSent, UpstreamUnknown) as exc:
            self.breaker.record_failure()
            outcome: AttemptOutcome = "not_sent" if isinstance(exc, UpstreamNotSent) else "unknown"
            status = exc.http_status if isinstance(exc, UpstreamUnknown) else None
            self._record(
                action,
                outcome,
                status or http_status,
                started,
                exc.message,
                request_id,
                attempt,
                answer_excerpt=exc.excerpt if isinstance(exc, UpstreamUnknown) else None,
            )
            raise
        except asyncio.CancelledError:
            self.breaker.record_abandoned()
            self._record(action, "unknown", http_status, started, "cancelled", request_id, attempt)
            raise
        self.breaker.record_success()
        self._record(action, "ok", http_status, started, None, request_id, attempt)
        return result

    def _record(
        self,
        action: str,
        outcome: AttemptOutcome,
        http_status: int | None,
        started: float,
        error: str | None,
        request_id: str | None,
        attempt: int,
        *,
        short: bool = False,
        answer_excerpt: str | None = None,
    ) -> None:
        if self.observer is None:
            return
        record = AttemptRecord(
            provider_id=self.provider_id,
            action=action,
            outcome=outcome,
            http_status=http_status,
            duration=time.perf_counter() - started,
            error=None if error is None else excerpt(error, self._key),
            excerpt=answer_excerpt,
            request_id=request_id,
            attempt=attempt,
            short_circuited=short,
        )
        try:
            self.observer(record)
        except Exception:
            # The call log must never change a call's outcome (an "add" that succeeded upstream
            # reported as failed would be re-queued and sent twice).
            logger.exception("upstream observer failed for %s %s", self.provider_id, action)
