"""The five /v1/memory routes, same API as LiteLLM's, confined to the caller's scope.

Paths, query parameters, bodies, response models and success codes are LiteLLM's own
(``litellm.types.memory_management``); the caller comes from LiteLLM's ``user_api_key_auth``.
What changes is who sees what (see SECURITY.md): a key of team T reaches team T's rows only,
and a row it cannot see answers exactly like a row that does not exist.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.routing import APIRoute
from litellm.proxy.auth.user_api_key_auth import user_api_key_auth
from litellm.types.memory_management import (
    LiteLLM_MemoryRow,
    MemoryCreateRequest,
    MemoryDeleteResponse,
    MemoryListResponse,
    MemoryUpdateRequest,
)

from . import __version__
from .scope import WRITE_FORBIDDEN, CallerScope, ScopeError
from .store import (
    ABSENT,
    BEYOND_LIMITS,
    DELETED,
    FORBIDDEN,
    BeyondLimits,
    KeyMatch,
    KeyTaken,
    MemoryRecord,
    MemoryStore,
    StoreUnavailable,
    WriteRefused,
    visibility,
    writable,
)

logger = logging.getLogger("litellm_memory_patch")

PATCH_HEADER = "X-LiteLLM-Memory-Patch"
TAGS = ["memory management"]

# PostgreSQL's btree index on key holds entries up to about 2.7 kB; refuse long keys up front.
MAX_KEY_BYTES = 1024
# Python's JSON, pydantic and psycopg each recurse once per level of nesting and give up
# somewhere between 250 and 1000 levels; refuse deep metadata well before any of them.
MAX_METADATA_DEPTH = 64

EMPTY_KEY = "The memory key must not be empty."
KEY_TOO_LONG = f"The memory key must be at most {MAX_KEY_BYTES} bytes."
NUL_BYTE = "The {field} must not contain NUL (\\u0000) characters."
LONE_SURROGATE = (
    "The {field} must be valid Unicode text: it contains a lone surrogate (\\ud800-\\udfff)."
)
NOT_FINITE = "The metadata must not contain NaN, Infinity or numbers out of range of a double."
METADATA_TOO_DEEP = (
    f"The metadata must not nest objects and arrays more than {MAX_METADATA_DEPTH} levels deep."
)
TOO_LARGE = "The {field} is larger than the limit of {limit} bytes."
NOTHING_TO_UPDATE = "Request body must include at least one of: value, metadata."
CREATE_NEEDS_VALUE = "Cannot create a new memory via PUT without a 'value'."
NOT_CONFIGURED = (
    "The memory store is not configured: set LITELLM_MEMORY_DATABASE_URL (or DATABASE_URL) "
    "for the proxy and restart it."
)
REFUSED_BY_DATABASE = "The database refused this change to the memory entry."
IDENTITY_NOT_STORABLE = (
    "This key's {field} cannot be stored by the memory store: it contains NUL (\\u0000) or a lone"
    " surrogate, which PostgreSQL cannot hold. Use a key whose {field} is plain text."
)


def not_found(key: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"Memory with key '{key}' not found")


def key_taken(key: str) -> HTTPException:
    return HTTPException(status_code=409, detail=f"Memory with key '{key}' already exists.")


_HEADER = (PATCH_HEADER.lower().encode(), __version__.encode())


class PatchedRoute(APIRoute):
    """An APIRoute whose every response, errors included, names the patch and its version."""

    # Wrapping handle(), not self.app: FastAPI 0.165 serves an included router's routes through
    # an app of its own that it builds from the route, but still calls each route's handle().
    async def handle(self, scope, receive, send) -> None:
        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _HEADER]
            await send(message)

        await super().handle(scope, receive, send_with_header)


router = APIRouter(route_class=PatchedRoute)


# -- input checks: a caller's input gets a 4xx, never a 500 --------------------------------


def _text_problem(field: str, text: str) -> str | None:
    if "\x00" in text:
        return NUL_BYTE.format(field=field)
    try:
        text.encode()
    except UnicodeEncodeError:
        return LONE_SURROGATE.format(field=field)
    return None


def _check_text(field: str, text: str | None) -> None:
    if text is not None and (problem := _text_problem(field, text)):
        raise HTTPException(status_code=400, detail=problem)


def _check_key(key: str) -> None:
    if not key:
        raise HTTPException(status_code=400, detail=EMPTY_KEY)
    _check_text("key", key)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise HTTPException(status_code=400, detail=KEY_TOO_LONG)


def _metadata_problem(value: Any, depth: int = 0) -> str | None:
    """What PostgreSQL's jsonb would refuse in ``value``, which Python's JSON accepts, and
    nesting deeper than the limit; ``depth`` counts the objects and arrays around ``value``."""
    if isinstance(value, str):
        return _text_problem("metadata", value)
    if isinstance(value, float):
        return None if math.isfinite(value) else NOT_FINITE
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    if depth == MAX_METADATA_DEPTH:
        return METADATA_TOO_DEEP
    return next(filter(None, (_metadata_problem(item, depth + 1) for item in items)), None)


def _check_body(store: MemoryStore, *, value: str | None, metadata: Any, owners: tuple) -> None:
    limit = store.max_value_bytes
    _check_text("value", value)
    for field, owner in zip(("user_id", "team_id"), owners):
        _check_text(field, owner)
    if problem := _metadata_problem(metadata):
        raise HTTPException(status_code=400, detail=problem)
    if value is not None and len(value.encode()) > limit:
        raise HTTPException(status_code=413, detail=TOO_LARGE.format(field="value", limit=limit))
    if metadata is not None and len(json.dumps(metadata)) > limit:
        raise HTTPException(status_code=413, detail=TOO_LARGE.format(field="metadata", limit=limit))


# -- the caller and the store -----------------------------------------------------------


def caller_scope(user_api_key_dict=Depends(user_api_key_auth)) -> CallerScope:
    scope = CallerScope.from_auth(user_api_key_dict)
    # The identity goes to the database with every request, in its settings and its rows.
    identity = (("team_id", scope.team_id), ("user_id", scope.user_id), ("user_role", scope.role))
    for field, text in identity:
        if text is not None and _text_problem(field, text):
            raise HTTPException(status_code=400, detail=IDENTITY_NOT_STORABLE.format(field=field))
    return scope


def memory_store(request: Request) -> MemoryStore:
    store = getattr(request.app.state, "litellm_memory_store", None)
    if store is None:
        raise HTTPException(status_code=503, detail=NOT_CONFIGURED)
    return store


@asynccontextmanager
async def refusals_as_http() -> AsyncIterator[None]:
    """Turn the store's and the scope's refusals into HTTP answers, with no internals."""
    try:
        yield
    except StoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=exc.detail) from None
    except ScopeError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None
    except WriteRefused:
        raise HTTPException(status_code=403, detail=REFUSED_BY_DATABASE) from None
    except BeyondLimits:
        raise HTTPException(status_code=400, detail=BEYOND_LIMITS) from None


# LiteLLM's answer model, field by field, in its order.
ROW_FIELDS = tuple(LiteLLM_MemoryRow.model_fields)


def _row(record: MemoryRecord) -> dict[str, Any]:
    """A row as LiteLLM's model answers it, built without validating it through the model (a
    tenth of the cost: the record's types are already the model's). Its metadata is the JSON text
    PostgreSQL stores, written into the answer as it is and never parsed: rows written by
    LiteLLM's own handlers or by SQL know no depth limit, and no stored row may make an answer
    fail."""
    fields = {name: getattr(record, name, None) for name in ROW_FIELDS}
    fields["metadata"] = orjson.Fragment(record.metadata_json or "null")
    return fields


def _json_answer(content: dict[str, Any]) -> Response:
    # UTC datetimes end in "Z", as pydantic writes them in LiteLLM's answers.
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), media_type="application/json")


def _answer(record: MemoryRecord) -> Response:
    return _json_answer(_row(record))


# -- the routes ---------------------------------------------------------------------------


@router.post("/v1/memory", tags=TAGS, response_model=LiteLLM_MemoryRow)
async def create_memory(
    body: MemoryCreateRequest,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """Create a memory entry in the caller's scope (admins: any scope)."""
    _check_key(body.key)
    _check_body(store, value=body.value, metadata=body.metadata, owners=(body.user_id, body.team_id))
    async with refusals_as_http():
        user_id, team_id = scope.owner_for_create(
            requested_user_id=body.user_id, requested_team_id=body.team_id
        )
        try:
            async with store.transaction(scope) as tx:
                row = await tx.create(
                    key=body.key,
                    value=body.value,
                    metadata=body.metadata,
                    user_id=user_id,
                    team_id=team_id,
                    actor=scope.user_id,
                    last=True,
                )
        except KeyTaken:
            raise key_taken(body.key) from None
    return _answer(row)


@router.get("/v1/memory", tags=TAGS, response_model=MemoryListResponse)
async def list_memory(
    key: str | None = Query(None, description="Filter by exact key match."),
    key_prefix: str | None = Query(
        None,
        description=(
            "Filter by key prefix (Redis-style namespace scan). "
            "Mutually exclusive with `key`; if both are provided, `key_prefix` wins."
        ),
    ),
    search: str | None = Query(
        None,
        description=(
            "Match entries whose key starts with this value or whose memory_id equals it. "
            "Takes precedence over `key_prefix` and `key` when provided."
        ),
    ),
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """List the memory entries visible to the caller, newest first."""
    for field, text in (("key", key), ("key_prefix", key_prefix), ("search", search)):
        _check_text(field, text)
    async with refusals_as_http():
        async with store.transaction(scope) as tx:
            rows, total = await tx.page(
                KeyMatch(key=key, key_prefix=key_prefix, search=search),
                where=visibility(scope),
                offset=(page - 1) * page_size,
                limit=page_size,
            )
    return _json_answer({"memories": [_row(row) for row in rows], "total": total})


@router.get("/v1/memory/{key:path}", tags=TAGS, response_model=LiteLLM_MemoryRow)
async def get_memory(
    key: str,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """Get one memory entry by key, if the caller can see it."""
    _check_key(key)
    async with refusals_as_http():
        async with store.transaction(scope) as tx:
            row = await tx.find(key, where=visibility(scope), last=True)
    if row is None:
        raise not_found(key)
    return _answer(row)


@router.put("/v1/memory/{key:path}", tags=TAGS, response_model=LiteLLM_MemoryRow)
async def upsert_memory(
    key: str,
    body: MemoryUpdateRequest,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """Update the caller's visible entry for ``key``, or create it in the caller's scope.

    ``user_id``/``team_id`` in the body only count when creating: ownership never changes
    on update.
    """
    _check_key(key)
    _check_body(store, value=body.value, metadata=body.metadata, owners=(body.user_id, body.team_id))
    changes: dict[str, Any] = {}
    if body.value is not None:
        changes["value"] = body.value
    if "metadata" in body.model_fields_set:
        changes["metadata"] = body.metadata
    if not changes:
        raise HTTPException(status_code=400, detail=NOTHING_TO_UPDATE)

    async def update() -> tuple[str, MemoryRecord | None]:
        async with store.transaction(scope) as tx:
            return await tx.update_key(
                key, changes, where=visibility(scope), may_write=writable(scope),
                actor=scope.user_id,
            )

    async with refusals_as_http():
        outcome, row = await update()
        if outcome == ABSENT:
            # No row visible: a create, as its own request would be.
            if body.value is None:
                raise HTTPException(status_code=400, detail=CREATE_NEEDS_VALUE)
            user_id, team_id = scope.owner_for_create(
                requested_user_id=body.user_id, requested_team_id=body.team_id
            )
            try:
                async with store.transaction(scope) as tx:
                    return _answer(
                        await tx.create(
                            key=key,
                            value=body.value,
                            metadata=body.metadata,
                            user_id=user_id,
                            team_id=team_id,
                            actor=scope.user_id,
                            last=True,
                        )
                    )
            except KeyTaken:
                # Taken out of sight (409), or created in the caller's scope since the update
                # looked: then it is an update after all.
                outcome, row = await update()
                if outcome == ABSENT:
                    raise key_taken(key) from None
    if outcome == FORBIDDEN:
        raise HTTPException(status_code=403, detail=WRITE_FORBIDDEN)
    if row is None:
        raise not_found(key)
    return _answer(row)


@router.delete("/v1/memory/{key:path}", tags=TAGS, response_model=MemoryDeleteResponse)
async def delete_memory(
    key: str,
    scope: CallerScope = Depends(caller_scope),
    store: MemoryStore = Depends(memory_store),
):
    """Delete one memory entry by key, if the caller can see it and may write it."""
    _check_key(key)
    async with refusals_as_http():
        async with store.transaction(scope) as tx:
            outcome = await tx.delete(key, where=visibility(scope), may_write=writable(scope))
    if outcome == FORBIDDEN:
        raise HTTPException(status_code=403, detail=WRITE_FORBIDDEN)
    if outcome != DELETED:
        raise not_found(key)
    return MemoryDeleteResponse(key=key, deleted=True)
