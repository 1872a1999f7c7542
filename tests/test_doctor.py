"""doctor compares every enforcement object by content, and `migrate` repairs what it names.

Each case weakens the database side by hand, the way the review did, and checks that doctor
fails naming the object, and passes again after the repair the failure names.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from litellm_memory_patch import doctor, migrator
from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA
from litellm_memory_patch.migrations import enforcement
from test_cli import run_cli
from test_request_guard import CHANGES

TABLE = '"LiteLLM_MemoryTable"'
SELECT_POLICY = enforcement.policies()[0]
MIGRATE = "migrate"
MIGRATE_REPAIR = "repair: litellm-memory-patch migrate"

SABOTAGE = {
    "update policy opened": (
        f"ALTER POLICY litellm_memory_update ON {TABLE} USING (true) WITH CHECK (true)",
        "policy litellm_memory_update", MIGRATE,
    ),
    "delete policy opened": (
        f"ALTER POLICY litellm_memory_delete ON {TABLE} USING (true)",
        "policy litellm_memory_delete", MIGRATE,
    ),
    "insert policy opened": (
        f"ALTER POLICY litellm_memory_insert ON {TABLE} WITH CHECK (true)",
        "policy litellm_memory_insert", MIGRATE,
    ),
    "select policy widened": (
        f"ALTER POLICY litellm_memory_select ON {TABLE} USING ({SELECT_POLICY.using} OR user_id IS NULL)",
        "policy litellm_memory_select", MIGRATE,
    ),
    "a fifth policy": (
        f"CREATE POLICY wide_open ON {TABLE} FOR SELECT TO {APP_ROLE} USING (true)",
        "policy wide_open", MIGRATE,
    ),
    "team admin always": (
        f"CREATE OR REPLACE FUNCTION {PATCH_SCHEMA}.session_is_team_admin() RETURNS boolean"
        " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT true'",
        "function session_is_team_admin()", MIGRATE,
    ),
    "function lost its search_path": (
        f"ALTER FUNCTION {PATCH_SCHEMA}.enforce_ownership() RESET search_path",
        "function enforce_ownership()", MIGRATE,
    ),
    "trigger disabled": (
        f"ALTER TABLE {TABLE} DISABLE TRIGGER {enforcement.TRIGGER_NAME}",
        f"trigger {enforcement.TRIGGER_NAME}", MIGRATE,
    ),
    "row-level security not forced": (
        f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY", "row-level security", MIGRATE,
    ),
    "member of the login role": (
        f"GRANT postgres TO {APP_ROLE}", "restricted role memberships", MIGRATE,
    ),
    "made the table's owner": (
        f"ALTER TABLE {TABLE} OWNER TO {APP_ROLE}",
        "restricted role memberships", f"ALTER TABLE {TABLE} OWNER TO postgres",
    ),
    "role may bypass row-level security": (
        f"ALTER ROLE {APP_ROLE} BYPASSRLS", "restricted role", f"ALTER ROLE {APP_ROLE} NOBYPASSRLS",
    ),
    "extra grant": (f"GRANT TRUNCATE ON {TABLE} TO {APP_ROLE}", "table grants", MIGRATE),
    "PUBLIC may read the table": (f"GRANT SELECT ON {TABLE} TO PUBLIC", "table grants", MIGRATE),
    # CREATE OR REPLACE keeps an owner: migrate must write it.
    "function changed hands": (
        "DO $$BEGIN CREATE ROLE litellm_memory_someone_else; EXCEPTION WHEN duplicate_object THEN"
        f" NULL; END$$; ALTER FUNCTION {PATCH_SCHEMA}.session_is_team_admin()"
        " OWNER TO litellm_memory_someone_else",
        "function session_is_team_admin()", MIGRATE,
    ),
    "schema made over to the restricted role": (
        f"ALTER SCHEMA {PATCH_SCHEMA} OWNER TO {APP_ROLE}", "restricted role memberships", MIGRATE,
    ),
    "trigger enabled for the origin role only": (
        CHANGES["trigger enabled for the origin role only"][0],
        f"trigger {enforcement.TRIGGER_NAME}", MIGRATE,
    ),
    "a rule": (CHANGES["a rule"][0], "rules and triggers", MIGRATE),
    "a trigger before inserts": (CHANGES["a trigger before inserts"][0], "rules and triggers", MIGRATE),
    "an overload of begin_request": (
        CHANGES["an overload of begin_request"][0], "function begin_request()", MIGRATE,
    ),
    "EXECUTE revoked": (CHANGES["EXECUTE revoked"][0], "function session_team_id()", MIGRATE),
    "restored in one transaction": (
        CHANGES["restored in one transaction"][0], "policy litellm_memory_select", MIGRATE,
    ),
}


def failing(checks: list[doctor.Check]) -> dict[str, str]:
    return {check.name: check.detail for check in checks if check.status == doctor.FAIL}


def test_a_fresh_migration_passes_every_check(migrated_db):
    checks = doctor.run_checks(migrated_db)
    assert failing(checks) == {}
    assert {check.name for check in checks} >= {
        f"policy {policy.name}" for policy in enforcement.policies()
    } | {f"function {function.name}()" for function in enforcement.functions("public", revision=migrator.head_revision())}


@pytest.mark.parametrize("case", SABOTAGE, ids=str)
def test_doctor_names_each_weakening_and_passes_after_the_repair(migrated_db, case):
    statement, check, repair = SABOTAGE[case]
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        if callable(statement):
            statement(migrated_db)
        else:
            conn.execute(statement)
        failed = failing(doctor.run_checks(migrated_db))
        assert check in failed, failed
        # The failure says how to repair it: migrate, or what does where migrate cannot.
        if repair == MIGRATE:
            assert MIGRATE_REPAIR in failed[check]
        else:
            assert "repair" in failed[check] and MIGRATE_REPAIR not in failed[check]
        if repair == MIGRATE:
            migrator.upgrade(migrated_db)
        else:
            conn.execute(repair)
            if case == "made the table's owner":
                migrator.upgrade(migrated_db)  # the grants the ownership change took along
    assert failing(doctor.run_checks(migrated_db)) == {}


def test_an_after_trigger_is_named_in_a_warning(migrated_db):
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RETURN NULL; END$$;"
            f" CREATE TRIGGER audit_writes AFTER INSERT OR UPDATE ON {TABLE}"
            " FOR EACH ROW EXECUTE FUNCTION public.audit()"
        )
    checks = {check.name: check for check in doctor.run_checks(migrated_db)}
    assert checks["after triggers"].status == doctor.WARN
    assert "audit_writes" in checks["after triggers"].detail
    assert checks["rules and triggers"].status == doctor.OK
    assert failing(list(checks.values())) == {}


def test_a_rule_dropped_leaves_a_warning_until_the_table_is_vacuumed(migrated_db):
    """relhasrules outlives the last rule: requests are served, through the slower path."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(SABOTAGE["a rule"][0])
        migrator.upgrade(migrated_db)
        checks = {check.name: check for check in doctor.run_checks(migrated_db)}
        assert checks["rules flag"].status == doctor.WARN and "VACUUM" in checks["rules flag"].detail
        assert failing(list(checks.values())) == {}
        conn.execute(f"VACUUM {TABLE}")
    assert "rules flag" not in {check.name for check in doctor.run_checks(migrated_db)}


def test_json_carries_the_per_object_results(migrated_db):
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(SABOTAGE["update policy opened"][0])
    result = run_cli("--database-url", migrated_db.conninfo, "doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["policy litellm_memory_update"] == "fail"
    assert statuses["policy litellm_memory_select"] == "ok"
    assert statuses["request guard"] == "fail"
    assert statuses["canary"] == "fail"


def test_the_canary_sees_a_proxy_admin_team_key_reaching_another_team(migrated_db):
    # The select policy as it was before the team-first rule: the role decided alone.
    role_first = (
        "coalesce(current_setting('litellm_memory.user_role', true) = 'proxy_admin', false)"
        f" OR {SELECT_POLICY.using}"
    )
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(f"ALTER POLICY litellm_memory_select ON {TABLE} USING ({role_first})")
    canary = failing(doctor.run_checks(migrated_db))["canary"]
    assert "a proxy admin's key of another team reaches rows" in canary
