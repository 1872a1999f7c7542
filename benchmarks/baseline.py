"""Baseline /v1/memory handlers for the benchmark: the patched routes' statements, run plainly.

LiteLLM's stock handlers need Prisma, which cannot run here, so the closest runnable stand-in
is measured instead: the same four operations behind the same ``user_api_key_auth`` dependency,
on the patched store's own psycopg pool, with the store's own statements (the caller's
visibility filter included) sent the same way, but without the request's start: no guard call
(so no check, no role switch, no settings) and no BEGIN/COMMIT. The pool logs in as the
superuser, which skips row-level security even though the table FORCEs it. What the patch adds
is then exactly what differs: the guard, row-level security, the explicit transaction of a PUT,
and the handlers' extra checks.

Mounted under ``/bench/baseline`` by the benchmark only; never part of the package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from litellm.types.memory_management import (
    LiteLLM_MemoryRow,
    MemoryCreateRequest,
    MemoryListResponse,
    MemoryUpdateRequest,
)

from litellm_memory_patch.installer import MEMORY_PATH
from litellm_memory_patch.routes import caller_scope, key_taken, memory_store, not_found
from litellm_memory_patch.scope import PROXY_ADMIN, WRITE_FORBIDDEN, CallerScope
from litellm_memory_patch.store import (
    KeyMatch,
    KeyTaken,
    MemoryRecord,
    MemoryStore,
    MemoryTransaction,
    visibility,
)

PREFIX = "/bench/baseline"

router = APIRouter(prefix=PREFIX)


@asynccontextmanager
async def plain(store: MemoryStore) -> AsyncIterator[MemoryTransaction]:
    """The store's statements on a connection of its own (autocommit) pool, with no start:
    each message runs as it is, one implicit transaction, as a bare autocommit query would."""
    async with store._pool.connection() as conn:
        yield MemoryTransaction(conn, store._table, None)


def _answer(record: MemoryRecord) -> LiteLLM_MemoryRow:
    return LiteLLM_MemoryRow.model_validate(record, from_attributes=True)


@router.get("/v1/memory", response_model=MemoryListResponse)
async def list_memory(
    # The query parameters of LiteLLM's handler (search in its newer versions), validated alike.
    key: str | None = Query(None),
    key_prefix: str | None = Query(None),
    search: str | None = Query(None),
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    async with plain(store) as tx:
        rows, total = await tx.page(
            KeyMatch(key=key, key_prefix=key_prefix, search=search),
            where=visibility(scope),
            offset=(page - 1) * page_size,
            limit=page_size,
        )
    return MemoryListResponse(memories=[_answer(row) for row in rows], total=total)


@router.get("/v1/memory/{key:path}", response_model=LiteLLM_MemoryRow)
async def get_memory(
    key: str,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    async with plain(store) as tx:
        row = await tx.find(key, where=visibility(scope))
    if row is None:
        raise not_found(key)
    return _answer(row)


@router.put("/v1/memory/{key:path}", response_model=LiteLLM_MemoryRow)
async def update_memory(
    key: str,
    body: MemoryUpdateRequest,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """Update only (the benchmark's PUTs all hit existing rows): read, check, update."""
    where = visibility(scope)
    async with plain(store) as tx:
        existing = await tx.find(key, where=where)
        if existing is None:
            raise not_found(key)
        # LiteLLM's own write check: the row's user, or a proxy admin.
        if existing.user_id != scope.user_id and scope.role != PROXY_ADMIN:
            raise HTTPException(status_code=403, detail=WRITE_FORBIDDEN)
        row = await tx.update(
            existing.memory_id, {"value": body.value}, where=where, actor=scope.user_id
        )
    return _answer(row)


@router.post("/v1/memory", response_model=LiteLLM_MemoryRow)
async def create_memory(
    body: MemoryCreateRequest,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    user_id, team_id = scope.owner_for_create(
        requested_user_id=body.user_id, requested_team_id=body.team_id
    )
    async with plain(store) as tx:
        try:
            row = await tx.create(
                key=body.key,
                value=body.value,
                metadata=body.metadata,
                user_id=user_id,
                team_id=team_id,
                actor=scope.user_id,
            )
        except KeyTaken:
            raise key_taken(body.key) from None
    return _answer(row)


def mount(app: FastAPI) -> None:
    """Put the baseline routes just before the patched /v1/memory routes.

    Starlette tries an app's routes in order and LiteLLM's proxy has hundreds: a route's place
    in the table costs milliseconds per request. Side by side, both pay the same.
    """
    table = app.router.routes
    before = len(table)
    app.include_router(router)
    added = table[before:]
    del table[before:]
    position = next(
        i for i, route in enumerate(table) if getattr(route, "path", "").startswith(MEMORY_PATH)
    )
    table[position:position] = added
    app.openapi_schema = None
