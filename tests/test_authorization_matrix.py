"""The authorization contract as a generated matrix: every kind of caller x every kind of row x
every operation, through the real LiteLLM proxy app.

Expected answers come from ``contract_model`` (a pure reading of the contract), never from the
project's code. Each cell checks the status, the body, ``total`` and the database afterwards
(read as the superuser, which row-level security skips). The same matrix runs in three modes so
that each layer is shown to hold on its own:

- ``both``: the patched proxy as deployed, handlers and row-level security together;
- ``database``: the handlers' filter bypassed, the store called directly with ``where=TRUE``,
  so only row-level security (and the ownership trigger) confine reads and writes;
- ``handlers``: row-level security and the ownership trigger disabled by hand, so only the
  handlers give the answers.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

import contract_model as model
from conftest import create_database
from contract_model import OMITTED, Caller, Request, Row, Team, World
from identity_auth import api_key
from litellm_memory_patch import migrator
from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, parse_database_url
from litellm_memory_patch.scope import CallerScope
from litellm_memory_patch.store import DELETED, KeyMatch, KeyTaken, WriteRefused

TABLE = '"LiteLLM_MemoryTable"'
RED, BLUE, GREEN = "team-red", "team-blue", "team-green"
ORG = "org-one"

# Team membership as LiteLLM's members_with_roles holds it; red and green belong to ORG.
MEMBERS = {
    RED: {"user-dora": "admin", "user-alice": "user", "user-bob": "user"},
    BLUE: {"user-carol": "admin", "user-alice": "user"},
    GREEN: {},
}
TEAM_ORGANIZATION = {RED: ORG, GREEN: ORG}
ORG_ROLES = {"user-olga": "org_admin", "user-alice": "internal_user"}

# name -> (team_id, user_id); keys carry no owner name, so an answer echoing a key leaks nothing.
ROW_OWNERS = {
    "red-team": (RED, None),
    "red-alice": (RED, "user-alice"),
    "red-bob": (RED, "user-bob"),
    "blue-team": (BLUE, None),
    "blue-alice": (BLUE, "user-alice"),
    "blue-carol": (BLUE, "user-carol"),
    "green-team": (GREEN, None),
    "alice-personal": (None, "user-alice"),
    "bob-personal": (None, "user-bob"),
    "no-owner": (None, None),
    # Written by LiteLLM's own handlers from an admin's UI session, stamped with its marker.
    "ui-session": (model.UI_SESSION_TEAM, "user-root"),
}
BASE_TIME = datetime(2026, 1, 1)


def _world() -> World:
    rows = tuple(
        Row(
            key=f"mem/{i:02d}",
            team=team,
            user=user,
            value=f"secret-{uuid.uuid5(uuid.NAMESPACE_OID, name).hex[:12]}",
            metadata={"row": f"meta-{i}"},
            memory_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            rank=i,
        )
        for i, (name, (team, user)) in enumerate(ROW_OWNERS.items(), start=1)
    )
    teams = tuple(
        Team(
            team_id,
            admins=frozenset(u for u, role in members.items() if role == "admin"),
            organization=TEAM_ORGANIZATION.get(team_id),
        )
        for team_id, members in MEMBERS.items()
    )
    org_admins = frozenset((u, ORG) for u, role in ORG_ROLES.items() if role == "org_admin")
    return World(rows=rows, teams=teams, org_admins=org_admins)


WORLD = _world()
ROW_NAMES = dict(zip((row.key for row in WORLD.rows), ROW_OWNERS))

CALLERS = [
    Caller("admin", user="user-root", role=model.ADMIN),
    # The team decides first: an admin's or a viewer's team key acts for its team only.
    Caller("admin-team-key", team=BLUE, user="user-root", role=model.ADMIN),
    Caller("admin-ui-session", team=model.UI_SESSION_TEAM, user="user-root", role=model.ADMIN),
    Caller("viewer", user="user-bob", role=model.VIEWER),
    Caller("viewer-team-key", team=RED, user="user-bob", role=model.VIEWER),
    Caller("member", team=RED, user="user-alice", role="internal_user"),
    Caller("member-via-other-team", team=BLUE, user="user-alice", role="internal_user"),
    Caller("team-admin", team=RED, user="user-dora", role="internal_user"),
    Caller("org-admin", team=RED, user="user-olga", role="internal_user"),
    Caller("personal", user="user-alice", role="internal_user"),
    Caller("no-team-no-user", role="internal_user"),
]
MODES = ("both", "database", "handlers")
NEVER_EXISTED = "never/existed"


def _created_at(row: Row) -> datetime:
    return BASE_TIME + timedelta(days=row.rank, milliseconds=7 * row.rank)


def _updated_at(row: Row) -> datetime:
    return BASE_TIME + timedelta(days=40 + row.rank, milliseconds=3 * row.rank)


# -- the matrix ---------------------------------------------------------------------------


def requests_for(caller: Caller) -> list[tuple[str, Request]]:
    """Every operation this caller tries: on each seeded row, and on keys that never existed."""
    other_team = BLUE if caller.team == RED else RED
    other_user = "user-carol"
    value = f"written by {caller.name}"
    cells = []
    for row in WORLD.rows:
        name = ROW_NAMES[row.key]
        cells += [
            (f"get/{name}", Request("GET", row.key)),
            (f"put-value/{name}", Request("PUT", row.key, value=value)),
            (f"put-metadata/{name}", Request("PUT", row.key, metadata={"by": caller.name})),
            (
                f"put-naming-owners/{name}",
                Request("PUT", row.key, value=value, user_id=other_user, team_id=other_team),
            ),
            (f"delete/{name}", Request("DELETE", row.key)),
            (f"post-existing/{name}", Request("POST", row.key, value=value)),
            (
                f"post-existing-naming-team/{name}",
                Request("POST", row.key, value=value, team_id=other_team),
            ),
            (f"list-key/{name}", Request("GET", match=(("key", row.key),))),
            (f"list-key-prefix/{name}", Request("GET", match=(("key_prefix", row.key),))),
            (f"list-search-key/{name}", Request("GET", match=(("search", row.key),))),
            (f"list-search-memory-id/{name}", Request("GET", match=(("search", row.memory_id),))),
        ]
    new = "new/entry"
    cells += [
        ("list-all", Request("GET")),
        ("list-page-2-of-3", Request("GET", page=2, page_size=3)),
        ("list-key-prefix-all", Request("GET", match=(("key_prefix", "mem/"),))),
        ("list-search-prefix", Request("GET", match=(("search", "mem/0"),))),
        ("get-missing", Request("GET", NEVER_EXISTED)),
        ("delete-missing", Request("DELETE", NEVER_EXISTED)),
        ("put-metadata-missing", Request("PUT", NEVER_EXISTED, metadata={"a": 1})),
        ("post-new", Request("POST", new, value=value, metadata={"a": 1})),
        (
            "post-new-naming-itself",
            Request("POST", new, value=value, user_id=caller.user, team_id=caller.team),
        ),
        ("post-new-naming-team", Request("POST", new, value=value, team_id=other_team)),
        ("post-new-naming-user", Request("POST", new, value=value, user_id=other_user)),
        ("put-new", Request("PUT", new, value=value)),
        ("put-new-naming-team", Request("PUT", new, value=value, team_id=other_team)),
        ("put-new-naming-user", Request("PUT", new, value=value, user_id=other_user)),
    ]
    return cells


# -- the database, seen by the superuser ------------------------------------------------------


def _insert_rows(conn, rows) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {TABLE} (memory_id, key, value, metadata, team_id, user_id,"
            " created_at, created_by, updated_at, updated_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'seed', %s, 'seed')",
            [
                (
                    row.memory_id, row.key, row.value, Jsonb(row.metadata), row.team, row.user,
                    _created_at(row), _updated_at(row),
                )
                for row in rows
            ],
        )


def seed(conn) -> None:
    """LiteLLM's team and organization tables, as the contract's team-admin rule reads them,
    and the memory rows."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by)
               VALUES ('budget-one', 'seed', 'seed')"""
        )
        conn.execute(
            """INSERT INTO "LiteLLM_OrganizationTable"
               (organization_id, organization_alias, budget_id, created_by, updated_by)
               VALUES (%s, 'org one', 'budget-one', 'seed', 'seed')""",
            (ORG,),
        )
        for user, role in ORG_ROLES.items():
            conn.execute('INSERT INTO "LiteLLM_UserTable" (user_id) VALUES (%s)', (user,))
            conn.execute(
                'INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id, user_role)'
                " VALUES (%s, %s, %s)",
                (user, ORG, role),
            )
        for team_id, members in MEMBERS.items():
            roles = [{"user_id": u, "role": r, "user_email": None} for u, r in members.items()]
            conn.execute(
                'INSERT INTO "LiteLLM_TeamTable" (team_id, organization_id, members_with_roles)'
                " VALUES (%s, %s, %s)",
                (team_id, TEAM_ORGANIZATION.get(team_id), Jsonb(roles)),
            )
        _insert_rows(conn, WORLD.rows)


def restore(conn) -> None:
    with conn.transaction():
        conn.execute(f"DELETE FROM {TABLE}")
        _insert_rows(conn, WORLD.rows)


def snapshot(conn) -> dict:
    rows = conn.execute(f"SELECT key, memory_id, value, metadata, team_id, user_id FROM {TABLE}")
    return {key: rest for key, *rest in rows}


def _db_problems(actual: dict, world: World) -> list[str]:
    expected = {r.key: [r.memory_id, r.value, r.metadata, r.team, r.user] for r in world.rows}
    for key, row in expected.items():
        if row[0] is None and key in actual:  # created by the request: any fresh id
            row[0] = actual[key][0]
    if actual == expected:
        return []
    changed = sorted(k for k in actual.keys() | expected.keys() if actual.get(k) != expected.get(k))
    return [f"database: {k} is {actual.get(k)}, expected {expected.get(k)}" for k in changed]


# -- mode "both" and "handlers": HTTP through the proxy --------------------------------------


def _http(proxy, caller: Caller, request: Request):
    auth = api_key(team=caller.team, user=caller.user, role=caller.role)
    if request.key is None:
        params = {**dict(request.match), "page": request.page, "page_size": request.page_size}
        return proxy.request("GET", "/v1/memory", key=auth, params=params)
    body = {}
    if request.value is not None:
        body["value"] = request.value
    if request.metadata is not OMITTED:
        body["metadata"] = request.metadata
    for name in ("user_id", "team_id"):
        if getattr(request, name) is not None:
            body[name] = getattr(request, name)
    if request.method == "POST":
        return proxy.request("POST", "/v1/memory", key=auth, json={"key": request.key, **body})
    return proxy.request(
        request.method, f"/v1/memory/{request.key}", key=auth, json=body or None
    )


def _fields(memory: dict) -> tuple:
    return tuple(memory[n] for n in ("memory_id", "key", "value", "metadata", "team_id", "user_id"))


def _row_fields(row: Row, actual_id: str) -> tuple:
    # A row the request created has an id only the database knows; it must be a uuid.
    memory_id = row.memory_id or str(uuid.UUID(actual_id))
    return (memory_id, row.key, row.value, row.metadata, row.team, row.user)


def _secrets(caller: Caller, request: Request) -> set[str]:
    """What no answer to this caller may contain: anything of the rows it cannot see."""
    unseen = [r for r in WORLD.rows if not model.sees(caller, r)]
    seen = [r for r in WORLD.rows if model.sees(caller, r)]
    known = {caller.team, caller.user, request.team_id, request.user_id}
    known |= {r.team for r in seen} | {r.user for r in seen}
    secrets = set()
    for r in unseen:
        secrets |= {r.value, r.memory_id, r.metadata["row"]}
        secrets |= {t.strftime("%Y-%m-%dT%H:%M:%S") for t in (_created_at(r), _updated_at(r))}
        secrets |= {r.team, r.user} - known
    return secrets - {None}


def _http_problems(proxy, caller, request, outcome, response, references: dict) -> list[str]:
    if response.status_code != outcome.status:
        return [f"status {response.status_code}, expected {outcome.status}: {response.text[:160]}"]
    body = response.json()
    problems = []
    if outcome.status != 200:
        if body != {"detail": outcome.detail}:
            problems.append(f"body {body}, expected detail {outcome.detail!r}")
        if outcome.hidden and outcome.status != 409:
            # Exactly the answer for a key that never existed, apart from the key itself.
            missing = replace(request, key=NEVER_EXISTED)
            if repr(missing) not in references:
                references[repr(missing)] = _http(proxy, caller, missing)
            reference = references[repr(missing)]
            expected = reference.text.replace(NEVER_EXISTED, request.key)
            if (response.status_code, response.text) != (reference.status_code, expected):
                problems.append(f"differs from a missing key's answer {reference.text}")
    elif request.key is None:
        got = [_fields(m) for m in body["memories"]]
        want = [_row_fields(r, None) for r in outcome.rows]
        if got != want or body["total"] != outcome.total:
            problems.append(f"listed {[m[1] for m in got]} total {body['total']}, expected "
                            f"{[r.key for r in outcome.rows]} total {outcome.total}")
    elif request.method == "GET":
        if _fields(body) != _row_fields(outcome.rows[0], None):
            problems.append(f"got {body}")
    elif request.method == "DELETE":
        if body != {"key": request.key, "deleted": True}:
            problems.append(f"got {body}")
    elif _fields(body) != _row_fields(outcome.row, body["memory_id"]):
        problems.append(f"wrote {_fields(body)}, expected {outcome.row}")
    leaked = [s for s in _secrets(caller, request) if s in response.text]
    if leaked:
        problems.append(f"answer reveals {leaked}: {response.text[:160]}")
    return problems


# -- mode "database": the store called directly, no handler filter ------------------------------

EVERY_ROW = sql.SQL("TRUE")  # a forged filter: only row-level security decides


async def _store_call(store, caller: Caller, request: Request):
    """The data-layer operation a handler would run for ``request``, without its filter."""
    existing = WORLD.row(request.key) if request.key else None
    scope = CallerScope(caller.team, caller.user, caller.role)
    try:
        async with store.transaction(scope) as tx:
            if request.key is None:
                rows, total = await tx.page(
                    KeyMatch(**dict(request.match)),
                    where=EVERY_ROW,
                    offset=(request.page - 1) * request.page_size,
                    limit=request.page_size,
                )
                return ("read", tuple(rows), total)
            if request.method == "GET":
                found = await tx.find(request.key, where=EVERY_ROW)
                return ("read", (found,) if found else (), None)
            if request.method == "DELETE":
                outcome = await tx.delete(request.key, where=EVERY_ROW, may_write=EVERY_ROW)
                return ("delete", outcome == DELETED)
            if request.method == "PUT" and existing is not None:
                changes = {}
                if request.value is not None:
                    changes["value"] = request.value
                if request.metadata is not OMITTED:
                    changes["metadata"] = request.metadata
                # Forged: try to move the row to the owners the body names.
                if request.team_id is not None:
                    changes["team_id"] = request.team_id
                if request.user_id is not None:
                    changes["user_id"] = request.user_id
                _, found = await tx.update_key(
                    request.key, changes, where=EVERY_ROW, may_write=EVERY_ROW, actor=caller.user
                )
                return ("update", found)
            if request.value is None:
                return None  # nothing a store call could do
            created = await tx.create(
                key=request.key,
                value=request.value,
                metadata=None if request.metadata is OMITTED else request.metadata,
                user_id=request.user_id if request.user_id is not None else caller.user,
                team_id=request.team_id if request.team_id is not None else caller.session_team,
                actor=caller.user,
            )
            return ("create", created)
    except WriteRefused:
        return ("refused",)
    except KeyTaken:
        return ("taken",)


def _record_fields(record) -> tuple:
    metadata = json.loads(record.metadata_json or "null")  # the store hands over the stored text
    return (record.memory_id, record.key, record.value, metadata, record.team_id, record.user_id)


def _store_expected(caller: Caller, request: Request, outcome) -> tuple:
    """What the database alone must answer, and the rows it must hold afterwards."""
    world_after = model.after(WORLD, outcome)
    if request.key is None or request.method == "GET":
        return ("read", outcome.rows, outcome.total if request.key is None else None), WORLD
    if request.method == "DELETE":
        return ("delete", outcome.effect == "delete"), world_after
    if request.method == "PUT" and WORLD.row(request.key) is not None:
        if outcome.effect != "update":
            return ("update", None), WORLD
        if request.team_id is None and request.user_id is None:
            return ("update", outcome.row), world_after
        # Ownership never changes on update, except by an admin with no team; a refused write
        # raises.
        if not caller.is_admin:
            return ("refused",), WORLD
        moved = replace(outcome.row, team=request.team_id, user=request.user_id)
        return ("update", moved), model.after(WORLD, replace(outcome, row=moved))
    if outcome.effect == "create":
        return ("create", outcome.row), world_after
    return (("taken",) if outcome.status == 409 else ("refused",)), WORLD


def _store_problems(result, expected) -> list[str]:
    kind = expected[0]
    if result[0] != kind:
        return [f"store answered {result}, expected {expected}"]
    if kind == "read":
        got = [_record_fields(r) for r in result[1]]
        want = [_row_fields(r, None) for r in expected[1]]
        if got != want or result[2] != expected[2]:
            return [f"read {[g[1] for g in got]} total {result[2]}, expected "
                    f"{[r.key for r in expected[1]]} total {expected[2]}"]
    elif kind == "delete":
        if result[1] != expected[1]:
            return [f"deleted {result[1]}, expected {expected[1]}"]
    elif kind in ("update", "create"):
        record, row = result[1], expected[1]
        if (record is None) != (row is None) or (
            row is not None and _record_fields(record) != _row_fields(row, record.memory_id)
        ):
            return [f"wrote {record}, expected {row}"]
    return []


# -- the test -------------------------------------------------------------------------------


# The per-request guard would refuse every request of a database without its protection: in
# this mode it only switches the role and sets the scope, as if the guard were gone too.
UNGUARDED_START = f"""
CREATE OR REPLACE FUNCTION {PATCH_SCHEMA}.begin_request(
    revision text, team_id text, user_id text, user_role text, statement_timeout text)
RETURNS void LANGUAGE sql AS $$
    SELECT set_config('role', '{APP_ROLE}', true),
           set_config('litellm_memory.team_id', team_id, true),
           set_config('litellm_memory.user_id', user_id, true),
           set_config('litellm_memory.user_role', user_role, true)
$$"""


def _disable_row_level_security(conn) -> None:
    with conn.transaction():
        conn.execute(f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY")
        conn.execute(f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY")
        conn.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER litellm_memory_enforce_ownership")
        conn.execute(UNGUARDED_START)


@pytest.fixture(scope="module", params=MODES)
def matrix_database(request, server_url, _template):
    """One seeded database per mode; every caller's run leaves it as seeded."""
    target = parse_database_url(create_database(server_url, template=_template))
    migrator.upgrade(target)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        seed(conn)
        if request.param == "handlers":
            _disable_row_level_security(conn)
    return request.param, target


@pytest.fixture
def matrix_proxy(proxy_session, matrix_database, monkeypatch):
    proxy_session.install(matrix_database[1], monkeypatch)
    yield proxy_session
    proxy_session.close_store()


def run_matrix(proxy, caller: Caller, mode: str, target) -> tuple[int, list[str]]:
    """Run every cell for ``caller``; returns how many ran and what went wrong."""
    failures = []
    cells = 0
    references = {}  # the answers for a key that never existed, per request
    store = proxy.app.state.litellm_memory_store
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        restore(conn)
        seeded = snapshot(conn)
        for name, request in requests_for(caller):
            outcome = model.answer(WORLD, caller, request)
            if mode == "database":
                result = proxy.call(_store_call, store, caller, request)
                if result is None:
                    continue
                expected, world_after = _store_expected(caller, request, outcome)
                problems = _store_problems(result, expected)
            else:
                response = _http(proxy, caller, request)
                problems = _http_problems(proxy, caller, request, outcome, response, references)
                world_after = model.after(WORLD, outcome)
            cells += 1
            state = snapshot(conn)
            problems += _db_problems(state, world_after)
            failures += [f"{caller.name} {name}: {p}" for p in problems]
            if state != seeded:
                restore(conn)
    return cells, failures


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.name)
def test_authorization_matrix(matrix_proxy, matrix_database, caller):
    mode, target = matrix_database
    cells, failures = run_matrix(matrix_proxy, caller, mode, target)
    print(f"{mode} {caller.name}: {cells} cells")
    assert cells > 100
    assert not failures, f"{len(failures)} of {cells} cells failed:\n" + "\n".join(failures[:40])
