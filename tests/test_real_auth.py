"""The contract through LiteLLM's own authentication, with no custom_auth, on every tested version.

Keys, users and teams are seeded into LiteLLM's cache as LiteLLM stores them (litellm_auth.py),
so LiteLLM itself decides who reaches /v1/memory at all (the owner's role from the user row, the
key's ``allowed_routes``), and the patch decides the rest. Both roads of LiteLLM issue #27722
are replayed: two keys of one internal user in teams 1 and 2, and admin-owned keys of teams 1
and 2, the keys LiteLLM lets through by default.
"""

from __future__ import annotations

from importlib.metadata import version

import psycopg
import pytest

from litellm_auth import MEMORY_ROUTES, litellm_auth  # noqa: F401
from litellm_memory_patch.routes import PATCH_HEADER

ROAD_KEY = "team-1:test"
# proxy_admin_viewer reaches GET /v1/memory from LiteLLM 1.110 on; 1.83.14 refuses it any route.
VIEWER_READS = tuple(int(part) for part in version("litellm").split(".")[:2]) >= (1, 110)
ONLY_ADMIN = "Only proxy admin can be used"
TEAM_KEY_OTHER_TEAM = (
    "A key bound to a team creates memory entries in that team only; use a proxy admin key "
    "without a team to create one for another team."
)


@pytest.fixture
def keys(litellm_auth):
    """The deployment: a person in teams 1 and 2, a proxy admin, a read-only admin."""
    auth = litellm_auth
    auth.user("person", "internal_user", teams=("team-1", "team-2"))
    auth.user("admin", "proxy_admin")
    auth.user("viewer", "proxy_admin_viewer")
    auth.team("team-1", members={"person": "user"})
    auth.team("team-2", members={"person": "user"})
    return {
        # Road 1: one internal user, a key in each team, opened to memory as LiteLLM requires.
        "person-1": auth.key("sk-person-1", user="person", team="team-1", allowed_routes=MEMORY_ROUTES),
        "person-2": auth.key("sk-person-2", user="person", team="team-2", allowed_routes=MEMORY_ROUTES),
        # Road 2: keys an admin created for each team in LiteLLM's UI, owned by the admin.
        "admin-1": auth.key("sk-admin-1", user="admin", team="team-1"),
        "admin-2": auth.key("sk-admin-2", user="admin", team="team-2"),
        "admin-no-team": auth.key("sk-admin-no-team", user="admin"),
        "admin-ui": auth.key("sk-admin-ui", user="admin", team=auth.ui_team),
        "viewer-ui": auth.key("sk-viewer-ui", user="viewer", team=auth.ui_team),
        "master": auth.master_key,
        # LiteLLM refuses these on /v1/memory, or part of it.
        "no-routes": auth.key("sk-no-routes", user="person", team="team-1"),
        "no-user": auth.key("sk-no-user", team="team-1"),
        "entries-only": auth.key(
            "sk-entries-only", user="person", team="team-1", allowed_routes=["/v1/memory/*"]
        ),
    }


def _rows(database) -> dict:
    with psycopg.connect(database.conninfo) as conn:
        rows = conn.execute(
            'SELECT key, value, team_id, user_id, updated_at FROM "LiteLLM_MemoryTable"'
        )
        return {key: rest for key, *rest in rows}


def _create(proxy, key, entry, **body):
    answer = proxy.request("POST", "/v1/memory", key=key, json={"key": entry, "value": "v", **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("road", ["same-user", "admin-owned"])
def test_issue_27722_both_roads_are_closed(proxy, keys, road):
    team_1, team_2 = (keys["person-1"], keys["person-2"]) if road == "same-user" else (
        keys["admin-1"], keys["admin-2"]
    )
    _create(proxy, team_1, ROAD_KEY, value="team 1 secret")
    before = _rows(proxy.database)

    missing = "team-1:never-created"
    for method in ("GET", "DELETE"):
        got = proxy.request(method, f"/v1/memory/{ROAD_KEY}", key=team_2)
        expected = proxy.request(method, f"/v1/memory/{missing}", key=team_2)
        assert got.status_code == expected.status_code == 404, got.text
        assert got.json()["detail"] == expected.json()["detail"].replace(missing, ROAD_KEY)
    # An update of a key it cannot see is a create, and the key is taken elsewhere.
    put = proxy.request("PUT", f"/v1/memory/{ROAD_KEY}", key=team_2, json={"value": "overwritten"})
    assert put.status_code == 409, put.text
    assert "team 1 secret" not in put.text
    for params in ({}, {"key": ROAD_KEY}, {"search": "team-1"}):
        listed = proxy.request("GET", "/v1/memory", key=team_2, params=params)
        assert listed.json() == {"memories": [], "total": 0}, (params, listed.text)

    assert _rows(proxy.database) == before
    own = proxy.request("GET", f"/v1/memory/{ROAD_KEY}", key=team_1)
    assert own.status_code == 200 and own.json()["value"] == "team 1 secret"


def test_an_admin_team_key_acts_for_its_team_only(proxy, keys):
    _create(proxy, keys["person-1"], "t1/person")
    _create(proxy, keys["admin-1"], "t1/admin")
    _create(proxy, keys["admin-no-team"], "personal/admin")
    _create(proxy, keys["admin-no-team"], "t2/team-row", team_id="team-2")

    listed = proxy.request("GET", "/v1/memory", key=keys["admin-1"]).json()
    assert sorted(m["key"] for m in listed["memories"]) == ["t1/admin", "t1/person"]
    assert listed["total"] == 2
    # Any row of its own team, a member's included.
    changed = proxy.request("PUT", "/v1/memory/t1/person", key=keys["admin-1"], json={"value": "w"})
    assert changed.status_code == 200 and changed.json()["user_id"] == "person"
    # Rows in its team only: another user of the team may be named, another team may not.
    made = _create(proxy, keys["admin-1"], "t1/for-person", user_id="person")
    assert (made["team_id"], made["user_id"]) == ("team-1", "person")
    other = proxy.request(
        "POST", "/v1/memory", key=keys["admin-1"], json={"key": "t2/x", "value": "v", "team_id": "team-2"}
    )
    assert (other.status_code, other.json()) == (403, {"detail": TEAM_KEY_OTHER_TEAM})
    for entry in ("personal/admin", "t2/team-row"):
        assert proxy.request("DELETE", f"/v1/memory/{entry}", key=keys["admin-1"]).status_code == 404
    assert proxy.request("DELETE", "/v1/memory/t1/person", key=keys["admin-1"]).status_code == 200


@pytest.mark.parametrize("session", ["master", "admin-no-team", "admin-ui"])
def test_admin_sessions_without_a_team_read_everything_and_write_anywhere(proxy, keys, session):
    _create(proxy, keys["person-1"], "t1/person")
    _create(proxy, keys["admin-2"], "t2/admin")
    _create(proxy, keys["admin-no-team"], "personal/admin")
    caller = keys[session]

    listed = proxy.request("GET", "/v1/memory", key=caller).json()
    assert listed["total"] == 3
    for entry in ("t1/person", "t2/admin", "personal/admin"):
        answer = proxy.request("PUT", f"/v1/memory/{entry}", key=caller, json={"value": session})
        assert answer.status_code == 200, answer.text
    made = _create(proxy, caller, "anywhere", team_id="team-2", user_id="person")
    assert (made["team_id"], made["user_id"]) == ("team-2", "person")
    # No row is stamped with LiteLLM's UI session team: left out, the team is none.
    own = _create(proxy, caller, f"{session}/own")
    assert own["team_id"] is None
    assert proxy.request("DELETE", "/v1/memory/t2/admin", key=caller).status_code == 200


def test_a_ui_session_create_is_never_stamped_with_the_ui_team(proxy, keys):
    made = _create(proxy, keys["admin-ui"], "from-the-ui", metadata={"page": "memory"})
    assert made["team_id"] is None and made["user_id"] == "admin"
    named = proxy.request(
        "POST", "/v1/memory", key=keys["admin-ui"],
        json={"key": "marked", "value": "v", "team_id": "litellm-dashboard"},
    )
    assert named.status_code == 400, named.text
    assert {row[1] for row in _rows(proxy.database).values()} == {None}


@pytest.mark.parametrize("refused", ["no-routes", "no-user"])
def test_keys_litellm_refuses_stay_refused_by_litellm(proxy, keys, refused):
    for method, path, body in (
        ("GET", "/v1/memory", None),
        ("POST", "/v1/memory", {"key": "k", "value": "v"}),
        ("GET", "/v1/memory/k", None),
        ("PUT", "/v1/memory/k", {"value": "v"}),
        ("DELETE", "/v1/memory/k", None),
    ):
        answer = proxy.request(method, path, key=keys[refused], json=body)
        assert answer.status_code == 401, (method, path, answer.text)
        assert ONLY_ADMIN in answer.json()["error"]["message"]
        assert answer.headers[PATCH_HEADER]
    assert _rows(proxy.database) == {}


def test_allowed_routes_for_entries_only_refuse_the_list_as_litellm_decides(proxy, keys):
    entries_only = keys["entries-only"]
    for method, body in (("GET", None), ("POST", {"key": "k", "value": "v"})):
        answer = proxy.request(method, "/v1/memory", key=entries_only, json=body)
        assert answer.status_code == 403, answer.text
        assert "not allowed to call this route" in answer.json()["detail"]
    written = proxy.request("PUT", "/v1/memory/by-key", key=entries_only, json={"value": "v"})
    assert written.status_code == 200 and written.json()["team_id"] == "team-1"
    assert proxy.request("GET", "/v1/memory/by-key", key=entries_only).status_code == 200
    assert proxy.request("DELETE", "/v1/memory/by-key", key=entries_only).status_code == 200


def test_proxy_admin_viewer_as_each_version_treats_it(proxy, keys):
    _create(proxy, keys["person-1"], "t1/person")
    _create(proxy, keys["admin-2"], "t2/admin")
    viewer = keys["viewer-ui"]
    listed = proxy.request("GET", "/v1/memory", key=viewer)
    read = proxy.request("GET", "/v1/memory/t2/admin", key=viewer)
    if VIEWER_READS:
        # A viewer's UI session has no team: it reads every row.
        assert listed.status_code == 200 and listed.json()["total"] == 2
        assert read.status_code == 200
    else:
        assert listed.status_code == read.status_code == 403
    written = proxy.request("PUT", "/v1/memory/t2/admin", key=viewer, json={"value": "w"})
    assert written.status_code == 403 and "not allowed to access this route" in written.text
