"""Every error an operator meets is one line that names the next right step, and the commands do
what the README and SECURITY.md say they do (rollback, the SQL script, psql, the CLI's options).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import uuid
from pathlib import Path

import pgserver
import psycopg
import pytest
from psycopg import sql

from conftest import create_database
from identity_auth import api_key
from litellm_memory_patch import doctor, embedded, migrator
from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, parse_database_url
from litellm_memory_patch.store import LOGIN_REFUSED
from test_cli import PROG, assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
CALLER = api_key(team="team-a", user="user-1")


def _usage_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    line = assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    assert "--help" in line
    return line


def _patch_schema_exists(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (PATCH_SCHEMA,)
        ).fetchone()[0] == 1


# -- downgrade ------------------------------------------------------------------------------


def test_downgrade_help_lists_the_revisions():
    result = run_cli("downgrade", "--help")
    assert result.returncode == 0
    for revision in ["base", *migrator.revisions()[:-1]]:
        assert revision in result.stdout


@pytest.mark.parametrize("revision", ["0009_nope", "head"])
def test_downgrade_to_an_unknown_revision_is_a_usage_error(migrated_db, revision):
    line = _usage_error(
        run_cli("--database-url", migrated_db.conninfo, "downgrade", revision), "invalid choice"
    )
    assert "0001_ownership" in line


def test_downgrade_to_a_revision_above_the_database_is_one_line(litellm_db):
    migrator.upgrade(litellm_db, revision="0002_row_level_security")
    result = run_cli("--database-url", litellm_db.conninfo, "downgrade", "0003_request_guard")
    assert_one_line_error(result, "cannot go back to 0003_request_guard", "downgrade --help")
    assert result.returncode == 1


def test_downgrade_to_base_leaves_nothing_and_migrate_works_again(migrated_db):
    assert run_cli("--database-url", migrated_db.conninfo, "downgrade").returncode == 0
    assert not _patch_schema_exists(migrated_db.conninfo)
    assert run_cli("--database-url", migrated_db.conninfo, "migrate").returncode == 0


def test_downgrade_of_a_database_never_migrated_changes_nothing(server_url):
    url = create_database(server_url)  # not even LiteLLM's tables
    result = run_cli("--database-url", url, "downgrade")
    assert result.returncode == 0, result.stderr
    assert "nothing to downgrade" in result.stdout
    assert not _patch_schema_exists(url)


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-3", "0", "nan", "inf", "soon"])
def test_lock_timeout_out_of_range_is_a_usage_error(value):
    _usage_error(run_cli("migrate", f"--lock-timeout={value}"), "--lock-timeout", "at least 0.001")


def test_usage_errors_are_one_line_with_status_2():
    _usage_error(run_cli("migrate", "--no-such-option"), "unrecognized arguments")
    _usage_error(run_cli(), "COMMAND")


def test_database_url_given_twice_is_refused():
    _usage_error(
        run_cli("--database-url", "postgresql://a/b", "doctor", "--database-url", "postgresql://c/d"),
        "--database-url given twice",
    )


def test_the_demo_takes_no_database_url():
    assert "--database-url" not in run_cli("demo", "--help").stdout
    _usage_error(run_cli("--database-url", "postgresql://a/b", "demo"), "takes no --database-url")
    _usage_error(
        run_cli("--database-url", "postgresql://a/b", "verify", "--key-1", "a", "--key-2", "b"),
        "takes no --database-url",
    )


def test_version():
    from litellm_memory_patch import __version__

    result = run_cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"{PROG} {__version__}")


# -- LiteLLM's schema named by ?schema= ------------------------------------------------------


@pytest.fixture
def litellm_schema_db(server_url) -> str:
    """LiteLLM's tables in schema ``litellm``, migrated through a URL that says so."""
    url = create_database(server_url)
    embedded.apply_litellm_schema(url, schema="litellm")
    migrator.upgrade(parse_database_url(f"{url}&schema=litellm"))
    return url


@pytest.mark.parametrize("query", ["", "&schema=nosuch"])
def test_a_url_without_the_right_schema_points_at_it(litellm_schema_db, query):
    url = litellm_schema_db + query
    for command in ("migrate", "downgrade"):
        assert_one_line_error(run_cli("--database-url", url, command), "?schema=", "found in: litellm")
    checks = doctor.run_checks(parse_database_url(url))
    assert checks[0].status == doctor.FAIL and "?schema=" in checks[0].detail


def test_a_second_schema_of_one_database_is_refused(litellm_schema_db):
    # A memory table in public too; the patch protects litellm's.
    with psycopg.connect(litellm_schema_db, autocommit=True) as conn:
        conn.execute('CREATE TABLE public."LiteLLM_MemoryTable" (LIKE litellm."LiteLLM_MemoryTable")')
    assert_one_line_error(
        run_cli("--database-url", litellm_schema_db, "migrate"),
        "migrated for LiteLLM's schema litellm, not public", "?schema=litellm",
    )
    revision = {c.name: c for c in doctor.run_checks(parse_database_url(litellm_schema_db))}["revision"]
    assert revision.status == doctor.FAIL and "?schema=litellm" in revision.detail


def test_the_proxy_with_a_url_without_the_schema_points_at_it(litellm_schema_db, proxy_session, monkeypatch):
    proxy_session.install(parse_database_url(litellm_schema_db), monkeypatch)
    try:
        answer = proxy_session.request("GET", "/v1/memory/k", key=CALLER)
        assert answer.status_code == 503 and "?schema=" in answer.json()["detail"]
    finally:
        proxy_session.close_store()


# -- the restricted role given powers by hand ------------------------------------------------


def test_a_superuser_migrate_takes_powers_from_the_restricted_role(server_url, migrated_db):
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {APP_ROLE} BYPASSRLS")
    try:
        checks = {c.name: c for c in doctor.run_checks(migrated_db)}
        assert checks["restricted role"].status == doctor.FAIL
        for name in ("request guard", "canary"):
            # migrate as the owner cannot take BYPASSRLS away: doctor does not suggest it.
            assert checks[name].status == doctor.FAIL
            assert doctor.MIGRATE_HINT not in checks[name].detail
            assert "restricted role" in checks[name].detail
        assert run_cli("--database-url", migrated_db.conninfo, "migrate").returncode == 0
        assert [c for c in doctor.run_checks(migrated_db) if c.status == doctor.FAIL] == []
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {APP_ROLE} NOBYPASSRLS")


def test_an_owner_migrate_names_the_statement_for_a_superuser(server_url, migrated_db):
    owner = f"owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(owner)))
        conn.execute(f"ALTER ROLE {APP_ROLE} BYPASSRLS")
    try:
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
                sql.Identifier(PATCH_SCHEMA), sql.Identifier(owner)))
            conn.execute(sql.SQL('ALTER TABLE "LiteLLM_MemoryTable" OWNER TO {}').format(
                sql.Identifier(owner)))
        owner_url = migrated_db.conninfo.replace("postgresql://postgres:@", f"postgresql://{owner}@", 1)
        assert_one_line_error(
            run_cli("--database-url", owner_url, "migrate"), f"ALTER ROLE {APP_ROLE} NOBYPASSRLS"
        )
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {APP_ROLE} NOBYPASSRLS")


# -- doctor as a role without the privileges -------------------------------------------------


def test_doctor_as_a_role_without_privileges_says_so(server_url, migrated_db):
    stranger = f"stranger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stranger)))
    url = migrated_db.conninfo.replace("postgresql://postgres:@", f"postgresql://{stranger}@", 1)
    failing = [c for c in doctor.run_checks(parse_database_url(url)) if c.status == doctor.FAIL]
    assert failing
    for check in failing:
        assert doctor.MIGRATE_HINT not in check.detail, check
        assert stranger in check.detail, check


# -- a login the database refuses, in the proxy ----------------------------------------------


@pytest.fixture
def password_server(tmp_path):
    """A private server where the role ``pwlogin`` must give its password."""
    server = embedded.start_server(tmp_path / "pgdata")
    hba = tmp_path / "pgdata" / "pg_hba.conf"
    hba.write_text("local all pwlogin scram-sha-256\n" + hba.read_text())
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE ROLE pwlogin LOGIN PASSWORD 'the-right-one'")
        conn.execute("SELECT pg_reload_conf()")
    yield url
    server.cleanup()


def test_a_wrong_password_answers_authentication_failed_and_logs_once(
    password_server, proxy_session, monkeypatch, caplog
):
    url = password_server.replace("postgresql://postgres:@", "postgresql://pwlogin:not-the-pw-5e1c@", 1)
    monkeypatch.setenv("LITELLM_MEMORY_POOL_TIMEOUT", "1")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        proxy_session.install(parse_database_url(url), monkeypatch)
        try:
            for _ in range(3):
                answer = proxy_session.request("GET", "/v1/memory/k", key=CALLER)
                assert (answer.status_code, answer.json()["detail"]) == (503, LOGIN_REFUSED)
        finally:
            proxy_session.close_store()
    assert "retry" not in LOGIN_REFUSED
    start_up = [r.getMessage() for r in caplog.records if "NOT serving" in r.getMessage()]
    assert len(start_up) == 1 and LOGIN_REFUSED in start_up[0]
    texts = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert texts and len(texts) == len(set(texts)), texts
    assert all("not-the-pw-5e1c" not in text for text in texts)


# -- SECURITY.md's checks by hand, with a Prisma-style URL and a schema other than public -----


def _security_md_sql() -> str:
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    section = text[text.index("## Checking it on your own database"):]
    (shell,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[:1]
    assert 'psql "$(litellm-memory-patch url)" -v schema=' in shell
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)[0]


def test_security_md_checks_run_in_psql_with_a_prisma_url(litellm_schema_db):
    prisma_url = f"{litellm_schema_db}&schema=litellm&pgbouncer=true&connection_limit=3"
    printed = run_cli("--database-url", prisma_url, "url")
    assert printed.returncode == 0, printed.stderr
    libpq_url = printed.stdout.strip()
    assert "schema=" not in libpq_url and "pgbouncer" not in libpq_url
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    result = subprocess.run(
        [str(binary), libpq_url, "-v", "ON_ERROR_STOP=1", "-v", "schema=litellm", "-A", "-t"],
        input=_security_md_sql(), capture_output=True, text=True, timeout=60,
        env={**os.environ, "PGOPTIONS": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "t|t" in result.stdout.splitlines()


# -- exposure's memory_read_as, as the README's field table says ------------------------------


def test_exposure_reads_as_the_login_role_for_a_superuser_after_the_migration(migrated_db):
    result = run_cli("--database-url", migrated_db.conninfo, "exposure", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["memory_read_as"] == "login role"
    readme = (ROOT / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `memory_read_as` |")]
    assert "for a superuser login" in row
