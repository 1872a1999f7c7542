"""The memory store: a psycopg connection pool and every SQL statement the routes run.

Each request is one transaction on a pooled connection. Its first statement switches to the
restricted role ``litellm_memory_app`` and sets the caller's scope, all transaction-local
(``set_config(..., true)``), so that PostgreSQL's row-level security applies to everything that
follows and nothing outlives the transaction: the next request on the same connection, or on
the same server connection behind PgBouncer in transaction mode, starts from nothing.

The statements also carry the caller's visibility themselves (:func:`visibility`). That filter
is what lets PostgreSQL use LiteLLM's ``team_id`` index; row-level security underneath is what
makes a wrong filter harmless.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .config import APP_ROLE, PATCH_SCHEMA, Settings
from .scope import CallerScope

logger = logging.getLogger("litellm_memory_patch")

# PostgreSQL keeps OFFSET in a bigint; a page past it is simply empty.
MAX_OFFSET = 2**62

NOT_MIGRATED = (
    "The memory store is not set up in this database: run `litellm-memory-patch migrate` "
    "with the proxy's database URL, then retry."
)
UNAVAILABLE = "The memory store's database is unavailable; retry shortly."
TIMED_OUT = "The memory store's database did not answer in time; retry shortly."


class StoreUnavailable(Exception):
    """The database cannot serve this request now; ``detail`` is safe to show a caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class KeyTaken(Exception):
    """The key exists already, in this scope or in one the caller cannot see."""


class WriteRefused(Exception):
    """The database refused a write the route let through (a bug the database caught)."""


# A missing role, function or table, or a login role that may not switch: the migrations
# have not been applied (or were rolled back) in this database.
_NOT_MIGRATED_ERRORS = (
    errors.UndefinedObject,
    errors.UndefinedTable,
    errors.UndefinedFunction,
    errors.InvalidSchemaName,
)


@dataclass(frozen=True)
class MemoryRecord:
    memory_id: str
    key: str
    value: str
    metadata: Any
    user_id: str | None
    team_id: str | None
    created_at: datetime | None
    created_by: str | None
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def from_row(cls, row: dict) -> "MemoryRecord":
        # The columns are TIMESTAMP(3) holding UTC, as Prisma writes them; answer in UTC as
        # LiteLLM does.
        for name in ("created_at", "updated_at"):
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=timezone.utc)
        return cls(**row)


@dataclass(frozen=True)
class KeyMatch:
    """How a list narrows by key: ``search`` (key prefix or exact memory_id) wins over
    ``key_prefix``, which wins over ``key``, as in LiteLLM."""

    key: str | None = None
    key_prefix: str | None = None
    search: str | None = None

    def clause(self) -> sql.Composable:
        if self.search is not None:
            return sql.SQL("(starts_with(key, {0}) OR memory_id = {0})").format(
                sql.Literal(self.search)
            )
        if self.key_prefix is not None:
            return sql.SQL("starts_with(key, {})").format(sql.Literal(self.key_prefix))
        if self.key is not None:
            return sql.SQL("key = {}").format(sql.Literal(self.key))
        return sql.SQL("TRUE")


def visibility(scope: CallerScope) -> sql.Composable:
    """The rows ``scope`` may see, as an SQL condition (the handlers' own filter)."""
    if scope.reads_all:
        return sql.SQL("TRUE")
    if scope.team_id is not None:
        return sql.SQL("team_id = {}").format(sql.Literal(scope.team_id))
    if scope.user_id is not None:
        return sql.SQL("(team_id IS NULL AND user_id = {})").format(sql.Literal(scope.user_id))
    return sql.SQL("FALSE")


_COLUMNS = sql.SQL(
    "memory_id, key, value, metadata, user_id, team_id, created_at, created_by, updated_at, updated_by"
)
# UTC at millisecond precision, as Prisma stores its timestamps.
_NOW = sql.SQL("(statement_timestamp() AT TIME ZONE 'UTC')::timestamp(3)")
_REVISION = sql.SQL("SELECT version_num FROM {}.alembic_version").format(
    sql.Identifier(PATCH_SCHEMA)
)
_BEGIN = sql.SQL(
    "SELECT set_config('role', {role}, true),"
    " set_config('litellm_memory.team_id', %(litellm_memory.team_id)s, true),"
    " set_config('litellm_memory.user_id', %(litellm_memory.user_id)s, true),"
    " set_config('litellm_memory.user_role', %(litellm_memory.user_role)s, true),"
    " set_config('statement_timeout', %(statement_timeout)s, true)"
).format(role=sql.Literal(APP_ROLE))


class MemoryTransaction:
    """The statements of one request, run as the caller inside its transaction."""

    def __init__(self, conn: psycopg.AsyncConnection, table: sql.Composable) -> None:
        self._conn = conn
        self._table = table

    async def _rows(self, query: sql.Composable, params: tuple = ()) -> list[MemoryRecord]:
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return [MemoryRecord.from_row(row) for row in await cur.fetchall()]

    async def find(self, key: str, *, where: sql.Composable) -> MemoryRecord | None:
        rows = await self._rows(
            sql.SQL("SELECT {} FROM {} WHERE key = %s AND {}").format(_COLUMNS, self._table, where),
            (key,),
        )
        return rows[0] if rows else None

    async def page(
        self, match: KeyMatch, *, where: sql.Composable, offset: int, limit: int
    ) -> tuple[list[MemoryRecord], int]:
        condition = sql.SQL("{} AND {}").format(match.clause(), where)
        async with self._conn.cursor() as cur:
            await cur.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self._table, condition)
            )
            (total,) = await cur.fetchone()
        if offset >= total:
            return [], total
        rows = await self._rows(
            sql.SQL(
                "SELECT {} FROM {} WHERE {} ORDER BY updated_at DESC, key LIMIT %s OFFSET %s"
            ).format(_COLUMNS, self._table, condition),
            (limit, min(offset, MAX_OFFSET)),
        )
        return rows, total

    async def create(
        self,
        *,
        key: str,
        value: str,
        metadata: Any,
        user_id: str | None,
        team_id: str | None,
        actor: str | None,
    ) -> MemoryRecord:
        """Insert a row; ``metadata`` None stores SQL NULL, as LiteLLM does on create."""
        query = sql.SQL(
            "INSERT INTO {} (memory_id, key, value, metadata, user_id, team_id,"
            " created_at, created_by, updated_at, updated_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, {now}, %s, {now}, %s) RETURNING {}"
        ).format(self._table, _COLUMNS, now=_NOW)
        params = (
            str(uuid4()),
            key,
            value,
            None if metadata is None else Jsonb(metadata),
            user_id,
            team_id,
            actor,
            actor,
        )
        # A savepoint, so that a taken key leaves the transaction usable for the caller's
        # next statement (an upsert falls back to reading the row).
        try:
            async with self._conn.transaction():
                (row,) = await self._rows(query, params)
        except errors.UniqueViolation:
            raise KeyTaken() from None
        return row

    async def update(
        self, memory_id: str, changes: dict[str, Any], *, where: sql.Composable, actor: str | None
    ) -> MemoryRecord | None:
        """Set ``value`` and/or ``metadata`` (an explicit None stores JSON null, as LiteLLM
        does); None when the row is gone or not writable."""
        assignments = [
            sql.SQL("{} = %s").format(sql.Identifier(name)) for name in sorted(changes)
        ]
        params = [
            Jsonb(changes[name]) if name == "metadata" else changes[name]
            for name in sorted(changes)
        ]
        query = sql.SQL(
            "UPDATE {} SET {}, updated_at = {now}, updated_by = %s"
            " WHERE memory_id = %s AND {} RETURNING {}"
        ).format(self._table, sql.SQL(", ").join(assignments), where, _COLUMNS, now=_NOW)
        rows = await self._rows(query, (*params, actor, memory_id))
        return rows[0] if rows else None

    async def delete(self, memory_id: str, *, where: sql.Composable) -> bool:
        async with self._conn.cursor() as cur:
            await cur.execute(
                sql.SQL("DELETE FROM {} WHERE memory_id = %s AND {}").format(self._table, where),
                (memory_id,),
            )
            return cur.rowcount == 1

    async def caller_is_team_admin(self) -> bool:
        """Team-admin or org-admin status for the session's team, as the database sees it."""
        async with self._conn.cursor() as cur:
            await cur.execute(
                sql.SQL("SELECT {}.session_is_team_admin()").format(sql.Identifier(PATCH_SCHEMA))
            )
            (answer,) = await cur.fetchone()
        return bool(answer)


class MemoryStore:
    """The pool, and the per-request transaction that confines every statement to a caller."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.max_value_bytes = settings.max_value_bytes
        self._table = sql.SQL("{}.{}").format(
            sql.Identifier(settings.database.schema), sql.Identifier("LiteLLM_MemoryTable")
        )
        self._pool = AsyncConnectionPool(
            settings.database.conninfo,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            open=False,
            name="litellm-memory-patch",
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "connect_timeout": settings.connect_timeout,
                # Behind PgBouncer in transaction mode a prepared statement may not exist on
                # the server connection the next transaction gets.
                "prepare_threshold": None if settings.database.behind_pgbouncer else 5,
                "application_name": "litellm-memory-patch",
            },
        )

    async def open(self) -> None:
        # Not waiting: the proxy must start even when the database is down; requests then
        # answer 503 until the pool reaches it.
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self, scope: CallerScope) -> AsyncIterator[MemoryTransaction]:
        """One request: a transaction as ``litellm_memory_app`` with the caller's settings.

        Anything raised inside rolls the whole transaction back: nothing is half-written.
        """
        params = {**scope.settings(), "statement_timeout": str(self._settings.statement_timeout_ms)}
        try:
            async with self._pool.connection() as conn, conn.transaction():
                try:
                    await conn.execute(_BEGIN, params)
                except (errors.InsufficientPrivilege, *_NOT_MIGRATED_ERRORS) as exc:
                    # No role to switch to, or this login may not switch: not migrated here.
                    logger.error("cannot switch to %s: %s", APP_ROLE, exc.diag.message_primary)
                    raise StoreUnavailable(NOT_MIGRATED) from None
                yield MemoryTransaction(conn, self._table)
        except errors.InsufficientPrivilege as exc:
            logger.error("the database refused a write: %s", exc.diag.message_primary)
            raise WriteRefused() from None
        except _NOT_MIGRATED_ERRORS as exc:
            logger.error("memory store not migrated: %s", exc.diag.message_primary)
            raise StoreUnavailable(NOT_MIGRATED) from None
        except errors.QueryCanceled:
            raise StoreUnavailable(TIMED_OUT) from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            logger.warning("memory store unavailable: %s", exc)
            raise StoreUnavailable(UNAVAILABLE) from None

    async def readiness_problem(self) -> str | None:
        """Why the store cannot serve yet (for the startup log), or None when it can."""
        from .migrator import head_revision  # Alembic is needed for this check only

        head = head_revision()
        try:
            async with self._pool.connection(timeout=self._settings.pool_timeout) as conn:
                cur = await conn.execute(_REVISION)
                row = await cur.fetchone()
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            row = None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            return f"the database cannot be reached ({exc})"
        if row is None or row[0] != head:
            found = row[0] if row else "none"
            return f"the database is at revision {found}, not {head}: run `litellm-memory-patch migrate`"
        try:
            async with self.transaction(CallerScope(None, None, None)):
                pass
        except StoreUnavailable as exc:
            return exc.detail
        return None
