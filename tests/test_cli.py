"""The console script, run as a real subprocess: each command and each error a user can meet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from litellm_memory_patch import migrator
from litellm_memory_patch.migrations import enforcement


PROG = "litellm-memory-patch"
CHECK_NAMES = [
    "memory table",
    "revision",
    "row-level security",
    *(f"policy {policy.name}" for policy in enforcement.policies()),
    *(f"function {function.name}()" for function in enforcement.functions("public", revision=migrator.head_revision())),
    f"trigger {enforcement.TRIGGER_NAME}",
    "rules and triggers",
    "restricted role",
    "restricted role memberships",
    "role switch",
    "login role",
    "table grants",
    "known schema",
    "request guard",
    "canary",
]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # LiteLLM's own variable must not leak in: only --database-url names the database here.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "LITELLM_MEMORY_DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "litellm_memory_patch.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{PROG}: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def doctor_json(url: str) -> tuple[int, dict]:
    result = run_cli("--database-url", url, "doctor", "--json")
    return result.returncode, json.loads(result.stdout)


def test_sql_needs_no_database():
    result = run_cli("sql")
    assert result.returncode == 0, result.stderr
    # 0002 creates the policies, and 0003 and 0004 write every enforcement object anew.
    assert result.stdout.count("CREATE POLICY") == 12
    # Alembic's terminator is not doubled after statements that carry their own.
    assert ";;" not in result.stdout
    assert "begin_request" in result.stdout
    assert '"public"."LiteLLM_MemoryTable"' in result.stdout


def test_sql_takes_the_schema_from_the_url_without_connecting():
    result = run_cli("sql", "--database-url", "postgresql://nowhere.invalid:1/db?schema=litellm")
    assert result.returncode == 0, result.stderr
    assert '"litellm"."LiteLLM_MemoryTable"' in result.stdout
    assert run_cli("sql", "--schema", "other").stdout.count('"other"."LiteLLM_MemoryTable"') > 1


def test_sql_refuses_a_schema_name_no_identifier_can_hold():
    assert_one_line_error(run_cli("sql", "--schema", ""), "schema name is empty")
    assert_one_line_error(run_cli("sql", "--schema", "n" * 64), "longer than 63 bytes")


def test_sql_quotes_a_hostile_schema_name():
    result = run_cli("sql", "--schema", "x$check$; SELECT 1; DO $check$BEGIN")
    assert result.returncode == 0, result.stderr
    assert '"x$check$; SELECT 1; DO $check$BEGIN"."LiteLLM_MemoryTable"' in result.stdout
    assert "\nDO $check$" not in result.stdout


def test_migrate_doctor_downgrade(litellm_db):
    url = litellm_db.conninfo
    code, report = doctor_json(url)
    assert code == 1 and report["ok"] is False

    migrate = run_cli("--database-url", url, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert migrator.head_revision() in migrate.stdout

    human = run_cli("doctor", "--database-url", url)
    assert human.returncode == 0, human.stdout
    lines = human.stdout.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == CHECK_NAMES + ["overall"]
    # Aligned: the status column starts at the same place on every line.
    assert len({re.search(r"  (OK|WARN|FAIL)\b", line).start() for line in lines}) == 1

    code, report = doctor_json(url)
    assert code == 0 and report["ok"] is True
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert list(statuses) == CHECK_NAMES
    assert statuses["canary"] == "ok"
    # The test login role is a superuser: warned about, not failed.
    assert statuses["login role"] == "warn"
    with psycopg.connect(litellm_db.conninfo) as conn:
        # The canary's row was rolled back.
        assert conn.execute('SELECT count(*) FROM "LiteLLM_MemoryTable"').fetchone()[0] == 0

    downgrade = run_cli("--database-url", url, "downgrade")
    assert downgrade.returncode == 0, downgrade.stderr
    assert "base" in downgrade.stdout
    code, report = doctor_json(url)
    assert code == 1
    assert {check["name"]: check["status"] for check in report["checks"]}["revision"] == "fail"


def test_doctor_names_row_level_security_disabled_by_hand(migrated_db):
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute('ALTER TABLE "LiteLLM_MemoryTable" DISABLE ROW LEVEL SECURITY')
    result = run_cli("--database-url", migrated_db.conninfo, "doctor")
    assert result.returncode == 1
    failing = [line for line in result.stdout.splitlines() if "  FAIL  " in line]
    assert [line.split("  ")[0] for line in failing] == ["row-level security", "request guard", "canary"]
    assert "not enabled" in failing[0]
    assert "row-level security is disabled" in failing[1]
    assert "another team sees rows" in failing[2]
    with psycopg.connect(migrated_db.conninfo) as conn:
        # A failing canary is rolled back too.
        assert conn.execute('SELECT count(*) FROM "LiteLLM_MemoryTable"').fetchone()[0] == 0


def test_unreachable_server_is_one_line_without_the_password():
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/litellm"
    for command in ("migrate", "doctor", "downgrade"):
        line = assert_one_line_error(run_cli("--database-url", url, command), "cannot connect")
        assert "s3cret-pw" not in line


def test_unknown_database_is_one_line(server_url):
    url = server_url.replace("/postgres?", f"/missing_{uuid.uuid4().hex[:8]}?")
    assert url != server_url
    assert_one_line_error(run_cli("--database-url", url, "migrate"), "cannot connect", "does not exist")


def test_no_database_url_is_one_line():
    assert_one_line_error(run_cli("migrate"), "--database-url", "LITELLM_MEMORY_DATABASE_URL")


def test_missing_memory_table_prints_message_and_hint(litellm_db):
    with psycopg.connect(litellm_db.conninfo) as conn:
        conn.execute('DROP TABLE "LiteLLM_MemoryTable"')
    assert_one_line_error(
        run_cli("--database-url", litellm_db.conninfo, "migrate"),
        "memory table is not in schema public",
        "1.83.14",
        "?schema=",
    )


def test_missing_privilege_is_one_line(server_url, litellm_db):
    role = f"stranger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    url = litellm_db.conninfo.replace("postgresql://postgres:@", f"postgresql://{role}@", 1)
    assert url != litellm_db.conninfo
    assert_one_line_error(
        run_cli("--database-url", url, "migrate"),
        f"{role} does not own LiteLLM's memory table", "run migrate as postgres or as a superuser",
    )


def test_busy_table_says_nothing_changed(litellm_db):
    with psycopg.connect(litellm_db.conninfo) as holder:
        holder.execute('LOCK TABLE "LiteLLM_MemoryTable" IN ACCESS EXCLUSIVE MODE')
        result = run_cli("--database-url", litellm_db.conninfo, "migrate", "--lock-timeout", "1")
        holder.rollback()
    assert_one_line_error(result, "busy", "nothing was changed", "retry")


@pytest.mark.parametrize("args", [["--help"], ["migrate", "--help"], ["doctor", "--help"]])
def test_help(args):
    result = run_cli(*args)
    assert result.returncode == 0
    assert "--database-url" in result.stdout
