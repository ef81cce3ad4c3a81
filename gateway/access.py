"""Admin access: the named admin tokens besides ``GATEWAY_ADMIN_TOKEN``.

A token is shown once, when it is issued; only its SHA-256 is stored, so a lookup compares
hashes through the unique index and the plain token is never kept. Revoking one stops it at once
(the guard looks the hash up on every request).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.models import AdminToken

TOKEN_PREFIX = "adm_"  # noqa: S105 - a prefix the log redactor recognises, not a secret

# What a token may do, least first: ``read`` every GET; ``operator`` also customers, orders,
# services, markup rules, refills, syncs; ``admin`` everything, providers and tokens included.
SCOPES = ("read", "operator", "admin")


def scope_allows(held: str, needed: str) -> bool:
    """Whether a token of scope ``held`` may do what needs ``needed``."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def validate_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    return scope


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Who an admin request is: the token's name and scope."""

    name: str
    scope: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just issued: its row, and the token itself (never stored, never shown again)."""

    row: AdminToken
    token: str


def token_hash(token: str) -> bytes:
    """What is stored of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def validate_token_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise InvalidInput("name must be 1 to 100 printable characters", field="name")
    return name


async def issue_token(session: AsyncSession, name: str, scope: str) -> IssuedToken:
    """Create a named token of ``scope``; a name already used (revoked or not) is a conflict."""
    name = validate_token_name(name)
    scope = validate_scope(scope)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = AdminToken(name=name, token_hash=token_hash(token), scope=scope)
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("a token with this name exists", field="name") from None
    await session.refresh(row)
    return IssuedToken(row, token)


async def list_tokens(session: AsyncSession) -> list[AdminToken]:
    """Every named token, revoked ones included, oldest first."""
    return list((await session.scalars(select(AdminToken).order_by(AdminToken.id))).all())


async def revoke_token(session: AsyncSession, token_id: int) -> str:
    """Revoke an active token; its name. A token that is missing or already revoked: NotFound."""
    result = await session.execute(
        update(AdminToken)
        .where(AdminToken.id == token_id, AdminToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(AdminToken.name)
    )
    name = result.scalar_one_or_none()
    if name is None:
        raise NotFound(f"active token {token_id} not found")
    return name


async def active_token(conn: AsyncConnection, token: str) -> TokenHolder | None:
    """The active named token ``token`` is (its name and scope), or None."""
    row = (
        await conn.execute(
            select(AdminToken.name, AdminToken.scope).where(
                AdminToken.token_hash == token_hash(token), AdminToken.revoked_at.is_(None)
            )
        )
    ).first()
    return None if row is None else TokenHolder(str(row.name), str(row.scope))
