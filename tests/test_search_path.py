"""Nothing the policies, the trigger or the functions run depends on the caller's search_path.

The attack: the proxy's login role has ``search_path = public, pg_catalog``, and another role
may create objects in ``public`` (the default before PostgreSQL 15; granted by hand on 15 and
later). That role creates ``public.current_setting(text, boolean)`` answering ``proxy_admin``.
Had any function the policies use called ``current_setting`` unqualified, a team key would now
read every team's rows. Checked on every tested PostgreSQL version (scripts/test.py).
"""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest

from caller_session import as_caller, insert_row, visible_ids
from conftest import create_database
from identity_auth import api_key
from litellm_memory_patch import embedded, migrator
from litellm_memory_patch.config import parse_database_url

LOGIN_PATH = "public, pg_catalog"
ATTACK = """
CREATE ROLE path_attacker;
GRANT CREATE, USAGE ON SCHEMA public TO path_attacker;
SET LOCAL ROLE path_attacker;
CREATE FUNCTION public.current_setting(text, boolean) RETURNS text
    LANGUAGE sql AS $$ SELECT 'proxy_admin'::text $$;
CREATE FUNCTION public.current_setting(text) RETURNS text
    LANGUAGE sql AS $$ SELECT 'proxy_admin'::text $$;
"""


@pytest.fixture
def attacked(server_url):
    """A migrated database with rows of two teams sharing a user, then the attack."""
    url = create_database(server_url)
    embedded.apply_litellm_schema(url)
    target = parse_database_url(url)
    migrator.upgrade(target)
    with psycopg.connect(url, autocommit=True) as conn:
        with as_caller(conn, role="proxy_admin"):
            insert_row(conn, "a-row", team="team-a", user="shared")
            insert_row(conn, "b-row", team="team-b", user="shared")
        conn.execute("DROP ROLE IF EXISTS path_attacker")
        conn.execute(ATTACK)  # one message: one transaction, which the SET LOCAL ends with
    yield target
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP OWNED BY path_attacker")
        conn.execute("DROP ROLE path_attacker")


def test_policies_ignore_a_shadowing_current_setting(attacked):
    with psycopg.connect(attacked.conninfo, autocommit=True, options=f"-c search_path={LOGIN_PATH.replace(' ', '')}") as conn:
        # The attack is live in this session: unqualified calls reach it.
        assert conn.execute("SELECT current_setting('litellm_memory.user_role', true)").fetchone() == ("proxy_admin",)
        with as_caller(conn, team="team-b", user="shared"):
            assert visible_ids(conn) == {"b-row"}
            # Its own row only: the user it shares with team-a owns a-row too.
            assert conn.execute('DELETE FROM "LiteLLM_MemoryTable"').rowcount == 1
        assert visible_ids(conn) == {"a-row"}  # as the login role, a superuser
        with as_caller(conn, team="team-b", user="shared"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                insert_row(conn, "forged", team="team-a", user="shared")


def test_requests_ignore_a_shadowing_current_setting(attacked, proxy_session, monkeypatch):
    options = quote(f"-c search_path={LOGIN_PATH.replace(' ', '')}", safe="")
    target = parse_database_url(f"{attacked.conninfo}&options={options}")
    proxy_session.install(target, monkeypatch)
    try:
        key = api_key(team="team-b", user="shared")
        assert proxy_session.request("GET", "/v1/memory/a-row", key=key).status_code == 404
        listed = proxy_session.request("GET", "/v1/memory", key=key).json()
        assert [m["key"] for m in listed["memories"]] == ["b-row"]
    finally:
        proxy_session.close_store()
