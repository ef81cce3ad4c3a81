"""Structured logs: one line per event, carrying the request id of the call that caused it.

Lines are ``key=value`` text, or JSON lines with ``GATEWAY_LOG_JSON=true``. The request id is the
client's ``X-Request-ID`` (when it is a sane token) or a generated one; it is sent back in the
``X-Request-ID`` response header, stored on the order and its upstream call records, and set in a
context variable so that every line logged while the request is handled carries it. The worker
sets it again when it sends a queued order, so the later upstream call is tied to the same id.

Secrets are kept out of log calls in the first place; :class:`Redactor` is defense in depth. It
masks anything shaped like a customer key (``smm_`` + 32 characters) or an admin token (``adm_``
+ 32 or more), the configured admin token and upstream key, and every provider key this process
has used (the upstream registry reports each one).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, quote_plus

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import Settings
from gateway.upstream import AttemptRecord

__all__ = [
    "REDACTOR",
    "JsonFormatter",
    "KeyValueFormatter",
    "Redactor",
    "accept_request_id",
    "configure_logging",
    "current_request_id",
    "log_attempt",
    "request_context",
    "request_context_middleware",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

MASK = "[redacted]"
MIN_SECRET_LENGTH = 8
REQUEST_ID_HEADER = b"x-request-id"
_TOKEN_SHAPES = r"(?:smm|adm)_[A-Za-z0-9_-]{32,}"  # noqa: S105 - a pattern, not a secret
# What a client may choose as its request id: short, and nothing that could bend a log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,64}")
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "color_message",  # uvicorn's message with terminal colours
}

_access_log = logging.getLogger("gateway.http")
_upstream_log = logging.getLogger("gateway.upstream.attempts")


# --- request ids --------------------------------------------------------------------------------


def current_request_id() -> str | None:
    """The request id of the call being handled (None outside a request)."""
    return request_id_var.get()


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log (and attribute upstream calls) under ``request_id`` inside this block."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def accept_request_id(given: str | None) -> str:
    """The client's request id when it is a short plain token, else a fresh one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # a uuid4's randomness, without building a UUID per request


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: a request id per HTTP request (context variable and response header)
    and one access log line (method, path without the query string, status, duration)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = accept_request_id(_header(scope, REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_request_id)
        finally:
            path = scope.get("path", "")
            _access_log.log(
                logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
                "http request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)

    return middleware


def log_attempt(record: AttemptRecord) -> None:
    """The upstream observer's log line: one per attempt (``error`` is key-free by contract)."""
    level = logging.DEBUG if record.outcome == "ok" else logging.INFO
    if not _upstream_log.isEnabledFor(level):
        return
    _upstream_log.log(
        level,
        "upstream call",
        extra={
            "provider": record.provider_id,
            "action": record.action,
            "outcome": record.outcome,
            "http_status": record.http_status,
            "duration_ms": round(record.duration * 1000, 1),
            "attempt": record.attempt,
            "short_circuited": record.short_circuited,
            "error": record.error,
            # The adapter's record carries the caller's id even where no context variable is set.
            "request_id": record.request_id or current_request_id(),
        },
    )


# --- redaction ----------------------------------------------------------------------------------


class Redactor(logging.Filter):
    """Masks secrets in every record that passes (message, arguments, extras, tracebacks)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern = re.compile(_TOKEN_SHAPES)

    def add(self, secret: str | None) -> None:
        """Mask ``secret`` from now on (raw and URL-encoded). Very short values are ignored:
        masking them would mangle ordinary words and protect nothing."""
        if secret is None or len(secret.strip()) < MIN_SECRET_LENGTH:
            return
        secret = secret.strip()
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets.add(secret)
            spellings = {s for value in self._secrets for s in (value, quote_plus(value), quote(value, safe=""))}
            alternatives = [re.escape(s) for s in sorted(spellings, key=len, reverse=True)]
            self._pattern = re.compile("|".join([*alternatives, _TOKEN_SHAPES]), re.IGNORECASE)

    def scrub(self, text: str) -> str:
        return self._pattern.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log what there is rather than nothing
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, self.scrub(value))
        return True


# One per process, like logging itself.
REDACTOR = Redactor()
_plain = logging.Formatter()


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


# --- formatting ---------------------------------------------------------------------------------


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES and not k.startswith("_")}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(record.created, UTC)
    fields: dict[str, Any] = {
        "ts": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    request_id = getattr(record, "request_id", None)
    if request_id:
        fields["request_id"] = request_id
    fields["msg"] = record.getMessage()
    fields.update((k, v) for k, v in _extras(record).items() if v is not None)
    if record.exc_info and not record.exc_text:
        record.exc_text = _plain.formatException(record.exc_info)
    if record.exc_text:
        fields["exc"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


_BARE = re.compile(r"[A-Za-z0-9._:/@+-]+")


def _kv(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value
    elif isinstance(value, list | dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if _BARE.fullmatch(text):
        return text
    # A JSON string: quoted, with quotes, backslashes and newlines escaped (one event, one line).
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=gateway.worker request_id=... msg="..." key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_kv(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, ensure_ascii=False)


# --- set-up -------------------------------------------------------------------------------------


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line through one handler on the root logger, formatted and redacted.

    Calling it again replaces the handler it installed before. Returns the handler.
    """
    if settings.admin_token is not None:
        REDACTOR.add(settings.admin_token.get_secret_value())
    if settings.upstream_key is not None:
        REDACTOR.add(settings.upstream_key.get_secret_value())
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else KeyValueFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(REDACTOR)
    handler._gateway = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_gateway", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelNamesMapping()[settings.log_level]
    root.setLevel(level)
    # The embedded Postgres, Alembic and uvicorn narrate every step at INFO; their warnings are enough.
    for noisy in ("pgserver", "alembic", "uvicorn"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))
    # SQL with its bound values could carry provider keys: never logged, whatever the level.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # httpx logs every request at INFO (the gateway's own upstream line says more); httpcore's
    # connection events are noise even when debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    logging.getLogger("httpcore").setLevel(max(logging.INFO, level))
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    return handler
