"""Admin: extra named admin tokens (shown once, stored hashed, revocable) and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from gateway import access, audit
from gateway.admin.auth import ADMIN_ONLY
from gateway.admin.common import ERRORS, actor
from gateway.admin.deps import DbSession
from gateway.models import AdminToken

Id = Annotated[int, PathParameter(gt=0, le=2**62)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Before = Annotated[int | None, QueryParameter(gt=0, le=2**62)]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    # Least privilege by default: a token that only reads.
    scope: str = "read"


class TokenOut(msgspec.Struct):
    id: int
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str


class AuditOut(msgspec.Struct):
    id: int
    actor: str
    scope: str | None
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def token_out(token: AdminToken) -> TokenOut:
    return TokenOut(
        id=token.id, name=token.name, scope=token.scope, created_at=token.created_at, revoked_at=token.revoked_at
    )


class TokenController(Controller):
    path = "/tokens"
    tags = ["admin access"]

    @post(
        "/",
        summary="Issue a named admin token of a scope (read, operator, admin); shown this once",
        status_code=201,
        responses=ERRORS,
        opt=ADMIN_ONLY,
    )
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[TokenCreate], db: DbSession) -> NewTokenOut:
        issued = await access.issue_token(db, data.name, data.scope)
        row = issued.row
        await audit.record(
            db, actor(request), "token.create", "admin_token", row.id, None, {"name": row.name, "scope": row.scope}
        )
        return NewTokenOut(**msgspec.structs.asdict(token_out(row)), token=issued.token)

    @get("/", summary="Named admin tokens (never the tokens themselves)", responses=ERRORS)
    async def list_all(self, db: DbSession) -> list[TokenOut]:
        return [token_out(r) for r in await access.list_tokens(db)]

    @delete(
        "/{token_id:int}",
        summary="Revoke a named token; it stops working at once",
        status_code=204,
        responses=ERRORS,
        opt=ADMIN_ONLY,
    )
    async def revoke(self, request: Request[Any, Any, Any], token_id: Id, db: DbSession) -> None:
        name = await access.revoke_token(db, token_id)
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
        flt = audit.AuditFilter(entity=entity, entity_id=entity_id, actor=by, limit=limit, before=before)
        return [
            AuditOut(
                id=r.id,
                actor=r.actor,
                scope=r.scope,
                action=r.action,
                entity=r.entity,
                entity_id=r.entity_id,
                before=r.before,
                after=r.after,
                created_at=r.created_at,
            )
            for r in await audit.entries(db, flt)
        ]
