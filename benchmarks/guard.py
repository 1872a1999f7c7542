"""What the request's start costs, piece by piece: the settings, the role switch, the lock, the check.

One connection as the proxy's login role, the patch's GET statement for a seeded key, messages
interleaved in small batches. Each start below is one plpgsql call, so that the messages differ
only in what the call does; each adds one piece to the one before it:

- ``plain``: the statement alone (the baseline's message);
- ``empty call``: a plpgsql function that does nothing, then the statement;
- ``settings``: the search_path, the timeouts and the caller's three settings, by ``set_config``
  as the guard sets them (no role switch: the statement runs as the login role);
- ``settings and role switch``: the same and the switch to the restricted role (row-level
  security now applies to the statement);
- ``and the lock``: the same and the table's ACCESS SHARE lock the guard takes;
- ``guard``: ``begin_request()`` itself (all of the above and the check).

The differences between consecutive messages are each piece's cost on the server (the
protocol is the same in all but ``plain``). The pieces are temporary functions of the session,
written from the guard's own statements, so they follow it only as far as this file does:
``guard`` minus ``and the lock`` is the check.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from psycopg import sql

from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA
from litellm_memory_patch.migrator import head_revision

MESSAGES = (
    "plain", "empty call", "settings", "settings and role switch", "and the lock", "guard",
)
_STATEMENT = (
    'SELECT memory_id, key, value, metadata, user_id, team_id, created_at, created_by, updated_at,'
    ' updated_by FROM "public"."LiteLLM_MemoryTable" WHERE key = {key} AND team_id = {team}'
)
_SETTINGS = """
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
            pg_catalog.set_config('lock_timeout', statement_timeout, true),
            pg_catalog.set_config('statement_timeout', statement_timeout, true),
            {role}
            pg_catalog.set_config('litellm_memory.team_id', team_id, true),
            pg_catalog.set_config('litellm_memory.user_id', user_id, true),
            pg_catalog.set_config('litellm_memory.user_role', user_role, true);"""
_ROLE = f"pg_catalog.set_config('role', '{APP_ROLE}', true),"
_LOCK = '\n    LOCK TABLE "public"."LiteLLM_MemoryTable" IN ACCESS SHARE MODE;'
_PIECES = {
    "empty call": "",
    "settings": _SETTINGS.format(role=""),
    "settings and role switch": _SETTINGS.format(role=_ROLE),
    "and the lock": _SETTINGS.format(role=_ROLE) + _LOCK,
}
_CALL = "SELECT pg_temp.{name}({revision}, {team}, {user}, '', '5000')"
_GUARD = "SELECT {patch}.begin_request({revision}, {team}, {user}, '', '5000')"


def _create_pieces(conn: psycopg.Connection) -> dict[str, str]:
    """The temporary start functions; returns each message's function name."""
    names = {}
    for number, (message, body) in enumerate(_PIECES.items()):
        names[message] = name = f"bench_start_{number}"
        conn.execute(
            f"CREATE FUNCTION pg_temp.{name}(revision text, team_id text, user_id text,"
            f" user_role text, statement_timeout text) RETURNS void LANGUAGE plpgsql"
            f" AS $body$ BEGIN {body}\nEND $body$"
        )
    return names


def _messages(conn: psycopg.Connection, key: str, team: str, user: str) -> dict[str, bytes]:
    values = {
        "key": sql.Literal(key), "team": sql.Literal(team), "user": sql.Literal(user),
        "patch": sql.Identifier(PATCH_SCHEMA), "revision": sql.Literal(head_revision()),
    }
    statement = sql.SQL(_STATEMENT).format(**values)
    parts = {"plain": [statement], "guard": [sql.SQL(_GUARD).format(**values), statement]}
    for message, name in _create_pieces(conn).items():
        parts[message] = [sql.SQL(_CALL).format(name=sql.SQL(name), **values), statement]
    return {name: sql.SQL("; ").join(parts[name]).as_bytes(conn) for name in MESSAGES}


def check_cost(conninfo: str, *, n: int, batch: int = 20) -> dict[str, float]:
    """Median seconds per message of each kind, ``n`` of each after ``n // 10`` warm-up."""
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        key, team, user = conn.execute(
            'SELECT key, team_id, user_id FROM "LiteLLM_MemoryTable" WHERE team_id IS NOT NULL'
            " AND user_id IS NOT NULL ORDER BY key LIMIT 1"
        ).fetchone()
        messages = _messages(conn, key, team, user)
        times: dict[str, list[float]] = {name: [] for name in MESSAGES}
        for round_number in range((n + n // 10) // batch):
            for name in MESSAGES if round_number % 2 == 0 else reversed(MESSAGES):
                for _ in range(batch):
                    started = time.perf_counter()
                    cur = conn.execute(messages[name])
                    while cur.nextset():
                        pass
                    if round_number * batch >= n // 10:
                        times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}
