"""A managed service's set-up: no superuser, LiteLLM's tables owned by a CREATEROLE role.

On a managed PostgreSQL the operator's own role is not a superuser; it has CREATEROLE and
CREATEDB, creates LiteLLM's database and so owns its tables, and the proxy logs in as it. That
role runs ``migrate`` (which creates the restricted role) and the proxy serves with it.
PostgreSQL 16 changed what CREATEROLE gives: the creator of a role gets ADMIN OPTION on it but
not the right to switch to it, which it must grant itself; before 16 it gets nothing and
CREATEROLE lets it grant any role. scripts/test.py runs this on both sides of that change.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from conftest import private_server, url_for_database
from identity_auth import api_key
from litellm_memory_patch import embedded
from litellm_memory_patch.config import APP_ROLE, parse_database_url
from litellm_memory_patch.routes import PATCH_HEADER
from test_cli import run_cli

OPERATOR = "managed_operator"
DATABASE = "litellm"


@pytest.fixture
def managed(tmp_path):
    """(superuser URL, operator URL) of a server where the restricted role does not exist yet,
    with LiteLLM's database created, and its schema applied, by the operator."""
    with private_server(tmp_path / "pgdata") as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB").format(sql.Identifier(OPERATOR)))
        # Over the Unix socket as that role: the test server trusts local connections.
        operator_server = admin_url.replace("postgresql://postgres:@", f"postgresql://{OPERATOR}@", 1)
        assert operator_server != admin_url, "the test server URL is expected to log in as postgres"
        with psycopg.connect(operator_server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        operator_url = url_for_database(operator_server, DATABASE)
        embedded.apply_litellm_schema(operator_url)
        yield admin_url, operator_url


def test_the_operator_migrates_and_the_proxy_serves_as_it(managed, proxy_session, monkeypatch):
    admin_url, operator_url = managed
    migrated = run_cli("--database-url", operator_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    checked = run_cli("--database-url", operator_url, "doctor")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with psycopg.connect(admin_url, autocommit=True) as conn:
        created_by_operator = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE roleid = %s::regrole AND member = %s::regrole"
            " AND admin_option",
            (APP_ROLE, OPERATOR),
        ).fetchone()[0]
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
    # The change itself: from 16 on, creating the role made the operator its admin.
    assert created_by_operator == (1 if version >= 160000 else 0)
    with psycopg.connect(operator_url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)

    # Serving switches to the restricted role on every request: the operator may do that.
    proxy_session.install(parse_database_url(operator_url), monkeypatch)
    try:
        writer = api_key(team="team-a", user="shared")
        other_team = api_key(team="team-b", user="shared")
        created = proxy_session.request("POST", "/v1/memory", key=writer, json={"key": "plan", "value": "a"})
        assert created.status_code in (200, 201), created.text
        assert created.headers[PATCH_HEADER]
        assert proxy_session.request("GET", "/v1/memory/plan", key=writer).status_code == 200
        assert proxy_session.request("GET", "/v1/memory/plan", key=other_team).status_code == 404
        listed = proxy_session.request("GET", "/v1/memory", key=other_team).json()
        assert listed["memories"] == []
    finally:
        proxy_session.close_store()
