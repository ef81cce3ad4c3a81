"""Admin: extra named admin tokens (shown once, stored hashed, revocable) and the audit log."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from gateway import audit
from gateway.admin.auth import token_hash
from gateway.admin.common import ERRORS, actor
from gateway.deps import DbSession
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.models import AdminToken, AuditLog

Id = Annotated[int, PathParameter(gt=0, le=2**62)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Before = Annotated[int | None, QueryParameter(gt=0, le=2**62)]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class TokenOut(msgspec.Struct):
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str


class AuditOut(msgspec.Struct):
    id: int
    actor: str
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def token_out(token: AdminToken) -> TokenOut:
    return TokenOut(id=token.id, name=token.name, created_at=token.created_at, revoked_at=token.revoked_at)


class TokenController(Controller):
    path = "/tokens"
    tags = ["admin access"]

    @post("/", summary="Issue a named admin token; shown this once", status_code=201, responses=ERRORS)
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[TokenCreate], db: DbSession) -> NewTokenOut:
        name = data.name.strip()
        if not 1 <= len(name) <= 100 or not name.isprintable():
            raise InvalidInput("name must be 1 to 100 printable characters", field="name")
        token = "adm_" + secrets.token_urlsafe(32)
        row = AdminToken(name=name, token_hash=token_hash(token))
        db.add(row)
        try:
            async with db.begin_nested():
                await db.flush()
        except IntegrityError:
            raise Conflict("a token with this name exists", field="name") from None
        await db.refresh(row)
        await audit.record(db, actor(request), "token.create", "admin_token", row.id, None, {"name": name})
        return NewTokenOut(**msgspec.structs.asdict(token_out(row)), token=token)

    @get("/", summary="Named admin tokens (never the tokens themselves)", responses=ERRORS)
    async def list_all(self, db: DbSession) -> list[TokenOut]:
        rows = (await db.scalars(select(AdminToken).order_by(AdminToken.id))).all()
        return [token_out(r) for r in rows]

    @delete(
        "/{token_id:int}", summary="Revoke a named token; it stops working at once", status_code=204, responses=ERRORS
    )
    async def revoke(self, request: Request[Any, Any, Any], token_id: Id, db: DbSession) -> None:
        result = await db.execute(
            update(AdminToken)
            .where(AdminToken.id == token_id, AdminToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(AdminToken.name)
        )
        name = result.scalar_one_or_none()
        if name is None:
            raise NotFound(f"active token {token_id} not found")
        await audit.record(db, actor(request), "token.revoke", "admin_token", token_id, {"name": name}, None)


class AuditController(Controller):
    path = "/audit"
    tags = ["admin access"]

    @get("/", summary="The audit log of admin changes, newest first", responses=ERRORS)
    async def list_all(
        self,
        db: DbSession,
        entity: Annotated[str | None, QueryParameter(max_length=40)] = None,
        entity_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        by: Annotated[str | None, QueryParameter(name="actor", max_length=100)] = None,
        limit: Limit = 100,
        before: Before = None,
    ) -> list[AuditOut]:
        query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
        for column, value in ((AuditLog.entity, entity), (AuditLog.entity_id, entity_id), (AuditLog.actor, by)):
            if value is not None:
                query = query.where(column == value)
        if before is not None:
            query = query.where(AuditLog.id < before)
        rows = (await db.scalars(query)).all()
        return [
            AuditOut(
                id=r.id,
                actor=r.actor,
                action=r.action,
                entity=r.entity,
                entity_id=r.entity_id,
                before=r.before,
                after=r.after,
                created_at=r.created_at,
            )
            for r in rows
        ]
