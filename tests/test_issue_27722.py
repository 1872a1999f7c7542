"""LiteLLM issue #27722: one user, a key in team 1 and a key in team 2.

With the stock filter ``user_id = U OR team_id = T`` team 2's key reads, updates and deletes the
entry team 1 created, because both keys carry the same user. Through the patched proxy, team 2
gets exactly the answers it would get for a key that does not exist, and the row is untouched.
"""

import psycopg

from identity_auth import api_key

TEAM_1 = api_key(team="team-1", user="shared-user")
TEAM_2 = api_key(team="team-2", user="shared-user")
KEY = "team-1:test"


def _row(database):
    with psycopg.connect(database.conninfo) as conn:
        return conn.execute(
            'SELECT memory_id, key, value, metadata, user_id, team_id, created_at, updated_at'
            ' FROM "LiteLLM_MemoryTable" WHERE key = %s',
            (KEY,),
        ).fetchone()


def test_team_2_cannot_reach_team_1_entry_of_the_same_user(proxy):
    created = proxy.request("POST", "/v1/memory", key=TEAM_1, json={"key": KEY, "value": "team 1 secret"})
    assert created.status_code == 200, created.text
    before = _row(proxy.database)

    missing = "team-1:never-created"
    for method, body in (("GET", None), ("DELETE", None)):
        got = proxy.request(method, f"/v1/memory/{KEY}", key=TEAM_2, json=body)
        expected = proxy.request(method, f"/v1/memory/{missing}", key=TEAM_2, json=body)
        assert got.status_code == expected.status_code == 404
        assert got.json()["detail"] == expected.json()["detail"].replace(missing, KEY)

    # An update of an unseen key is a create, and the key is taken elsewhere.
    put = proxy.request("PUT", f"/v1/memory/{KEY}", key=TEAM_2, json={"value": "overwritten"})
    assert put.status_code == 409, put.text
    assert "team 1 secret" not in put.text and "team-1" not in put.text.replace(KEY, "")

    listed = proxy.request("GET", "/v1/memory", key=TEAM_2, params={"key": KEY}).json()
    assert listed == {"memories": [], "total": 0}

    assert _row(proxy.database) == before
    own = proxy.request("GET", f"/v1/memory/{KEY}", key=TEAM_1)
    assert own.status_code == 200 and own.json()["value"] == "team 1 secret"
