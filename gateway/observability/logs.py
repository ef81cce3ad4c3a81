"""Structured logs: one line per event, carrying the request id of the call that caused it.

Lines are ``key=value`` text, or JSON lines with ``GATEWAY_LOG_JSON=true``. The request id is the
client's ``X-Request-ID`` (when it is a sane token) or a generated one; it is sent back in the
``X-Request-ID`` response header, stored on the order and its upstream call records, and set in a
context variable so that every line logged while the request is handled carries it. The worker
sets it again when it sends a queued order, so the later upstream call is tied to the same id.

Secrets are kept out of log calls in the first place; :class:`Redactor` is defense in depth. It
masks anything shaped like a customer key (``smm_`` + 32 characters) or an admin token (``adm_``
+ 32 or more), the configured admin token and upstream key, and every provider key: the ones
stored in the database (read when the process starts), the ones each price book rebuild reads,
the ones saved through the admin API (learned before they are written) and the ones the upstream
registry is given. It also hides what database errors echo of a row or a statement's values
(Postgres ``DETAIL:`` texts, SQLAlchemy's ``[parameters: ...]``), which can hold a key this
process never saw: an INSERT that fails a CHECK dumps the whole row.
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
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, quote_plus

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import Settings
from gateway.upstream import AttemptRecord

__all__ = [
    "HIDDEN_DETAIL",
    "HIDDEN_PARAMETERS",
    "REDACTOR",
    "JsonFormatter",
    "KeyValueFormatter",
    "Redactor",
    "RequestIdFilter",
    "accept_request_id",
    "configure_logging",
    "current_request_id",
    "library_levels",
    "log_attempt",
    "request_context",
    "request_context_middleware",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

MASK = "[redacted]"
MIN_SECRET_LENGTH = 8
REQUEST_ID_HEADER = b"x-request-id"
_TOKEN_SHAPES = r"(?:smm|adm)_[A-Za-z0-9_-]{32,}"  # noqa: S105 - a pattern, not a secret
HIDDEN_DETAIL = "[database detail hidden]"
HIDDEN_PARAMETERS = "[parameters hidden]"
# Postgres DETAIL texts echo row contents: "Failing row contains (...)." for a CHECK or NOT NULL,
# "Key (name)=(value) already exists." and its foreign-key cousins. Also caught without the
# "DETAIL:" prefix, as when an exception's ``detail`` is logged on its own. The message line
# before them (with the constraint name) is what an operator needs, and stays.
# A detail is one sentence, so it ends at the first full stop that ends a line or a quoted string
# (its newline or quote escaped, as in a repr or JSON); a row value may hold newlines, even blank
# lines, so the end of a line is not enough. Failing that: the next part of a Postgres or SQLAlchemy error, a blank line (the next
# exception of a traceback), or the end of the text.
_DETAIL_END = (
    r"(?:.*?\.(?=[ \t]*(?:\n|\\n|\\?[\"']|\Z))"
    r"|.*?(?=(?:\n|\\n)[ \t|]*(?:\[SQL|\[parameters:|\(Background on this error|HINT:)|\n[ \t|]*\n|\\n\\n|\Z))"
)
_DATABASE_DETAIL = re.compile(
    # Not again over a hidden one: a record can pass two redacting handlers.
    r"(DETAIL:[ \t]*|Failing row contains[ \t]*|Key \([^\n]*?\)=)(?![ \t]*" + re.escape(HIDDEN_DETAIL) + ")"
    "(?:" + _DETAIL_END + ")",
    re.DOTALL,
)
# SQLAlchemy's "[parameters: (...)]" line: the bound values (the engine hides them, other
# engines, e.g. Alembic's, may not). In a repr it runs up to the escaped "\n(Background ...".
_SQL_PARAMETERS = re.compile(r"\[parameters: (?:.*?\](?=\\n\(Background)|[^\n]*)")
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
            level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
            if _access_log.isEnabledFor(level):  # the line's fields are not built for nothing
                _access_log.log(
                    level,
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
    """Masks secrets in every record that passes (message, arguments, extras, tracebacks) and
    hides database error details that may echo a row or a statement's values."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern = re.compile(_TOKEN_SHAPES)
        self._stale = False

    def add(self, secret: str | None) -> None:
        """Mask ``secret`` from now on (raw and URL-encoded, in any case). Very short values are
        ignored: masking them would mangle ordinary words and protect nothing."""
        self.add_all((secret,))

    def add_all(self, secrets: Iterable[str | None]) -> None:
        """:meth:`add` for many secrets at once (the pattern is rebuilt once, when next used)."""
        fresh = {s.strip() for s in secrets if s is not None and len(s.strip()) >= MIN_SECRET_LENGTH}
        if not fresh or fresh <= self._secrets:  # the common case, without taking the lock
            return
        with self._lock:
            if not fresh <= self._secrets:
                self._secrets |= fresh
                self._stale = True

    def knows(self, secret: str) -> bool:
        """Whether ``secret`` is masked by name (not merely by shape)."""
        return secret.strip() in self._secrets

    def _current_pattern(self) -> re.Pattern[str]:
        if self._stale:
            with self._lock:
                if self._stale:
                    spellings = {
                        s for value in self._secrets for s in (value, quote_plus(value), quote(value, safe=""))
                    }
                    self._pattern = re.compile(f"{_alternatives(spellings)}|{_TOKEN_SHAPES}", re.IGNORECASE)
                    self._stale = False
        return self._pattern

    def scrub(self, text: str) -> str:
        text = self._current_pattern().sub(MASK, text)
        if "DETAIL:" in text or "Failing row contains" in text or "Key (" in text:
            text = _DATABASE_DETAIL.sub(lambda m: m.group(1) + HIDDEN_DETAIL, text)
        if "[parameters: " in text:
            text = _SQL_PARAMETERS.sub(HIDDEN_PARAMETERS, text)
        return text

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
            exc_text = record.exc_text
            if record.exc_info:
                # The exact texts first: a row value can hold what the patterns take for the
                # end of a detail (a full stop ending a line).
                for detail in _database_details(record.exc_info[1]):
                    exc_text = exc_text.replace(detail, HIDDEN_DETAIL)
            record.exc_text = self.scrub(exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, self.scrub(value))
            elif not isinstance(value, int | float | None):
                # A list, an exception...: the formatter prints it as text, so check that text.
                text = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
                scrubbed = self.scrub(text)
                if scrubbed != text:
                    setattr(record, name, scrubbed)
        return True


def _alternatives(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, as a trie: ``(?:ab(?:c|d))`` rather than
    ``abc|abd``. The engine tries a plain alternation's branches one by one at every position,
    so its cost grows with the number of keys; a trie's stays flat."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        # Lower-cased to share prefixes across spellings (matched with IGNORECASE); non-ASCII
        # text is kept as given, since lower() may change its length.
        for char in word.lower() if word.isascii() else word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_pattern(trie) or "(?!)"


def _trie_pattern(node: dict[str, Any]) -> str:
    parts: list[str] = []
    while True:
        branches = sorted(k for k in node if k)
        if len(branches) != 1 or "" in node:
            break
        parts.append(re.escape(branches[0]))
        node = node[branches[0]]
    if branches:
        group = "|".join(re.escape(k) + _trie_pattern(node[k]) for k in branches)
        # A word that is a prefix of another: the optional group is greedy, so the longer wins.
        parts.append(f"(?:{group})" + ("?" if "" in node else ""))
    return "".join(parts)


def _database_details(exc: BaseException | None) -> set[str]:
    """The DETAIL texts of the Postgres errors in ``exc``'s chain (asyncpg keeps them in
    ``detail``; ``sqlstate`` tells a server error from other exceptions with a ``detail``)."""
    details: set[str] = set()
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        detail = getattr(current, "detail", None)
        if isinstance(detail, str) and detail and getattr(current, "sqlstate", None):
            details.add(detail)
        pending.extend((current.__cause__, current.__context__, *getattr(current, "exceptions", ())))
    return details


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


def library_levels(level: int) -> dict[str, int]:
    """The level of each library's logger when the gateway logs at ``level``."""
    quiet = max(logging.WARNING, level)
    return {
        # The embedded Postgres, Alembic and uvicorn narrate every step at INFO; their warnings are enough.
        "pgserver": quiet,
        "alembic": quiet,
        "uvicorn": quiet,
        # SQL with its bound values could carry provider keys: never logged, whatever the level.
        "sqlalchemy": logging.WARNING,
        # httpx logs every request at INFO (the gateway's own upstream line says more); httpcore's
        # connection events are noise even when debugging.
        "httpx": logging.DEBUG if level <= logging.DEBUG else logging.WARNING,
        "httpcore": max(logging.INFO, level),
    }


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line through one handler on the root logger, formatted and redacted.

    Calling it again replaces the handler it installed before. Returns the handler.
    """
    if settings.admin_token is not None:
        REDACTOR.add(settings.admin_token.get_secret_value())
    if settings.upstream_key is not None:
        REDACTOR.add(settings.upstream_key.get_secret_value())
    level = logging.getLevelNamesMapping()[settings.log_level]
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    # On the handler too: a logger set lower (a test's, a debugging session's) does not widen it.
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if settings.log_json else KeyValueFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(REDACTOR)
    handler._gateway = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_gateway", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, library_level in library_levels(level).items():
        logging.getLogger(name).setLevel(library_level)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    return handler
