"""What the per-request check costs: the guard call against the same start without the check.

One connection as the proxy's login role, the patch's GET statement for a seeded key, three
messages interleaved in small batches:

- ``plain``: the statement alone (the baseline's message);
- ``start without the check``: the role switch and the caller's settings by ``set_config``, as
  the guard sets them, then the statement (row-level security applies);
- ``guard``: ``begin_request()`` (the check, the lock, the same switch and settings), then the
  statement (the patched message).

``guard`` minus ``start without the check`` is what checking the protection at every request
costs; ``start without the check`` minus ``plain`` is the role switch, the settings and
row-level security, which the patch paid before it checked anything.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from psycopg import sql

from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA
from litellm_memory_patch.migrator import head_revision

MESSAGES = ("plain", "start without the check", "guard")
_STATEMENT = (
    'SELECT memory_id, key, value, metadata, user_id, team_id, created_at, created_by, updated_at,'
    ' updated_by FROM "public"."LiteLLM_MemoryTable" WHERE key = {key} AND team_id = {team}'
)
_SETTINGS = (
    "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),"
    " pg_catalog.set_config('statement_timeout', '5000', true),"
    " pg_catalog.set_config('role', {role}, true),"
    " pg_catalog.set_config('litellm_memory.team_id', {team}, true),"
    " pg_catalog.set_config('litellm_memory.user_id', {user}, true),"
    " pg_catalog.set_config('litellm_memory.user_role', '', true)"
)
_GUARD = "SELECT {patch}.begin_request({revision}, {team}, {user}, '', '5000')"


def _messages(conn: psycopg.Connection, key: str, team: str, user: str) -> dict[str, bytes]:
    values = {
        "key": sql.Literal(key), "team": sql.Literal(team), "user": sql.Literal(user),
        "role": sql.Literal(APP_ROLE), "patch": sql.Identifier(PATCH_SCHEMA),
        "revision": sql.Literal(head_revision()),
    }
    statement = sql.SQL(_STATEMENT).format(**values)
    parts = {
        "plain": [statement],
        "start without the check": [sql.SQL(_SETTINGS).format(**values), statement],
        "guard": [sql.SQL(_GUARD).format(**values), statement],
    }
    return {name: sql.SQL("; ").join(message).as_bytes(conn) for name, message in parts.items()}


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
