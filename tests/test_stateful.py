"""Random sequences of /v1/memory requests by random callers, each answer checked against a model.

Hypothesis drives a state machine through the real proxy: POST, PUT, GET, list (with ``key``,
``key_prefix`` or ``search``) and DELETE, by callers of several teams that share users, a team
admin, a proxy admin, a read-only admin viewer, personal sessions and a caller with no identity.
The model below is a plain restatement of the contract (who sees a row, who may change it, how a
new row is stamped, what each request answers); it does not use the project's own rules. After
every step the whole table must equal the model, and every answer must be the model's answer.

One database serves all examples; the table is emptied (as the superuser) before each one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import psycopg
from psycopg.types.json import Jsonb
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from identity_auth import api_key

ADMIN_ROLE, VIEWER_ROLE = "proxy_admin", "proxy_admin_viewer"
TEAM_ADMINS = {"team-1": "user-2"}  # user-2 is an admin of team-1 in LiteLLM's team table


@dataclass(frozen=True)
class Caller:
    team: str | None
    user: str | None
    role: str | None = None

    @property
    def key(self) -> str:
        return api_key(team=self.team, user=self.user, role=self.role)


# Without a user id, its rows created without one are pure team rows.
PROXY_ADMIN = Caller(None, None, ADMIN_ROLE)
CALLERS = [
    Caller("team-1", "user-1"),
    Caller("team-1", "user-2"),  # team admin of team-1
    Caller("team-2", "user-1"),  # the same users in another team (LiteLLM issue #27722)
    Caller("team-2", "user-2"),
    Caller(None, "user-1"),  # a personal session
    PROXY_ADMIN,
    Caller("team-2", "admin", ADMIN_ROLE),  # a proxy admin's team key: acts for team-2 only
    Caller("team-2", "viewer", VIEWER_ROLE),
    Caller(None, "viewer", VIEWER_ROLE),
    Caller(None, None),
]
# Few keys, so that callers keep meeting each other's rows.
KEYS = ["k1", "ns/a", "ns/a/b"]
PREFIXES = ["ns/", "ns/a/", "k", "z"]
# What a body may name as owner: mostly nothing, sometimes its own or another team or user.
TEAM_IDS = st.sampled_from([None, None, None, "team-1", "team-2"])
USER_IDS = st.sampled_from([None, None, None, "user-1", "user-2"])
VALUES = st.text(alphabet="xyz", min_size=0, max_size=3)
METADATA = st.sampled_from([None, {"n": 1}, {"tags": ["a"]}])
CALLER = st.sampled_from(CALLERS)
KEY = st.sampled_from(KEYS)
# Each request kind and how its arguments are drawn.
ARGUMENTS = {
    "post": dict(caller=CALLER, key=KEY, value=VALUES, metadata=METADATA, team_id=TEAM_IDS, user_id=USER_IDS),
    "post_team_row": dict(team=st.sampled_from(["team-1", "team-2"]), key=KEY, value=VALUES),
    "put": dict(
        caller=CALLER,
        key=KEY,
        value=st.one_of(VALUES, VALUES, VALUES, st.none()),
        metadata=st.one_of(st.just("omitted"), METADATA),
        team_id=TEAM_IDS,
    ),
    "get": dict(caller=CALLER, key=KEY),
    "delete": dict(caller=CALLER, key=KEY),
    "list_memories": dict(
        caller=CALLER,
        how=st.sampled_from(["all", "key", "key_prefix", "search", "search_id"]),
        key=KEY,
        prefix=st.sampled_from(PREFIXES),
        pick=st.integers(min_value=0, max_value=100),
    ),
}


@dataclass(frozen=True)
class Row:
    key: str
    value: str
    metadata: object
    team_id: str | None
    user_id: str | None
    memory_id: str | None = None  # learnt from the answer that created it


# -- the contract, restated -----------------------------------------------------------------


def in_scope(caller: Caller, row: Row) -> bool:
    """The rows of the caller's own session: its team's, or with no team its own."""
    if caller.team is not None:
        return row.team_id == caller.team
    return caller.user is not None and row.team_id is None and row.user_id == caller.user


def sees(caller: Caller, row: Row) -> bool:
    # The team decides first: only admins and viewers with no team see every row.
    reads_all = caller.role in (ADMIN_ROLE, VIEWER_ROLE) and caller.team is None
    return reads_all or in_scope(caller, row)


def may_change(caller: Caller, row: Row) -> bool:
    if caller.role == ADMIN_ROLE and caller.team is None:
        return True
    if not in_scope(caller, row):  # a viewer writes only in its own scope
        return False
    if caller.role == ADMIN_ROLE:  # an admin's team key: any row of its team
        return True
    if caller.user is not None and row.user_id == caller.user:
        return True
    return row.user_id is None and TEAM_ADMINS.get(caller.team) == caller.user


def stamp(caller: Caller, team_id, user_id) -> tuple[int, tuple | None]:
    """(status, (team_id, user_id)) of a new row, or the refusal's status."""
    if caller.role == ADMIN_ROLE and caller.team is None:
        return 200, (team_id, user_id if user_id is not None else caller.user)
    if caller.role == ADMIN_ROLE:  # an admin's team key creates in its team only
        if team_id is not None and team_id != caller.team:
            return 403, None
        return 200, (caller.team, user_id if user_id is not None else caller.user)
    if user_id is not None and user_id != caller.user:
        return 403, None
    if team_id is not None and team_id != caller.team:
        return 403, None
    if caller.team is None and caller.user is None:
        return 400, None
    return 200, (caller.team, caller.user)


def listed(caller: Caller, rows: dict[str, Row], *, key=None, key_prefix=None, search=None) -> set[str]:
    def matches(row: Row) -> bool:
        if search is not None:
            return row.key.startswith(search) or row.memory_id == search
        if key_prefix is not None:
            return row.key.startswith(key_prefix)
        return key is None or row.key == key

    return {row.key for row in rows.values() if sees(caller, row) and matches(row)}


# -- the machine -------------------------------------------------------------------------------


class MemoryMachine(RuleBasedStateMachine):
    proxy = None  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Row] = {}
        # The superuser, whom row-level security does not confine, sees the whole table.
        self.superuser = psycopg.connect(self.proxy.database.conninfo, autocommit=True)
        self.superuser.execute('TRUNCATE "LiteLLM_MemoryTable"')

    def teardown(self) -> None:
        self.superuser.close()

    def send(self, caller: Caller, method: str, path: str, **kwargs):
        return self.proxy.request(method, path, key=caller.key, **kwargs)

    def check_row(self, answer: dict, row: Row) -> None:
        shown = (answer["key"], answer["value"], answer["metadata"], answer["team_id"], answer["user_id"])
        assert shown == (row.key, row.value, row.metadata, row.team_id, row.user_id), answer
        assert row.memory_id in (None, answer["memory_id"]), answer

    def create(self, caller: Caller, response, key: str, value: str, metadata, team_id, user_id) -> None:
        status, owner = stamp(caller, team_id, user_id)
        if status == 200 and key in self.rows:
            status = 409
        assert response.status_code == status, (caller, response.text)
        if status == 200:
            row = Row(key, value, metadata, *owner)
            self.check_row(response.json(), row)
            self.rows[key] = replace(row, memory_id=response.json()["memory_id"])
        elif status == 409:
            assert response.json()["detail"] == f"Memory with key '{key}' already exists."

    @rule(operation=st.sampled_from(sorted(ARGUMENTS)), data=st.data())
    def request(self, operation, data):
        """One request. A single rule, so that every example mixes every kind of request
        (Hypothesis switches whole rules off in some examples)."""
        arguments = {name: data.draw(strategy, label=name) for name, strategy in ARGUMENTS[operation].items()}
        getattr(self, operation)(**arguments)

    def post(self, caller, key, value, metadata, team_id, user_id):
        body = {"key": key, "value": value, "metadata": metadata, "team_id": team_id, "user_id": user_id}
        response = self.send(caller, "POST", "/v1/memory", json=body)
        self.create(caller, response, key, value, metadata, team_id, user_id)

    def post_team_row(self, team, key, value):
        """A pure team row (no user), which only the team's admin and proxy admins may change."""
        self.post(PROXY_ADMIN, key, value, None, team, None)

    def put(self, caller, key, value, metadata, team_id):
        body = {"value": value, "team_id": team_id}
        if metadata != "omitted":
            body["metadata"] = metadata
        response = self.send(caller, "PUT", f"/v1/memory/{key}", json=body)
        row = self.rows.get(key)
        if value is None and metadata == "omitted":
            assert response.status_code == 400, response.text
        elif row is not None and sees(caller, row):
            if not may_change(caller, row):
                assert response.status_code == 403, (caller, row, response.text)
                return
            assert response.status_code == 200, (caller, row, response.text)
            changed = replace(
                row,
                value=row.value if value is None else value,
                metadata=row.metadata if metadata == "omitted" else metadata,
            )
            self.check_row(response.json(), changed)
            self.rows[key] = changed
        elif value is None:
            assert response.status_code == 400, response.text
        else:
            created_metadata = None if metadata == "omitted" else metadata
            self.create(caller, response, key, value, created_metadata, team_id, None)

    def get(self, caller, key):
        response = self.send(caller, "GET", f"/v1/memory/{key}")
        row = self.rows.get(key)
        if row is not None and sees(caller, row):
            assert response.status_code == 200, response.text
            self.check_row(response.json(), row)
        else:
            assert response.status_code == 404, (caller, row, response.text)
            assert response.json()["detail"] == f"Memory with key '{key}' not found"

    def delete(self, caller, key):
        response = self.send(caller, "DELETE", f"/v1/memory/{key}")
        row = self.rows.get(key)
        if row is None or not sees(caller, row):
            assert response.status_code == 404, (caller, row, response.text)
        elif not may_change(caller, row):
            assert response.status_code == 403, (caller, row, response.text)
        else:
            assert (response.status_code, response.json()) == (200, {"key": key, "deleted": True})
            del self.rows[key]

    def list_memories(self, caller, how, key, prefix, pick):
        params = {}
        if how == "key":
            params["key"] = key
        elif how in ("key_prefix", "search"):
            params[how] = prefix
        elif how == "search_id":
            # Any row's memory_id, the caller's or not: a foreign one must find nothing.
            ids = sorted(row.memory_id for row in self.rows.values()) or ["no-such-id"]
            params["search"] = ids[pick % len(ids)]
        response = self.send(caller, "GET", "/v1/memory", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        expected = listed(caller, self.rows, **params)
        assert {m["key"] for m in body["memories"]} == expected, (caller, params, body)
        assert body["total"] == len(expected)
        for shown in body["memories"]:
            self.check_row(shown, self.rows[shown["key"]])

    @invariant()
    def table_matches_the_model(self):
        stored = self.superuser.execute(
            'SELECT key, value, metadata, team_id, user_id, memory_id FROM "LiteLLM_MemoryTable"'
        ).fetchall()
        assert {r[0]: Row(*r) for r in stored} == self.rows


def test_random_request_sequences_follow_the_contract(proxy):
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        for team, admin in TEAM_ADMINS.items():
            conn.execute(
                'INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles) VALUES (%s, %s)',
                (team, Jsonb([{"user_id": admin, "role": "admin"}])),
            )
    MemoryMachine.proxy = proxy
    run_state_machine_as_test(
        MemoryMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
            # No shrinking: each shrink replays requests through the proxy, which would take
            # minutes; a failure still prints its whole sequence of steps.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )
