"""The memory store: a psycopg connection pool and every SQL statement the routes run.

Each request is one transaction on a pooled connection. Its first statement calls
``litellm_memory_patch.begin_request()`` (see ``migrations/enforcement.py``), which checks that
the database's protection is in place (row-level security enabled and forced, the policies,
trigger and functions those the last ``migrate`` wrote, the revision this package expects),
then switches to the restricted role ``litellm_memory_app`` and sets the caller's scope, all
transaction-local (``set_config(..., true)``). Row-level security then applies to everything
that follows, and nothing outlives the transaction: the next request on the same connection, or
on the same server connection behind PgBouncer in transaction mode, starts from nothing. When
the check fails the request answers 503 naming the problem, and the next request checks again.

Round trips, not statements, are what a request pays for, so statements travel together in
one simple-protocol message. A request whose statements all fit in one message (a GET, a list,
a POST) sends no ``BEGIN`` or ``COMMIT``: PostgreSQL runs a multi-statement message as one
implicit transaction, so the role and settings end with it. A request of two round trips (PUT,
DELETE) wraps them in ``BEGIN`` ... ``COMMIT``. PostgreSQL parses and plans each statement of a
message only after the previous one ran, so the role switch applies to the statements that
follow it, and an error in any statement skips the rest of the message. The simple protocol
carries no parameters: values are bound client-side with psycopg's ``sql.Literal``, which
quotes them for this connection. Nothing is ever prepared, which is also what PgBouncer in
transaction mode needs.

The statements also carry the caller's visibility themselves (:func:`visibility`). That filter
is what lets PostgreSQL use LiteLLM's ``team_id`` index; row-level security underneath is what
makes a wrong filter harmless.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .config import PATCH_SCHEMA, Settings
from .migrations.enforcement import GUARD_SQLSTATE
from .scope import CallerScope

logger = logging.getLogger("litellm_memory_patch")

# PostgreSQL keeps OFFSET in a bigint; a page past it is simply empty.
MAX_OFFSET = 2**62

NOT_MIGRATED = (
    "The memory store is not set up in this database for this version of the patch: an operator "
    "must run `litellm-memory-patch doctor` to see why and `litellm-memory-patch migrate` with "
    "the proxy's database URL; retry then."
)
PROTECTION_MISSING = (
    "The memory store is unavailable: its database protection is not in place ({problem}). An "
    "operator must run `litellm-memory-patch doctor`, then `litellm-memory-patch migrate`."
)
BEYOND_LIMITS = (
    "The request exceeds a limit of the memory store's database; shorten the key, the value "
    "or the metadata (or, for a key whose team or user id is this long, use another key)."
)
UNAVAILABLE = "The memory store's database is unavailable; retry shortly."
READ_ONLY = (
    "The memory store's database is read-only (a standby, or default_transaction_read_only is"
    " on): reads keep working, writes are refused until the proxy's database accepts writes again."
)
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


class BeyondLimits(Exception):
    """The request can never succeed: it exceeds a limit of PostgreSQL (a 4xx, not an outage)."""


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
    # The stored JSON as PostgreSQL prints it (None: SQL NULL); parsed by nobody, so any depth
    # of stored JSON reads back.
    metadata_json: str | None
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
    "memory_id, key, value, metadata::text AS metadata_json, user_id, team_id,"
    " created_at, created_by, updated_at, updated_by"
)
# UTC at millisecond precision, as Prisma stores its timestamps.
_NOW = sql.SQL("(statement_timestamp() AT TIME ZONE 'UTC')::timestamp(3)")
# The start of every request, sent with its first statement: the check, the role switch and
# the caller's settings, all in one server function (see the module's docstring).
_BEGIN_REQUEST = sql.SQL(
    "SELECT {patch}.begin_request({revision}, {team_id}, {user_id}, {user_role}, {statement_timeout})"
)
_BEGIN = sql.SQL("BEGIN")
_COMMIT = sql.SQL("COMMIT")


class MemoryTransaction:
    """The statements of one request, run as the caller inside its transaction.

    ``last=True`` marks a request's final statement: it commits in the same round trip. With
    ``start=None`` the statements run as they are, each message on its own (the benchmark's
    unprotected baseline); nothing in the package does that.
    """

    def __init__(
        self, conn: psycopg.AsyncConnection, table: sql.Composable, start: sql.Composable | None
    ) -> None:
        self._conn = conn
        self._table = table
        self._start = start
        # An explicit transaction is open (a request of more than one round trip).
        self.open = False
        self._done = False
        # Whether a write was sent: tells a refused write from a role that cannot be used.
        self.wrote = False

    def _message(self, statements: tuple[sql.Composable, ...], *, last: bool) -> list[sql.Composable]:
        if self._done:
            # After the request's last message the connection is back to the login role:
            # never run a statement there.
            raise RuntimeError("the request's transaction is already committed")
        if self._start is None:
            return list(statements)
        if not self.open:
            # The request's first message. Alone it is one implicit transaction; followed by
            # others it opens an explicit one.
            return [self._start, *statements] if last else [_BEGIN, self._start, *statements]
        return [*statements, _COMMIT] if last else list(statements)

    async def _run(self, *statements: sql.Composable, last: bool) -> list[list[dict]]:
        """Send ``statements`` in one round trip; return each one's rows (each returns rows)."""
        message = sql.SQL("; ").join(self._message(statements, last=last))
        results = []
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(message, prepare=False)
            # Only now, with the message run: had composing or sending it failed, the next
            # statement must still go out behind the start, never on its own.
            guarded = self._start is not None
            self.open = guarded and not last
            self._done = guarded and last
            while True:
                if cur.description is not None:
                    results.append(await cur.fetchall())
                if not cur.nextset():
                    break
        return results[-len(statements) :]

    async def _records(self, statement: sql.Composable, *, last: bool) -> list[MemoryRecord]:
        (rows,) = await self._run(statement, last=last)
        return [MemoryRecord.from_row(row) for row in rows]

    async def find(self, key: str, *, where: sql.Composable, last: bool = False) -> MemoryRecord | None:
        rows = await self._records(
            sql.SQL("SELECT {} FROM {} WHERE key = {} AND {}").format(
                _COLUMNS, self._table, sql.Literal(key), where
            ),
            last=last,
        )
        return rows[0] if rows else None

    async def page(
        self, match: KeyMatch, *, where: sql.Composable, offset: int, limit: int
    ) -> tuple[list[MemoryRecord], int]:
        """One page, newest first, and the number of matching rows; the request's last step."""
        condition = sql.SQL("{} AND {}").format(match.clause(), where)
        counted, rows = await self._run(
            sql.SQL("SELECT count(*) AS total FROM {} WHERE {}").format(self._table, condition),
            sql.SQL(
                "SELECT {} FROM {} WHERE {} ORDER BY updated_at DESC, key LIMIT {} OFFSET {}"
            ).format(
                _COLUMNS,
                self._table,
                condition,
                sql.Literal(limit),
                sql.Literal(min(offset, MAX_OFFSET)),
            ),
            last=True,
        )
        return [MemoryRecord.from_row(row) for row in rows], counted[0]["total"]

    async def create(
        self,
        *,
        key: str,
        value: str,
        metadata: Any,
        user_id: str | None,
        team_id: str | None,
        actor: str | None,
        last: bool = False,
    ) -> MemoryRecord:
        """Insert a row; ``metadata`` None stores SQL NULL, as LiteLLM does on create.

        A taken key inserts nothing instead of raising (:class:`KeyTaken`), so the transaction
        stays usable: an upsert then falls back to reading the row.
        """
        self.wrote = True
        values = sql.SQL(", ").join(
            sql.Literal(value)
            for value in (
                str(uuid4()),
                key,
                value,
                None if metadata is None else Jsonb(metadata),
                user_id,
                team_id,
                actor,
                actor,
            )
        )
        rows = await self._records(
            sql.SQL(
                "INSERT INTO {} (memory_id, key, value, metadata, user_id, team_id, created_by,"
                " updated_by, created_at, updated_at) VALUES ({}, {now}, {now})"
                " ON CONFLICT DO NOTHING RETURNING {}"
            ).format(self._table, values, _COLUMNS, now=_NOW),
            last=last,
        )
        if not rows:
            raise KeyTaken()
        return rows[0]

    async def update(
        self, memory_id: str, changes: dict[str, Any], *, where: sql.Composable, actor: str | None
    ) -> MemoryRecord | None:
        """Set ``value`` and/or ``metadata`` (an explicit None stores JSON null, as LiteLLM
        does) and commit; None when the row is gone or not writable."""
        self.wrote = True
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(
                sql.Identifier(name),
                sql.Literal(Jsonb(changes[name]) if name == "metadata" else changes[name]),
            )
            for name in sorted(changes)
        )
        rows = await self._records(
            sql.SQL(
                "UPDATE {} SET {}, updated_at = {now}, updated_by = {} WHERE memory_id = {} AND {}"
                " RETURNING {}"
            ).format(
                self._table, assignments, sql.Literal(actor), sql.Literal(memory_id), where, _COLUMNS,
                now=_NOW,
            ),
            last=True,
        )
        return rows[0] if rows else None

    async def delete(self, memory_id: str, *, where: sql.Composable) -> bool:
        """Delete and commit; False when the row is gone or not writable."""
        self.wrote = True
        (rows,) = await self._run(
            sql.SQL("DELETE FROM {} WHERE memory_id = {} AND {} RETURNING memory_id").format(
                self._table, sql.Literal(memory_id), where
            ),
            last=True,
        )
        return bool(rows)

    async def caller_is_team_admin(self) -> bool:
        """Team-admin or org-admin status for the session's team, as the database sees it."""
        ((row,),) = await self._run(
            sql.SQL("SELECT {}.session_is_team_admin() AS answer").format(
                sql.Identifier(PATCH_SCHEMA)
            ),
            last=False,
        )
        return bool(row["answer"])


class MemoryStore:
    """The pool, and the per-request transaction that confines every statement to a caller."""

    def __init__(self, settings: Settings) -> None:
        from .migrator import head_revision  # Alembic is needed for this once, not per request

        self._settings = settings
        self._revision = head_revision()
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
                # Transactions are begun explicitly, in the same message as their first statement.
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": settings.connect_timeout,
                "application_name": "litellm-memory-patch",
            },
        )

    async def open(self) -> None:
        # Not waiting: the proxy must start even when the database is down; requests then
        # answer 503 until the pool reaches it.
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def _start(self, scope: CallerScope) -> sql.Composable:
        settings = scope.settings()
        return _BEGIN_REQUEST.format(
            patch=sql.Identifier(PATCH_SCHEMA),
            revision=sql.Literal(self._revision),
            team_id=sql.Literal(settings["litellm_memory.team_id"]),
            user_id=sql.Literal(settings["litellm_memory.user_id"]),
            user_role=sql.Literal(settings["litellm_memory.user_role"]),
            statement_timeout=sql.Literal(str(self._settings.statement_timeout_ms)),
        )

    @staticmethod
    def _refusal(exc: errors.InsufficientPrivilege, *, wrote: bool) -> Exception:
        # A write refused by a policy or the ownership trigger means the handlers let through
        # what the database would not: a bug, answered 403. A refusal met by the request's start
        # (its role switch, its lock; the start and a write may share a message) or met without
        # any write means this login was not migrated.
        logger.error("the database refused: %s", exc.diag.message_primary)
        in_start = "begin_request" in (exc.diag.context or "")
        return WriteRefused() if wrote and not in_start else StoreUnavailable(NOT_MIGRATED)

    @staticmethod
    def _translate(exc: psycopg.Error) -> Exception:
        """What a database error means for the caller; every outage is a StoreUnavailable."""
        if exc.sqlstate == GUARD_SQLSTATE:
            logger.error("memory store protection not in place: %s", exc.diag.message_primary)
            return StoreUnavailable(PROTECTION_MISSING.format(problem=exc.diag.message_primary))
        if isinstance(exc, (errors.InvalidParameterValue, *_NOT_MIGRATED_ERRORS)):
            # No role to switch to (set_config('role') of a missing role), or the project's
            # functions are gone: not migrated here, or not for this version.
            logger.error("memory store not migrated: %s", exc.diag.message_primary)
            return StoreUnavailable(NOT_MIGRATED)
        if isinstance(exc, errors.ReadOnlySqlTransaction):
            logger.warning("memory store read-only: %s", exc.diag.message_primary)
            return StoreUnavailable(READ_ONLY)
        if isinstance(exc, errors.ProgramLimitExceeded):
            # Too long for an index entry or a setting: retrying cannot help.
            return BeyondLimits()
        if isinstance(exc, (errors.QueryCanceled, errors.LockNotAvailable)):
            return StoreUnavailable(TIMED_OUT)
        if isinstance(exc, psycopg.OperationalError):
            logger.warning("memory store unavailable: %s", exc)
            return StoreUnavailable(UNAVAILABLE)
        return exc

    @asynccontextmanager
    async def transaction(self, scope: CallerScope) -> AsyncIterator[MemoryTransaction]:
        """One request: a transaction as ``litellm_memory_app`` with the caller's settings.

        Anything raised inside rolls the whole transaction back: nothing is half-written.
        """
        try:
            async with self._pool.connection() as conn:
                tx = MemoryTransaction(conn, self._table, self._start(scope))
                try:
                    yield tx
                    if tx.open:
                        await conn.execute(_COMMIT)
                except BaseException as exc:
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        # A lost connection cannot roll back; the server already has.
                        with contextlib.suppress(psycopg.OperationalError):
                            await conn.rollback()
                    if isinstance(exc, errors.InsufficientPrivilege):
                        raise self._refusal(exc, wrote=tx.wrote) from None
                    raise
        except PoolTimeout as exc:
            logger.warning("memory store unavailable: %s", exc)
            raise StoreUnavailable(UNAVAILABLE) from None
        except psycopg.Error as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from None

    async def readiness_problem(self) -> str | None:
        """Why the store cannot serve yet (for the startup log), or None when it can."""
        try:
            async with self.transaction(CallerScope(None, None, None)) as tx:
                # A request that can see nothing: it only proves the check and the role switch.
                await tx.find("", where=sql.SQL("FALSE"), last=True)
        except StoreUnavailable as exc:
            return exc.detail
        return None
