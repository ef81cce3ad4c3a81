"""Settings from the environment (prefix ``GATEWAY_``) and an optional ``.env`` file.

The names are public interface (see ADMIN-API.md). A bad value stops start-up with one line that
names the setting: :func:`load_settings` turns pydantic's validation error into :class:`SettingsError`,
and the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.upstream.addresses import normalise_upstream_url

Dialect = Literal["documented", "perfectpanel"]
# What sits between the gateway and Postgres: nothing (or a pooler in session mode), or a pooler in
# transaction mode (PgBouncer pool_mode=transaction, and the managed poolers that work like it).
DatabasePooler = Literal["none", "transaction"]
MarginPolicy = Literal["alert", "disable", "reprice"]

# A DNS name (letters, digits, hyphens; dots between labels) or an IPv4 address, or an IPv6
# address in brackets; then an optional port.
_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_AUTHORITY = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]+)(:(?P<port>[0-9]{1,5}))?")
# The path of a public URL: plain characters only (it is written into HTML, PHP and Python).
_URL_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")
# Longer than any real authority (253 for the name, 6 for the port, brackets): refused unread.
_MAX_AUTHORITY = 270
_MAX_PUBLIC_URL = 2000


def plausible_authority(text: str) -> str | None:
    """``host[:port]`` in lower case when ``text`` is a plausible one (a DNS name, an IPv4 address or
    a bracketed IPv6 address, and a port from 1 to 65535), else None. Used on ``GATEWAY_PUBLIC_URL``
    and on the ``Host`` header a client sent (attacker-controlled: nothing else gets through, and
    what comes out is rebuilt from the parts that matched: ASCII letters, digits, ``.-:[]``)."""
    text = text.strip()
    # ASCII first: lower() would turn some non-ASCII letters (the Kelvin sign) into ASCII ones.
    if len(text) > _MAX_AUTHORITY or not text.isascii():
        return None
    match = _AUTHORITY.fullmatch(text.lower())
    if match is None:
        return None
    host, port = match.group("host"), match.group("port")
    if port is not None:
        if not 1 <= int(port) <= 65535:
            return None
        port = str(int(port))
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    elif _HOST_NAME.fullmatch(host) is None:
        return None
    return f"{host}:{port}" if port is not None else host


# An admin token shorter than this, or one of the placeholders deploy examples and tutorials
# ship, would let anyone who guesses it run the gateway: start-up refuses it.
MIN_ADMIN_TOKEN_LENGTH = 32
_PLACEHOLDER_MARKERS = (
    "change_me",
    "changeme",
    "change-me",
    "replace_me",
    "replaceme",
    "replace-me",
    "your_token",
    "your-token",
    "yourtoken",
    "placeholder",
    "example",
    "xxxxxxxx",
)


class SettingsError(Exception):
    """A setting has a value the gateway cannot run with; the message names it."""


class Settings(BaseSettings):
    """Every knob of the gateway. Defaults suit one machine; production sets the database and token."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str | None = Field(
        default=None, description="postgresql+asyncpg://... ; unset: an embedded Postgres under data_dir"
    )
    data_dir: Path = Field(default=Path("./var"), description="where the embedded Postgres keeps its files")
    # A transaction pooler cannot be detected from the client (it forwards SHOW, version and
    # parameters from the server it happens to pick), so the operator says so.
    database_pooler: DatabasePooler = Field(
        default="none",
        description="none | transaction: the database is reached through a pooler in transaction mode (PgBouncer)",
    )
    admin_token: SecretStr | None = Field(default=None, description="the operator's bearer token")
    currency: str = Field(default="USD", min_length=3, max_length=3, description="the currency customers pay in")
    v2_dialect: Dialect = Field(default="documented", description="default answer dialect of /api/v2")
    upstream_url: str | None = Field(default=None, description="single-upstream mode: the provider's URL")
    upstream_key: SecretStr | None = Field(default=None, description="single-upstream mode: the provider's key")
    allow_private_upstreams: bool = Field(default=False, description="allow loopback/private provider URLs")
    public_url: str | None = Field(
        default=None, description="the gateway's public base URL (https://panel.example.com) shown on /api"
    )
    panel_name: str = Field(default="API", min_length=1, max_length=80, description="the title of the /api page")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)

    # Database pool of one process. Each API process and each worker holds up to
    # pool_size + max_overflow connections: size Postgres' max_connections for all of them.
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)

    # Pricing safety: a resale rate is never below cost × (1 + min_margin_percent/100)
    # unless the operator fixed it explicitly.
    min_margin_percent: Decimal = Field(default=Decimal("0"), ge=Decimal("0"), le=Decimal("1000"))
    # What a catalog sync does when an upstream price rise takes a customer price below that floor.
    margin_policy: MarginPolicy = Field(
        default="alert", description="alert | disable (off sale) | reprice (computed follow, typed off sale)"
    )

    # Alerts (GET /admin/alerts, gateway_alerts_open{kind}).
    drift_alert_percent: Decimal = Field(
        default=Decimal("2"),
        gt=Decimal("0"),
        le=Decimal("1000"),
        description="alert when a provider's billed charges over the last day drift more than this from the costs",
    )
    queued_alert_seconds: int = Field(
        default=900, ge=60, le=30 * 86400, description="alert when an order has been queued longer than this"
    )
    circuit_open_alert_seconds: int = Field(
        default=300, ge=10, le=7 * 86400, description="alert when a provider's circuit stays open longer than this"
    )

    # Upstream calls.
    upstream_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    upstream_max_connections: int = Field(default=20, ge=1, le=1000)
    upstream_breaker_failures: int = Field(
        default=5, ge=1, le=1000, description="failures in a row that open the circuit"
    )
    upstream_breaker_reset_seconds: float = Field(default=30.0, gt=0, le=3600, description="open circuit cool-down")

    # Orders.
    queued_order_max_age_seconds: int = Field(
        default=6 * 3600, ge=60, description="a queued order older than this is canceled and refunded"
    )
    submitting_stale_seconds: float = Field(
        default=300.0, gt=0, le=86400, description="an order still submitting after this was cut off: unknown"
    )
    duplicate_link_guard: bool = Field(default=False, description="refuse a 2nd active order on link+service")
    idempotency_ttl_seconds: int = Field(
        default=86400, ge=60, le=30 * 86400, description="how long an idempotency key answers what it first answered"
    )

    # Worker.
    serve_worker: bool = Field(default=True, description="`gateway serve` runs the worker in-process")
    worker_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    status_sync_interval_seconds: float = Field(default=30.0, gt=0, le=86400)
    catalog_sync_interval_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)

    # v2 limits.
    rate_limit_per_minute: int = Field(default=600, ge=0, description="requests per key per minute; 0: off")
    invalid_key_limit_per_minute: int = Field(
        default=20, ge=0, le=100_000, description="calls with an invalid key per client address per minute; 0: off"
    )
    invalid_key_global_per_minute: int = Field(
        default=600, ge=0, le=10_000_000, description="calls with an invalid key per minute from everyone; 0: off"
    )
    trusted_proxies: str = Field(
        default="", description="comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is believed"
    )
    redis_url: SecretStr | None = Field(
        default=None, description="redis://host:6379/0: share the v2 limits across processes and replicas"
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)

    log_json: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (expected postgresql+asyncpg://user@host/db)") from None
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"only PostgreSQL is supported, got {url.get_backend_name()!r}")
        if url.get_driver_name() not in ("asyncpg", "psycopg2", "psycopg", ""):
            raise ValueError(f"unsupported driver {url.get_driver_name()!r}; use postgresql+asyncpg://")
        return value

    @field_validator("database_pooler", mode="before")
    @classmethod
    def _check_database_pooler(cls, value: object) -> object:
        choices = (
            "none (a direct connection, or a pooler in session mode) or transaction (PgBouncer pool_mode=transaction)"
        )
        if not isinstance(value, str) or value.strip().lower() not in ("none", "transaction"):
            raise ValueError(f"must be {choices}")
        return value.strip().lower()

    @field_validator("min_margin_percent", "drift_alert_percent", mode="before")
    @classmethod
    def _plain_decimal(cls, value: object) -> object:
        # Decimal() also reads other scripts' digits ("２"): a percentage is typed in ASCII.
        if isinstance(value, str) and not value.strip().isascii():
            raise ValueError("a plain decimal number, e.g. 2.5")
        return value

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        if not value.isascii() or not value.isalpha():
            raise ValueError("a three-letter currency code, e.g. USD")
        return value.upper()

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        # Stored and compared as the admin API stores provider URLs: scheme and host in lower case.
        value = normalise_upstream_url(value)
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        expected = "an http(s) URL of the gateway, e.g. https://smm.example.net"
        value = value.strip()
        # urlsplit() silently drops tabs and line breaks inside a URL: refuse them (and any other
        # control or non-ASCII character) before it can.
        if len(value) > _MAX_PUBLIC_URL or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError(f"must be {expected}")
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError(f"must be {expected}") from None
        authority = plausible_authority(parts.netloc) if "@" not in parts.netloc else None
        if parts.scheme.lower() not in ("http", "https") or authority is None:
            raise ValueError(f"must be {expected}")
        if parts.query or parts.fragment or "#" in value or "?" in value or not _URL_PATH.fullmatch(parts.path):
            raise ValueError(f"must be {expected} (a plain path, no query or fragment)")
        path = parts.path.rstrip("/")
        if path.endswith(("/api/v2", "/api")):
            raise ValueError(f"must be {expected}: the base URL, without /api/v2")
        return f"{parts.scheme.lower()}://{authority}{path}"

    @field_validator("panel_name")
    @classmethod
    def _check_panel_name(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("must be a short printable name, e.g. Acme SMM")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        ranges = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                if not item.isascii():
                    raise ValueError
                ranges.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError("must be addresses or CIDR ranges separated by commas, e.g. 10.0.0.0/8") from None
        if len(ranges) > 100:
            raise ValueError("at most 100 ranges")
        return ",".join(ranges)

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(r) for r in self.trusted_proxies.split(",") if r)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parts = urlsplit(value.get_secret_value().strip())
        except ValueError:
            raise ValueError("must be a redis:// or rediss:// URL") from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be a redis:// or rediss:// URL")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if token == "":
            return None
        how = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        if len(token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters ({how})")
        lowered = token.lower()
        if any(marker in lowered for marker in _PLACEHOLDER_MARKERS) or len(set(token)) < 8:
            raise ValueError(f"is a placeholder or too simple ({how})")
        if not token.isprintable() or token != token.strip():
            raise ValueError(f"must be printable characters without surrounding spaces ({how})")
        return value

    @model_validator(mode="after")
    def _check_stale_after_deadline(self) -> Settings:
        if self.submitting_stale_seconds <= self.upstream_timeout_seconds:
            raise ValueError(
                "GATEWAY_SUBMITTING_STALE_SECONDS must exceed GATEWAY_UPSTREAM_TIMEOUT_SECONDS"
                " (a live send must never be taken for a dead one)"
            )
        return self

    @model_validator(mode="after")
    def _check_upstream_pair(self) -> Settings:
        if (self.upstream_url is None) != (self.upstream_key is None):
            raise ValueError("GATEWAY_UPSTREAM_URL and GATEWAY_UPSTREAM_KEY must be set together")
        return self

    @property
    def async_database_url(self) -> str | None:
        """The external database URL with the asyncpg driver, or None for the embedded one."""
        if self.database_url is None:
            return None
        return make_url(self.database_url).set(drivername="postgresql+asyncpg").render_as_string(False)


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad value raises :class:`SettingsError` with one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ()
        name = f"GATEWAY_{str(loc[0]).upper()}" if loc else "settings"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise SettingsError(f"invalid setting {name}: {message}{more}") from None
