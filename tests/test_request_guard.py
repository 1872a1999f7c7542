"""Every request proves the database layer is in place, and no statement runs outside it.

With the proxy serving, each way of weakening or removing the database side turns the next
memory request into a 503 that names the problem and ``doctor``, and the first request after
``migrate`` repairs it is served again; writes refused that way change nothing. The store's
own API never sends a statement without the request's start before it, even when composing
the message failed half-way.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from identity_auth import api_key
from litellm_memory_patch import migrator
from litellm_memory_patch.config import PATCH_SCHEMA
from litellm_memory_patch.migrations import enforcement
from litellm_memory_patch.scope import CallerScope

TABLE = '"LiteLLM_MemoryTable"'
CALLER = api_key(team="team-a", user="user-1")

# change -> what the 503 names
CHANGES = {
    "downgrade to 0001": ("0001_ownership", "not set up in this database"),
    "downgrade to 0002": ("0002_row_level_security", "not set up in this database"),
    "disable": (f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY", "row-level security is disabled"),
    "no force": (f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY", "not forced"),
    "drop a policy": (f"DROP POLICY litellm_memory_delete ON {TABLE}", "policies"),
    "open a policy": (f"ALTER POLICY litellm_memory_select ON {TABLE} USING (true)", "policies"),
    "extra policy": (
        f"CREATE POLICY wide ON {TABLE} FOR SELECT TO litellm_memory_app USING (true)", "policies",
    ),
    "disable the trigger": (
        f"ALTER TABLE {TABLE} DISABLE TRIGGER {enforcement.TRIGGER_NAME}", "trigger",
    ),
    "replace a function": (
        f"CREATE OR REPLACE FUNCTION {PATCH_SCHEMA}.session_is_admin() RETURNS boolean"
        " LANGUAGE sql STABLE AS 'SELECT true'",
        "function",
    ),
    "revision moved by hand": (
        f"UPDATE {PATCH_SCHEMA}.alembic_version SET version_num = '0002_row_level_security'",
        "revision",
    ),
    "role bypasses row-level security": (
        "ALTER ROLE litellm_memory_app BYPASSRLS", "not bound by row-level security",
    ),
}


def _apply(target, change: str) -> None:
    if change.startswith("0"):
        migrator.downgrade(target, revision=change)
        return
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(change)


def _rows(target) -> int:
    with psycopg.connect(target.conninfo) as conn:
        return conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]


@pytest.mark.parametrize("name", CHANGES, ids=str)
def test_the_next_request_answers_503_and_the_first_after_repair_200(proxy, name):
    change, named = CHANGES[name]
    assert proxy.request("PUT", "/v1/memory/k", key=CALLER, json={"value": "v"}).status_code == 200
    _apply(proxy.database, change)

    for method, body in (("GET", None), ("PUT", {"value": "changed"}), ("DELETE", None)):
        answer = proxy.request(method, "/v1/memory/k", key=CALLER, json=body)
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert named in detail and "litellm-memory-patch doctor" in detail
        assert "LiteLLM_MemoryTable" not in detail
    created = proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "new", "value": "v"})
    assert created.status_code == 503
    assert _rows(proxy.database) == 1

    if name == "role bypasses row-level security":
        _apply(proxy.database, "ALTER ROLE litellm_memory_app NOBYPASSRLS")
    else:
        migrator.upgrade(proxy.database)
    answer = proxy.request("GET", "/v1/memory/k", key=CALLER)
    assert answer.status_code == 200 and answer.json()["value"] == "v"


def test_a_statement_never_goes_out_without_the_start(proxy):
    """Composing the first message fails (a lone surrogate cannot be encoded); the next
    statement of the same request must still travel behind the check and the role switch."""
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (memory_id, key, value, team_id, user_id)"
            " VALUES ('a', 'team-a-secret', 'v', 'team-a', 'user-1')"
        )
    store = proxy.app.state.litellm_memory_store
    forged = sql.SQL("TRUE")  # a handler bug: no filter at all

    async def attempt():
        async with store.transaction(CallerScope("team-b", "user-1", None)) as tx:
            with pytest.raises(UnicodeEncodeError):
                await tx.find("\ud800", where=forged)
            return await tx.find("team-a-secret", where=forged, last=True)

    assert proxy.call(attempt) is None


def test_the_request_resolves_names_in_pg_catalog_only(proxy):
    """The start pins search_path for the rest of the request's transaction."""
    store = proxy.app.state.litellm_memory_store

    async def path():
        async with store.transaction(CallerScope("team-a", "user-1", None)) as tx:
            ((row,),) = await tx._run(
                sql.SQL("SELECT current_setting('search_path') AS path, current_user AS role"),
                last=True,
            )
            return row

    assert proxy.call(path) == {"path": "pg_catalog, pg_temp", "role": "litellm_memory_app"}
