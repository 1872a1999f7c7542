"""Every database rule of the authorization contract, checked as the restricted role with SQL.

Each request transaction switches to litellm_memory_app and sets the caller's scope; the seed
rows below are written by the login role (a superuser, which row-level security skips). Tests
compare exact row sets, so a widened or narrowed policy fails them.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from caller_session import as_caller, insert_row, visible_ids
from litellm_memory_patch.config import APP_ROLE

# LiteLLM's UI_TEAM_ID, carried by every UI login key: it is no team.
UI_TEAM = "litellm-dashboard"

# memory_id -> (team_id, user_id). u1 is in team t1 and team t2: the LiteLLM #27722 set-up.
ROWS = {
    "t1-u1": ("t1", "u1"),
    "t1-u2": ("t1", "u2"),
    "t1-team": ("t1", None),
    "t2-u1": ("t2", "u1"),
    "t2-team": ("t2", None),
    "t3-team": ("t3", None),
    "personal-u1": (None, "u1"),
    "personal-u2": (None, "u2"),
    # Written from an admin's LiteLLM UI session by LiteLLM's own handlers.
    "ui-admin": (UI_TEAM, "admin"),
}
ALL = set(ROWS)
T1 = {"t1-u1", "t1-u2", "t1-team"}
ADMIN = "proxy_admin"
VIEWER = "proxy_admin_viewer"


@pytest.fixture
def conn(migrated_db):
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        with conn.transaction():
            for memory_id, (team, user) in ROWS.items():
                insert_row(conn, memory_id, team=team, user=user)
            # Team t1 names "boss" its admin and u2 a plain member; t3 belongs to org o1,
            # whose org_admin is "orgboss".
            conn.execute(
                """
                INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by)
                    VALUES ('b1', 'test', 'test');
                INSERT INTO "LiteLLM_OrganizationTable"
                    (organization_id, organization_alias, budget_id, created_by, updated_by)
                    VALUES ('o1', 'org one', 'b1', 'test', 'test');
                INSERT INTO "LiteLLM_UserTable" (user_id) VALUES ('orgboss'), ('orgmember');
                INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id, user_role)
                    VALUES ('orgboss', 'o1', 'org_admin'), ('orgmember', 'o1', 'internal_user');
                INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles) VALUES
                    ('t1', '[{"user_id": "boss", "role": "admin", "user_email": null},
                             {"user_id": "u2", "role": "user", "user_email": null}]'),
                    ('t2', '[]');
                INSERT INTO "LiteLLM_TeamTable" (team_id, organization_id) VALUES ('t3', 'o1');
                """
            )
        yield conn


def owner(conn, memory_id):
    """(team_id, user_id) of a row as the login role sees it, bypassing row-level security."""
    return conn.execute(
        'SELECT team_id, user_id FROM "LiteLLM_MemoryTable" WHERE memory_id = %s', (memory_id,)
    ).fetchone()


def update_value(conn, memory_id) -> int:
    cur = conn.execute(
        "UPDATE \"LiteLLM_MemoryTable\" SET value = 'changed' WHERE memory_id = %s", (memory_id,)
    )
    return cur.rowcount


def delete(conn, memory_id) -> int:
    return conn.execute('DELETE FROM "LiteLLM_MemoryTable" WHERE memory_id = %s', (memory_id,)).rowcount


# --- What a caller can see ---------------------------------------------------------------


@pytest.mark.parametrize(
    "scope, expected",
    [
        pytest.param({"role": ADMIN}, ALL, id="admin"),
        pytest.param({"role": ADMIN, "team": UI_TEAM, "user": "admin"}, ALL, id="admin-ui-session"),
        pytest.param({"role": VIEWER, "user": "u2"}, ALL, id="viewer"),
        pytest.param({"role": VIEWER, "team": UI_TEAM, "user": "u2"}, ALL, id="viewer-ui-session"),
        # The team decides first: an admin's or a viewer's team key sees its team only.
        pytest.param({"role": ADMIN, "team": "t1", "user": "u1"}, T1, id="admin-team-key"),
        pytest.param({"role": VIEWER, "team": "t2", "user": "u2"}, {"t2-u1", "t2-team"}, id="viewer-team-key"),
        pytest.param({"team": "t1", "user": "u1"}, T1, id="team"),
        pytest.param({"team": "t1"}, T1, id="team-key-without-user"),
        pytest.param({"user": "u1"}, {"personal-u1"}, id="personal"),
        pytest.param({"role": "internal_user"}, set(), id="neither-team-nor-user"),
        pytest.param({"team": UI_TEAM, "user": "admin"}, set(), id="ui-session-of-a-non-admin"),
        pytest.param({}, set(), id="empty-settings"),
        pytest.param({"settings": False}, set(), id="no-settings"),
    ],
)
def test_visibility_per_kind_of_session(conn, scope, expected):
    with as_caller(conn, **scope):
        assert visible_ids(conn) == expected


@pytest.mark.parametrize("role", [None, ADMIN], ids=["same-user", "admin-owned"])
def test_team_session_does_not_see_its_users_row_in_another_team(conn, role):
    # LiteLLM #27722, both roads: a key of team t2 carrying user u1, or owned by a proxy admin,
    # must not reach u1's rows of team t1.
    with as_caller(conn, team="t2", user="u1", role=role):
        assert visible_ids(conn) == {"t2-u1", "t2-team"}
        assert update_value(conn, "t1-u1") == 0
        assert delete(conn, "t1-u1") == 0
        assert delete(conn, "personal-u1") == 0
    assert owner(conn, "t1-u1") == ("t1", "u1")
    assert owner(conn, "personal-u1") == (None, "u1")


# --- Create ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope, expected_owner",
    [
        pytest.param({"team": "t1", "user": "u1"}, ("t1", "u1"), id="team"),
        pytest.param({"team": "t1"}, ("t1", None), id="team-key-without-user"),
        pytest.param({"user": "u1"}, (None, "u1"), id="personal"),
        pytest.param({"role": VIEWER, "team": "t2", "user": "u2"}, ("t2", "u2"), id="viewer"),
        pytest.param({"role": ADMIN, "team": "t2", "user": "u2"}, ("t2", "u2"), id="admin-team-key"),
        pytest.param({"role": ADMIN, "team": UI_TEAM, "user": "u2"}, (None, None), id="admin-ui-session"),
    ],
)
def test_insert_leaving_ownership_empty_is_stamped_from_the_session(conn, scope, expected_owner):
    with as_caller(conn, **scope):
        insert_row(conn, "new")
        assert "new" in visible_ids(conn)
    assert owner(conn, "new") == expected_owner


@pytest.mark.parametrize(
    "scope, team, user",
    [
        pytest.param({"team": "t1", "user": "u1"}, "t2", "u1", id="another-team"),
        pytest.param({"team": "t1", "user": "u1"}, "t1", "u2", id="another-user"),
        pytest.param({"team": "t1", "user": "u1"}, None, "u2", id="another-user-team-filled"),
        pytest.param({"user": "u1"}, "t1", "u1", id="personal-naming-a-team"),
        pytest.param({"role": VIEWER, "team": "t2", "user": "u2"}, "t1", "u2", id="viewer-another-team"),
        pytest.param({"role": ADMIN, "team": "t2", "user": "u2"}, "t1", "u2", id="admin-team-key-another-team"),
        pytest.param({"role": ADMIN}, UI_TEAM, "u2", id="admin-stamping-the-ui-team"),
        pytest.param({"role": ADMIN, "team": UI_TEAM}, UI_TEAM, None, id="ui-session-stamping-its-team"),
        pytest.param({"team": UI_TEAM, "user": "u1"}, UI_TEAM, "u1", id="non-admin-ui-session"),
        pytest.param({}, None, None, id="empty-settings"),
        pytest.param({}, "t1", "u1", id="empty-settings-naming-owner"),
        pytest.param({"settings": False}, None, None, id="no-settings"),
    ],
)
def test_insert_outside_the_callers_scope_is_refused(conn, scope, team, user):
    with pytest.raises(errors.InsufficientPrivilege):
        with as_caller(conn, **scope):
            insert_row(conn, "new", team=team, user=user)
    assert owner(conn, "new") is None


def test_admin_team_key_creates_rows_for_any_user_of_its_team(conn):
    with as_caller(conn, role=ADMIN, team="t1", user="u1"):
        insert_row(conn, "for-u9", team="t1", user="u9")
    assert owner(conn, "for-u9") == ("t1", "u9")


def test_admin_creates_rows_for_anyone(conn):
    with as_caller(conn, role=ADMIN, user="u1"):
        insert_row(conn, "for-t3", team="t3", user="u9")
        insert_row(conn, "unowned")
    assert owner(conn, "for-t3") == ("t3", "u9")
    # An admin's NULLs stay NULL: the admin chose them.
    assert owner(conn, "unowned") == (None, None)


# --- Update and delete -------------------------------------------------------------------

WRITE_CASES = [
    # (scope, row, allowed)
    pytest.param({"team": "t1", "user": "u1"}, "t1-u1", True, id="own-row"),
    pytest.param({"user": "u1"}, "personal-u1", True, id="own-personal-row"),
    pytest.param({"team": "t1", "user": "u1"}, "t1-u2", False, id="teammates-row"),
    pytest.param({"team": "t1", "user": "u1"}, "t1-team", False, id="team-row-by-member"),
    pytest.param({"team": "t1", "user": "u2"}, "t1-team", False, id="team-row-by-user-role-member"),
    pytest.param({"team": "t1"}, "t1-team", False, id="team-row-by-key-without-user"),
    pytest.param({"team": "t1", "user": "boss"}, "t1-team", True, id="team-row-by-team-admin"),
    pytest.param({"team": "t1", "user": "boss"}, "t1-u2", False, id="members-row-by-team-admin"),
    pytest.param({"team": "t2", "user": "boss"}, "t2-team", False, id="team-admin-of-another-team"),
    pytest.param({"team": "t3", "user": "orgboss"}, "t3-team", True, id="team-row-by-org-admin"),
    pytest.param({"team": "t3", "user": "orgmember"}, "t3-team", False, id="team-row-by-org-member"),
    pytest.param({"team": "t1", "user": "orgboss"}, "t1-team", False, id="org-admin-other-org"),
    pytest.param({"role": ADMIN}, "t1-u2", True, id="admin-any-row"),
    pytest.param({"role": ADMIN}, "personal-u2", True, id="admin-personal-row"),
    pytest.param({"role": ADMIN}, "ui-admin", True, id="admin-ui-row"),
    pytest.param({"role": ADMIN, "team": UI_TEAM}, "t2-u1", True, id="admin-ui-session-any-row"),
    pytest.param({"role": ADMIN, "team": "t1", "user": "u9"}, "t1-team", True, id="admin-team-key-team-row"),
    pytest.param({"role": ADMIN, "team": "t1", "user": "u9"}, "t1-u2", True, id="admin-team-key-members-row"),
    pytest.param({"role": ADMIN, "team": "t2", "user": "u1"}, "t1-u1", False, id="admin-team-key-other-team"),
    pytest.param({"role": ADMIN, "team": "t2"}, "personal-u1", False, id="admin-team-key-personal-row"),
    pytest.param({"role": ADMIN, "team": "t2"}, "ui-admin", False, id="admin-team-key-ui-row"),
    pytest.param({"role": VIEWER}, "ui-admin", False, id="viewer-ui-row"),
    pytest.param({"role": VIEWER, "team": "t2", "user": "u1"}, "t1-u1", False, id="viewer-other-team"),
    pytest.param({"role": VIEWER, "team": "t2", "user": "u1"}, "t2-u1", True, id="viewer-own-row"),
    pytest.param({"role": VIEWER, "team": "t2", "user": "u1"}, "t2-team", False, id="viewer-team-row"),
    pytest.param({}, "t1-u1", False, id="empty-settings"),
    pytest.param({"settings": False}, "personal-u1", False, id="no-settings"),
]


@pytest.mark.parametrize("scope, row, allowed", WRITE_CASES)
def test_update_authority(conn, scope, row, allowed):
    with as_caller(conn, **scope):
        assert update_value(conn, row) == int(allowed)
    value = conn.execute(
        'SELECT value FROM "LiteLLM_MemoryTable" WHERE memory_id = %s', (row,)
    ).fetchone()[0]
    assert value == ("changed" if allowed else "v")


@pytest.mark.parametrize("scope, row, allowed", WRITE_CASES)
def test_delete_authority(conn, scope, row, allowed):
    with as_caller(conn, **scope):
        assert delete(conn, row) == int(allowed)
    assert (owner(conn, row) is None) == allowed


def test_team_admin_status_is_read_from_litellm_tables_not_the_caller(conn):
    with as_caller(conn, team="t1", user="u2"):
        assert update_value(conn, "t1-team") == 0
    # Promote u2 in LiteLLM's own team table: now the same session may write.
    conn.execute(
        """UPDATE "LiteLLM_TeamTable" SET members_with_roles =
           '[{"user_id": "u2", "role": "admin"}]' WHERE team_id = 't1'"""
    )
    with as_caller(conn, team="t1", user="u2"):
        assert update_value(conn, "t1-team") == 1


# --- Ownership is immutable --------------------------------------------------------------


@pytest.mark.parametrize(
    "scope, row, assignment",
    [
        pytest.param({"team": "t1", "user": "u1"}, "t1-u1", "team_id = 't2'", id="team-id"),
        pytest.param({"team": "t1", "user": "u1"}, "t1-u1", "team_id = NULL", id="team-id-null"),
        pytest.param({"team": "t1", "user": "u1"}, "t1-u1", "user_id = 'u2'", id="user-id"),
        pytest.param({"user": "u1"}, "personal-u1", "team_id = 't1'", id="personal-into-team"),
        pytest.param({"team": "t1", "user": "boss"}, "t1-team", "user_id = 'boss'", id="team-admin"),
        pytest.param({"role": VIEWER, "team": "t2", "user": "u1"}, "t2-u1", "team_id = 't1'", id="viewer"),
        pytest.param({"role": ADMIN, "team": "t1", "user": "u1"}, "t1-u1", "user_id = 'u2'", id="admin-team-key"),
        pytest.param({"role": ADMIN}, "t1-u1", f"team_id = '{UI_TEAM}'", id="admin-into-ui-team"),
    ],
)
def test_ownership_cannot_change_except_by_admin(conn, scope, row, assignment):
    before = owner(conn, row)
    with pytest.raises(errors.InsufficientPrivilege):
        with as_caller(conn, **scope):
            conn.execute(f'UPDATE "LiteLLM_MemoryTable" SET {assignment} WHERE memory_id = %s', (row,))
    assert owner(conn, row) == before


def test_admin_may_change_ownership(conn):
    with as_caller(conn, role=ADMIN):
        conn.execute(
            "UPDATE \"LiteLLM_MemoryTable\" SET team_id = 't2', user_id = NULL WHERE memory_id = 't1-u1'"
        )
    assert owner(conn, "t1-u1") == ("t2", None)


# --- Nothing outlives the transaction ----------------------------------------------------


def _leftovers(conn):
    return conn.execute(
        "SELECT current_user, current_setting('litellm_memory.team_id', true),"
        " current_setting('litellm_memory.user_id', true),"
        " current_setting('litellm_memory.user_role', true)"
    ).fetchone()


def test_role_and_settings_end_with_commit(conn):
    login = conn.execute("SELECT current_user").fetchone()[0]
    with as_caller(conn, team="t1", user="u1", role=ADMIN):
        assert _leftovers(conn) == (APP_ROLE, "t1", "u1", ADMIN)
    user, *settings = _leftovers(conn)
    assert user == login
    assert all(value in (None, "") for value in settings)


def test_role_and_settings_end_with_rollback(conn):
    login = conn.execute("SELECT current_user").fetchone()[0]
    with pytest.raises(errors.InsufficientPrivilege):
        with as_caller(conn, team="t1", user="u1", role=ADMIN):
            assert _leftovers(conn) == (APP_ROLE, "t1", "u1", ADMIN)
            conn.execute("SELECT set_config('litellm_memory.user_role', '', true)")
            insert_row(conn, "new", team="t2")
    user, *settings = _leftovers(conn)
    assert user == login
    assert all(value in (None, "") for value in settings)
    # The next transaction on the same connection starts with no scope: it sees nothing.
    with as_caller(conn, settings=False):
        assert visible_ids(conn) == set()
