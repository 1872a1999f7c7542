"""The common deployments, by who logs in: each migrates from the README alone and the proxy
serves, or the one-line error names whose privilege is missing and the statement that gives it.

- a superuser migrates, the proxy logs in as the non-superuser that owns LiteLLM's tables;
- that owner migrates itself: without CREATEROLE it is told to get it, with it it succeeds;
- the proxy logs in as a role that owns nothing: ``migrate --grant-to`` names it;
- a login that cannot switch: the 503 and the start-up line name it and the GRANT to run.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest
from psycopg import sql

from conftest import create_database
from identity_auth import api_key
from litellm_memory_patch import doctor, embedded, migrator
from litellm_memory_patch.config import APP_ROLE, parse_database_url
from test_cli import assert_one_line_error, run_cli

CALLER = api_key(team="team-a", user="user-1")


def _as(url: str, role: str) -> str:
    """The same database URL, logging in as ``role`` (the embedded server trusts the socket)."""
    login = url.replace("postgresql://postgres:@", f"postgresql://{role}@", 1)
    assert login != url, "the test server URL is expected to log in as postgres"
    return login


def _role(admin_url: str, attributes: str = "") -> str:
    name = f"login_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN " + attributes).format(sql.Identifier(name)))
    return name


def _owned_database(admin_url: str, owner: str) -> str:
    """A new database with LiteLLM's tables, all owned by ``owner``; the superuser URL."""
    url = create_database(admin_url)
    name = url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
        )
    embedded.apply_litellm_schema(_as(url, owner))
    return url


def _serves(proxy_session, login_url: str, monkeypatch) -> None:
    proxy_session.install(parse_database_url(login_url), monkeypatch)
    try:
        answer = proxy_session.request("PUT", "/v1/memory/k", key=CALLER, json={"value": "v"})
        assert answer.status_code == 200, answer.text
        assert proxy_session.request("GET", "/v1/memory/k", key=CALLER).status_code == 200
    finally:
        proxy_session.close_store()


def _doctor_ok(login_url: str) -> None:
    failing = [c for c in doctor.run_checks(parse_database_url(login_url)) if c.status == doctor.FAIL]
    assert failing == []


@pytest.fixture
def private_server_url(tmp_path):
    """A server of our own: the restricted role must not exist yet."""
    server = embedded.start_server(tmp_path / "pgdata")
    yield server.get_uri()
    server.cleanup()


def test_owner_without_createrole_is_told_to_get_it_then_a_superuser_migrate_serves_it(
    private_server_url, proxy_session, monkeypatch
):
    owner = _role(private_server_url)
    url = _owned_database(private_server_url, owner)
    refused = run_cli("--database-url", _as(url, owner), "migrate")
    line = assert_one_line_error(refused, f"ALTER ROLE {owner} CREATEROLE", "as a superuser")
    assert refused.returncode == 1 and "permission denied" not in line

    # The superuser's migrate lets the table's owner switch: no manual step.
    assert run_cli("--database-url", url, "migrate").returncode == 0
    _doctor_ok(_as(url, owner))
    _serves(proxy_session, _as(url, owner), monkeypatch)


def test_owner_with_createrole_migrates_itself_and_serves(private_server_url, proxy_session, monkeypatch):
    # PostgreSQL 16 gives the creator of a role ADMIN on it, not the right to SET it.
    owner = _role(private_server_url, "CREATEROLE")
    url = _owned_database(private_server_url, owner)
    migrate = run_cli("--database-url", _as(url, owner), "migrate")
    assert migrate.returncode == 0, migrate.stderr
    _doctor_ok(_as(url, owner))
    _serves(proxy_session, _as(url, owner), monkeypatch)


def test_owner_after_a_superuser_is_told_whose_schema_it_is(server_url, migrated_db):
    owner = _role(server_url)
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL('ALTER TABLE "LiteLLM_MemoryTable" OWNER TO {}').format(sql.Identifier(owner)))
    for command in ("migrate", "downgrade"):
        assert_one_line_error(
            run_cli("--database-url", _as(migrated_db.conninfo, owner), command),
            "litellm_memory_patch belongs to postgres", "as postgres or as a superuser",
        )


def test_owner_that_may_not_grant_the_existing_role_is_given_the_grant(server_url, litellm_db):
    # The restricted role exists on the shared server, created by a superuser.
    migrator.upgrade(litellm_db)
    owner = _role(server_url)
    url = _owned_database(server_url, owner)
    assert_one_line_error(
        run_cli("--database-url", _as(url, owner), "migrate"),
        f'GRANT {APP_ROLE} TO "{owner}";', "as a superuser",
    )


def test_grant_to_names_a_proxy_login_that_owns_nothing(server_url, litellm_db, proxy_session, monkeypatch):
    proxy_login = _role(server_url)
    migrate = run_cli("--database-url", litellm_db.conninfo, "migrate", "--grant-to", proxy_login)
    assert migrate.returncode == 0, migrate.stderr
    _doctor_ok(_as(litellm_db.conninfo, proxy_login))
    _serves(proxy_session, _as(litellm_db.conninfo, proxy_login), monkeypatch)


def test_grant_to_an_unknown_role_is_one_line(litellm_db):
    assert_one_line_error(
        run_cli("--database-url", litellm_db.conninfo, "migrate", "--grant-to", "no_such_login"),
        "--grant-to names role no_such_login, which does not exist",
    )


def test_a_login_that_cannot_switch_is_named_with_the_grant(
    server_url, migrated_db, proxy_session, monkeypatch, caplog
):
    stranger = _role(server_url)
    login_url = _as(migrated_db.conninfo, stranger)
    grant = f'GRANT {APP_ROLE} TO "{stranger}";'
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="litellm_memory_patch"):
        proxy_session.install(parse_database_url(login_url), monkeypatch)
    try:
        start_up = [r.getMessage() for r in caplog.records if "NOT serving" in r.getMessage()]
        assert len(start_up) == 1 and grant in start_up[0], start_up
        answer = proxy_session.request("GET", "/v1/memory/k", key=CALLER)
        assert answer.status_code == 503
        assert grant in answer.json()["detail"] and "migrate --grant-to" in answer.json()["detail"]
    finally:
        proxy_session.close_store()
    checks = {c.name: c for c in doctor.run_checks(parse_database_url(login_url))}
    assert checks["role switch"].status == doctor.FAIL and grant in checks["role switch"].detail
    for name in ("request guard", "canary"):
        assert doctor.MIGRATE_HINT not in checks[name].detail, checks[name].detail

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL(grant.rstrip(";")))
    _serves(proxy_session, login_url, monkeypatch)


def test_doctor_says_it_checks_its_own_login_role(migrated_db):
    result = run_cli("--database-url", migrated_db.conninfo, "doctor")
    assert "run it with the proxy's own database URL" in result.stdout
