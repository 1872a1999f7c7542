"""Every request proves the database layer is in place, and no statement runs outside it.

With the proxy serving, each way of weakening or removing the database side turns the next
memory request into a 503 that names the problem and ``doctor``, and the first request after
``migrate`` repairs it is served again; writes refused that way change nothing. The store's
own API never sends a statement without the request's start before it, even when composing
the message failed half-way.
"""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from psycopg import sql

from identity_auth import api_key
from litellm_memory_patch import doctor, migrator
from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA
from litellm_memory_patch.migrations import enforcement
from litellm_memory_patch.scope import CallerScope
from litellm_memory_patch.store import visibility

TABLE = '"LiteLLM_MemoryTable"'
CALLER = api_key(team="team-a", user="user-1")


def restore_in_one_transaction(target) -> None:
    """What restoring a dump with ``psql -1`` does to the protection: every object written
    again by one transaction, here from a copy whose select policy lets every row through."""
    with psycopg.connect(target.conninfo) as conn:  # one transaction, committed at the end
        for (definition,) in conn.execute(
            "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = %s::regnamespace",
            (PATCH_SCHEMA,),
        ).fetchall():
            conn.execute(definition)
        for policy in enforcement.policies():
            conn.execute(f"DROP POLICY {policy.name} ON {TABLE}")
            if policy.command == "SELECT":
                policy = dataclasses.replace(policy, using="true")
            conn.execute(enforcement.create_policy_sql(policy, TABLE))
        (trigger,) = conn.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = %s",
            (enforcement.TRIGGER_NAME,),
        ).fetchone()
        conn.execute(f"DROP TRIGGER {enforcement.TRIGGER_NAME} ON {TABLE}")
        conn.execute(trigger)
        conn.execute(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {enforcement.TRIGGER_NAME}")


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
    "role bypasses row-level security": (
        "ALTER ROLE litellm_memory_app BYPASSRLS", "not bound by row-level security",
    ),
    # Replica mode would switch off a trigger enabled for the origin role only.
    "trigger enabled for the origin role only": (
        f"ALTER TABLE {TABLE} ENABLE TRIGGER {enforcement.TRIGGER_NAME}", "every replication role",
    ),
    # INSERT ... ON CONFLICT refuses a table with rules: every write answered 500.
    "a rule": (
        f"CREATE RULE notify_update AS ON UPDATE TO {TABLE} DO ALSO NOTIFY memory_changed",
        "rule (notify_update)",
    ),
    # Runs with its owner's rights after the policies let the insert through.
    "a trigger before inserts": (
        "CREATE FUNCTION public.overwrite() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS"
        f" $$BEGIN UPDATE {TABLE} SET value = 'OVERWRITTEN' WHERE key = NEW.key; RETURN NEW; END$$;"
        f" CREATE TRIGGER overwrite BEFORE INSERT ON {TABLE}"
        " FOR EACH ROW EXECUTE FUNCTION public.overwrite()",
        "trigger overwrite",
    ),
    # The request's start cannot even be called: the call is ambiguous.
    "an overload of begin_request": (
        f"CREATE FUNCTION {PATCH_SCHEMA}.begin_request(revision text, team_id text, user_id text,"
        " user_role text, statement_timeout text, extra text DEFAULT '') RETURNS void"
        " LANGUAGE sql AS ''",
        "begin_request",
    ),
    "EXECUTE revoked": (
        f"REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {PATCH_SCHEMA} FROM PUBLIC",
        "EXECUTE on function litellm_memory_patch.session_",
    ),
    # Every object written by one transaction, but not the one migrate recorded in the guard.
    "restored in one transaction": (restore_in_one_transaction, "a restore from a dump"),
}


def _apply(target, change) -> None:
    if callable(change):
        change(target)
        return
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


def test_a_proxy_of_another_version_answers_503(proxy, monkeypatch):
    """The guard was written for the revision migrate reached; a proxy expecting another one
    (an older or newer package than the database's migration) is refused."""
    store = proxy.app.state.litellm_memory_store
    monkeypatch.setattr(store, "_revision", "0002_row_level_security")
    answer = proxy.request("GET", "/v1/memory/k", key=CALLER)
    assert answer.status_code == 503
    assert "another version of the patch" in answer.json()["detail"]
    monkeypatch.undo()
    assert proxy.request("GET", "/v1/memory/k", key=CALLER).status_code == 404


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


def test_row_security_off_in_the_database_changes_no_answer(proxy, monkeypatch):
    """row_security = off makes a query that a policy would filter fail instead: the guard
    turns it on for the request's transaction, as the protection means it."""
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET row_security = off").format(sql.Identifier(conn.info.dbname))
        )
    # New connections only take the database's settings.
    proxy.close_store()
    proxy.install(proxy.database, monkeypatch)

    created = proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "k", "value": "v"})
    assert created.status_code == 200, created.text
    answer = proxy.request("GET", "/v1/memory/k", key=CALLER)
    assert answer.status_code == 200 and answer.json()["value"] == "v"
    other_team = api_key(team="team-b", user="user-1")
    assert proxy.request("GET", "/v1/memory/k", key=other_team).status_code == 404
    assert [c for c in doctor.run_checks(proxy.database) if c.status == doctor.FAIL] == []


def test_a_role_change_committed_mid_request_reaches_the_rest_of_it_but_not_past_the_filter(proxy):
    """The guard checks once, at the request's start. A role change committed after that takes
    no lock on the table, so the request's later statements run under it; the handlers' own
    filter is what still holds them."""
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (memory_id, key, value, team_id, user_id)"
            " VALUES ('a', 'team-a-secret', 'v', 'team-a', 'user-1')"
        )
    store = proxy.app.state.litellm_memory_store
    scope = CallerScope("team-b", "user-1", None)

    async def request():
        async with store.transaction(scope) as tx:
            before = await tx.find("team-a-secret", where=sql.SQL("TRUE"))
            with psycopg.connect(proxy.database.conninfo, autocommit=True) as other:
                other.execute(f"ALTER ROLE {APP_ROLE} BYPASSRLS")
            forged = await tx.find("team-a-secret", where=sql.SQL("TRUE"))
            filtered = await tx.find("team-a-secret", where=visibility(scope), last=True)
            return before, forged, filtered

    try:
        before, forged, filtered = proxy.call(request)
    finally:
        with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {APP_ROLE} NOBYPASSRLS")
    assert before is None  # the database alone held the statement before the change
    assert forged is not None and forged.team_id == "team-a"  # and not after it
    assert filtered is None
