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
one simple-protocol message. Every route's request fits in one: a PUT or a DELETE is one
statement that reads, authorises and writes (:meth:`MemoryTransaction.update_key`,
:meth:`MemoryTransaction.delete`); a PUT that finds no row sends its insert in a transaction of
its own after it. Such a message sends no ``BEGIN`` or ``COMMIT``: PostgreSQL runs a
multi-statement message as one implicit transaction, so the role and settings end with it. A
request of more than one round trip wraps them in ``BEGIN`` ... ``COMMIT``. PostgreSQL parses
and plans each statement of a message only after the previous one ran, so the role switch
applies to the statements that follow it, and an error in any statement skips the rest of the
message. The simple protocol carries no parameters: values are bound client-side with
psycopg's ``sql.Literal``, which quotes them for this connection. Nothing is ever prepared,
which is also what PgBouncer in transaction mode needs.

The statements also carry the caller's visibility themselves (:func:`visibility`). That filter
is what lets PostgreSQL use LiteLLM's ``team_id`` index; row-level security underneath is what
makes a wrong filter harmless.
"""

from __future__ import annotations

import contextlib
import logging
import time
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

from .config import APP_ROLE, PATCH_SCHEMA, Settings, quote_ident, refuses_the_switch
from .migrations.enforcement import GUARD_SQLSTATE
from .scope import CallerScope

logger = logging.getLogger("litellm_memory_patch")

# PostgreSQL keeps OFFSET in a bigint; a page past it is simply empty.
MAX_OFFSET = 2**62

NOT_MIGRATED = (
    "The memory store is not set up in this database for this version of the patch: an operator "
    "must run `litellm-memory-patch doctor` to see why and `litellm-memory-patch migrate` with "
    "the proxy's database URL (whose ?schema= names LiteLLM's schema, if it is not public); "
    "retry then."
)
CANNOT_SWITCH = (
    "The memory store is unavailable: the proxy's database login role {login} may not switch to "
    "the role " + APP_ROLE + ". An operator must run, as a superuser: GRANT " + APP_ROLE + " TO "
    "{login}; (or `litellm-memory-patch migrate --grant-to {login}` as a superuser)."
)
PROTECTION_MISSING = (
    "The memory store is unavailable: its database protection is not in place ({problem}). An "
    "operator must run `litellm-memory-patch doctor`, then `litellm-memory-patch migrate`."
)
# An extra overload (say one more argument with a default) makes every call to the function
# ambiguous, so the guard cannot even run to name it.
OVERLOADED = (
    f"another function in the {PATCH_SCHEMA} schema has the name of one of the protection's"
    " (begin_request, or one the ownership trigger calls), so calling it is ambiguous"
)
BEYOND_LIMITS = (
    "The request exceeds a limit of the memory store's database; shorten the key, the value "
    "or the metadata (or, for a key whose team or user id is this long, use another key)."
)
UNAVAILABLE = "The memory store's database is unavailable; retry shortly."
LOGIN_REFUSED = (
    "The memory store's database refuses the proxy's login (authentication failed, or the role or "
    "database its URL names does not exist): an operator must correct LITELLM_MEMORY_DATABASE_URL "
    "(or DATABASE_URL) and restart the proxy."
)
# libpq's and PostgreSQL's words for a login that fails the same way at every attempt.
PERMANENT_CONNECT_FAULTS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "no password supplied",
)
# A fault that repeats at every request or reconnection attempt is logged once per interval.
LOG_INTERVAL_SECONDS = 60.0
READ_ONLY = (
    "The memory store's database is read-only (a standby, or default_transaction_read_only is"
    " on): reads keep working, writes are refused until the proxy's database accepts writes again."
)
TIMED_OUT = "The memory store's database did not answer in time; retry shortly."


class RepeatGate(logging.Filter):
    """Lets a given text through once per interval. As a filter on psycopg's pool logger it
    keeps a pool that retries a refused login from logging every attempt."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}

    def allows(self, text: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(text, -self._interval) < self._interval:
            return False
        if len(self._last) > 1000:  # texts carry no unbounded parts, but never grow forever
            self._last.clear()
        self._last[text] = now
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        return self.allows(record.getMessage())


_pool_log_gate = RepeatGate()


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


# What a write by key found and did (MemoryTransaction.update_key and .delete).
UPDATED, DELETED = "updated", "deleted"
FORBIDDEN = "forbidden"  # the row is visible, but the caller may not write it
VANISHED = "vanished"  # the row was visible and writable, and gone when written
ABSENT = "absent"  # no visible row


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
        # LiteLLM does. A row may carry more than the record (a statement's outcome or total).
        for name in ("created_at", "updated_at"):
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=timezone.utc)
        return cls(**{name: row[name] for name in _FIELDS})


_FIELDS = tuple(MemoryRecord.__dataclass_fields__)


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


def writable(scope: CallerScope) -> sql.Composable:
    """The visible rows ``scope`` may update or delete, as an SQL condition (the handlers' own
    check, SECURITY.md's rules). Team-admin status is the database's own answer, asked only for
    a pure team row of the caller's team."""
    if scope.is_admin:
        return sql.SQL("TRUE")
    if scope.is_admin_of_team:
        return sql.SQL("team_id = {}").format(sql.Literal(scope.team_id))
    conditions = []
    if scope.user_id is not None:
        conditions.append(
            sql.SQL("(user_id = {} AND team_id IS NOT DISTINCT FROM {})").format(
                sql.Literal(scope.user_id), sql.Literal(scope.team_id)
            )
        )
    if scope.team_id is not None:
        conditions.append(
            sql.SQL(
                "CASE WHEN user_id IS NULL AND team_id = {} THEN {}.session_is_team_admin() END"
            ).format(sql.Literal(scope.team_id), sql.Identifier(PATCH_SCHEMA))
        )
    if not conditions:
        return sql.SQL("FALSE")
    return sql.SQL("coalesce({}, false)").format(sql.SQL(" OR ").join(conditions))


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
# Rendered starts kept, one per caller (a few hundred bytes each); beyond, the cache restarts.
_STARTS_KEPT = 4096
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
        """One page, newest first, and the number of matching rows; the request's last step.

        One statement: the count rides on every row of the page (an uncorrelated sub-select,
        which PostgreSQL runs once). Only a page past the end, which has no row to carry it,
        counts again, in a transaction of its own.
        """
        condition = sql.SQL("{} AND {}").format(match.clause(), where)
        count = sql.SQL("SELECT count(*) AS total FROM {} WHERE {}").format(self._table, condition)
        (rows,) = await self._run(
            sql.SQL(
                "SELECT ({}) AS total, {} FROM {} WHERE {}"
                " ORDER BY updated_at DESC, key LIMIT {} OFFSET {}"
            ).format(
                count,
                _COLUMNS,
                self._table,
                condition,
                sql.Literal(limit),
                sql.Literal(min(offset, MAX_OFFSET)),
            ),
            last=True,
        )
        if rows:
            total = rows[0]["total"]
        elif offset:
            ((counted,),) = await MemoryTransaction(self._conn, self._table, self._start)._run(
                count, last=True
            )
            total = counted["total"]
        else:
            total = 0
        return [MemoryRecord.from_row(row) for row in rows], total

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
        stays usable.
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

    @staticmethod
    def _assignments(changes: dict[str, Any], actor: str | None) -> sql.Composable:
        # An explicit metadata None stores JSON null, as LiteLLM does on update.
        return sql.SQL(", ").join(
            [
                *(
                    sql.SQL("{} = {}").format(
                        sql.Identifier(name),
                        sql.Literal(Jsonb(changes[name]) if name == "metadata" else changes[name]),
                    )
                    for name in sorted(changes)
                ),
                sql.SQL("updated_at = {}").format(_NOW),
                sql.SQL("updated_by = {}").format(sql.Literal(actor)),
            ]
        )

    @staticmethod
    def _target(key: str, table: sql.Composable, where: sql.Composable, may_write: sql.Composable):
        """The visible row for ``key`` (at most one: keys are unique) and whether it is writable."""
        return sql.SQL(
            "SELECT memory_id AS target, ({}) AS allowed FROM {} WHERE key = {} AND {}"
        ).format(may_write, table, sql.Literal(key), where)

    async def update_key(
        self,
        key: str,
        changes: dict[str, Any],
        *,
        where: sql.Composable,
        may_write: sql.Composable,
        actor: str | None,
    ) -> tuple[str, MemoryRecord | None]:
        """A PUT's update, in one statement that reads, authorises and writes, and commits:
        set ``changes`` on the visible row for ``key`` where ``may_write`` allows it.

        Returns the outcome: UPDATED with the row, FORBIDDEN, VANISHED or ABSENT (no row
        visible: the caller creates one, or not).
        """
        self.wrote = True
        (rows,) = await self._run(
            sql.SQL(
                "WITH existing AS ({target}),"
                " updated AS (UPDATE {table} SET {assignments}"
                " WHERE memory_id = (SELECT target FROM existing WHERE allowed) AND {where}"
                " RETURNING {columns})"
                " SELECT existing.allowed, updated.* FROM existing LEFT JOIN updated ON true"
            ).format(
                target=self._target(key, self._table, where, may_write),
                table=self._table,
                assignments=self._assignments(changes, actor),
                where=where,
                columns=_COLUMNS,
            ),
            last=True,
        )
        if not rows:
            return ABSENT, None
        if not rows[0]["allowed"]:
            return FORBIDDEN, None
        if rows[0]["memory_id"] is None:
            return VANISHED, None
        return UPDATED, MemoryRecord.from_row(rows[0])

    async def update(
        self, memory_id: str, changes: dict[str, Any], *, where: sql.Composable, actor: str | None
    ) -> MemoryRecord | None:
        """Set ``changes`` on one row by id and commit; None when the row is gone or not
        writable. (The benchmark's baseline updates this way, as LiteLLM's handler does.)"""
        self.wrote = True
        rows = await self._records(
            sql.SQL("UPDATE {} SET {} WHERE memory_id = {} AND {} RETURNING {}").format(
                self._table, self._assignments(changes, actor), sql.Literal(memory_id), where,
                _COLUMNS,
            ),
            last=True,
        )
        return rows[0] if rows else None

    async def delete(self, key: str, *, where: sql.Composable, may_write: sql.Composable) -> str:
        """A DELETE, in one statement that reads, authorises and deletes, and commits: the
        outcome (DELETED, FORBIDDEN, VANISHED or ABSENT)."""
        self.wrote = True
        (rows,) = await self._run(
            sql.SQL(
                "WITH existing AS ({target}),"
                " deleted AS (DELETE FROM {table}"
                " WHERE memory_id = (SELECT target FROM existing WHERE allowed) AND {where}"
                " RETURNING memory_id)"
                " SELECT CASE WHEN EXISTS (SELECT FROM deleted) THEN {deleted}"
                " WHEN allowed THEN {vanished} ELSE {forbidden} END AS outcome FROM existing"
            ).format(
                target=self._target(key, self._table, where, may_write),
                table=self._table,
                where=where,
                deleted=sql.Literal(DELETED),
                vanished=sql.Literal(VANISHED),
                forbidden=sql.Literal(FORBIDDEN),
            ),
            last=True,
        )
        return rows[0]["outcome"] if rows else ABSENT


class MemoryStore:
    """The pool, and the per-request transaction that confines every statement to a caller."""

    def __init__(self, settings: Settings) -> None:
        from .migrator import head_revision  # Alembic is needed for this once, not per request

        self._settings = settings
        self._revision = head_revision()
        # The last failure to open a connection, None once one opens: a PoolTimeout says only
        # that no connection came, this says whether one ever can.
        self._connect_fault: psycopg.OperationalError | None = None
        self._log_gate = RepeatGate()
        pool_logger = logging.getLogger("psycopg.pool")
        if _pool_log_gate not in pool_logger.filters:
            pool_logger.addFilter(_pool_log_gate)
        self._starts: dict[tuple[CallerScope, str, str], sql.SQL] = {}
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
            connection_class=self._recording_connection_class(),
            check=AsyncConnectionPool.check_connection,
            kwargs={
                # Transactions are begun explicitly, in the same message as their first statement.
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": settings.connect_timeout,
                "application_name": "litellm-memory-patch",
            },
        )

    def _recording_connection_class(self) -> type[psycopg.AsyncConnection]:
        store = self

        class RecordingConnection(psycopg.AsyncConnection):
            @classmethod
            async def connect(cls, *args, **kwargs):
                try:
                    conn = await super().connect(*args, **kwargs)
                except psycopg.OperationalError as exc:
                    store._connect_fault = exc
                    raise
                store._connect_fault = None
                return conn

        return RecordingConnection

    def _no_connection(self, exc: PoolTimeout) -> StoreUnavailable:
        """What a request that got no connection answers, logged once per interval."""
        fault = self._connect_fault
        if fault is not None and any(words in str(fault) for words in PERMANENT_CONNECT_FAULTS):
            detail, cause = LOGIN_REFUSED, fault
        else:
            detail, cause = UNAVAILABLE, exc
        text = f"memory store unavailable: {' '.join(str(cause).split())}"
        if self._log_gate.allows(text):
            logger.warning("%s", text)
        return StoreUnavailable(detail)

    async def open(self) -> None:
        # Not waiting: the proxy must start even when the database is down; requests then
        # answer 503 until the pool reaches it.
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def _start(self, scope: CallerScope, conn: psycopg.AsyncConnection) -> sql.Composable:
        """The start of ``scope``'s request, rendered once per caller, client encoding and
        expected revision: quoting its values costs more than the rest of a GET's Python."""
        cache_key = (scope, conn.info.encoding, self._revision)
        start = self._starts.get(cache_key)
        if start is None:
            if len(self._starts) >= _STARTS_KEPT:
                self._starts.clear()
            start = self._starts[cache_key] = sql.SQL(self._compose_start(scope).as_string(conn))
        return start

    def _compose_start(self, scope: CallerScope) -> sql.Composable:
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
    def _refusal(exc: errors.InsufficientPrivilege, *, wrote: bool, login: str) -> Exception:
        # A write refused by a policy or the ownership trigger means the handlers let through
        # what the database would not: a bug, answered 403. A refusal met by the request's start
        # (its role switch, its lock; the start and a write may share a message) or met without
        # any write means this login was not migrated, or may not switch to the restricted role.
        logger.error("the database refused: %s", exc.diag.message_primary)
        if refuses_the_switch(exc.diag.message_primary):
            return StoreUnavailable(CANNOT_SWITCH.format(login=quote_ident(login)))
        in_start = "begin_request" in (exc.diag.context or "")
        return WriteRefused() if wrote and not in_start else StoreUnavailable(NOT_MIGRATED)

    @staticmethod
    def _translate(exc: psycopg.Error) -> Exception:
        """What a database error means for the caller; every outage is a StoreUnavailable."""
        if exc.sqlstate == GUARD_SQLSTATE:
            logger.error("memory store protection not in place: %s", exc.diag.message_primary)
            return StoreUnavailable(PROTECTION_MISSING.format(problem=exc.diag.message_primary))
        if isinstance(exc, errors.AmbiguousFunction):
            logger.error("memory store protection not in place: %s", exc.diag.message_primary)
            return StoreUnavailable(PROTECTION_MISSING.format(problem=OVERLOADED))
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
                tx = MemoryTransaction(conn, self._table, self._start(scope, conn))
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
                        raise self._refusal(exc, wrote=tx.wrote, login=conn.info.user) from None
                    raise
        except PoolTimeout as exc:
            raise self._no_connection(exc) from None
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
