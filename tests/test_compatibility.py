"""Compatibility with LiteLLM: the same rows, bodies, routes and schema, and 4xx/503 instead of 500.

Rows are written the way LiteLLM's Prisma client writes them and must read back exactly as
LiteLLM's own handlers would serialize them (its ``_row_to_model`` and ``LiteLLM_MemoryRow``);
rows the patch writes must have the shape Prisma gives them. Bad input and a broken database
must answer with a clear 4xx or a 503 that reveals nothing of the database.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import psycopg
import pytest
from litellm.proxy.memory.memory_endpoints import _row_to_model
from psycopg import sql

from identity_auth import api_key
from litellm_memory_patch.config import DatabaseTarget

TABLE = '"LiteLLM_MemoryTable"'
PATCH_HEADER = "x-litellm-memory-patch"
TEAM = "team-compat"
CALLER = api_key(team=TEAM, user="user-compat", role="internal_user")
ADMIN = api_key(user="user-root", role="proxy_admin")
MIGRATE_HINT = "litellm-memory-patch migrate"
COLUMNS = "memory_id, key, value, metadata, user_id, team_id, created_at, created_by, updated_at, updated_by"


def _db_row(database, key: str) -> dict:
    with psycopg.connect(database.conninfo) as conn:
        cur = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key = %s", (key,))
        names = [d.name for d in cur.description]
        found = cur.fetchone()
    return dict(zip(names, found)) if found else None


def litellm_answer(row: dict) -> dict:
    """The JSON LiteLLM's own handler gives for this database row.

    Prisma hands LiteLLM each TIMESTAMP(3) as an aware UTC datetime and the JSONB value already
    decoded (JSON null and SQL NULL both as None).
    """
    prisma_record = SimpleNamespace(
        **{
            **row,
            "created_at": row["created_at"].replace(tzinfo=timezone.utc),
            "updated_at": row["updated_at"].replace(tzinfo=timezone.utc),
        }
    )
    return _row_to_model(prisma_record).model_dump(mode="json")


# -- rows LiteLLM wrote read back identically --------------------------------------------------

SQL_NULL = object()
METADATA_SHAPES = {
    "object": {"tags": ["a", "b"], "nested": {"n": 1, "none": None}},
    "list": [1, "two", {"three": 3.5}],
    "string": "hello",
    "number": 42,
    "boolean": True,
    "json-null": None,
    "sql-null": SQL_NULL,
}


@pytest.fixture
def prisma_rows(proxy):
    """One row per metadata shape, inserted as Prisma inserts them."""
    base = datetime(2026, 5, 6, 7, 8, 9, 123000)
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        for i, (name, metadata) in enumerate(METADATA_SHAPES.items()):
            conn.execute(
                f"INSERT INTO {TABLE} ({COLUMNS})"
                " VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)",
                (
                    str(uuid.uuid4()),
                    f"prisma/{name}",
                    f"value of {name}",
                    None if metadata is SQL_NULL else json.dumps(metadata),
                    "user-compat" if i % 2 else None,
                    TEAM,
                    base.replace(microsecond=0) + timedelta(minutes=i),  # whole seconds too
                    "user-compat",
                    base + timedelta(hours=i, milliseconds=i),
                    None,
                ),
            )
    return [f"prisma/{name}" for name in METADATA_SHAPES]


def test_rows_written_by_litellm_read_back_as_litellm_serializes_them(proxy, prisma_rows):
    expected = {key: litellm_answer(_db_row(proxy.database, key)) for key in prisma_rows}
    for key in prisma_rows:
        got = proxy.request("GET", f"/v1/memory/{key}", key=CALLER)
        assert got.status_code == 200, got.text
        assert got.json() == expected[key]
    listed = proxy.request("GET", "/v1/memory", key=CALLER).json()
    newest_first = sorted(expected.values(), key=lambda row: row["updated_at"], reverse=True)
    assert listed == {"memories": newest_first, "total": len(prisma_rows)}


# -- rows the patch writes have Prisma's shape ---------------------------------------------------


@pytest.fixture
def proxy_far_from_utc(proxy_session, migrated_db, monkeypatch):
    """The proxy on a database whose sessions default to UTC+14: a timestamp written in local
    time instead of UTC would be 14 hours off."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET timezone TO 'Pacific/Kiritimati'").format(
                sql.Identifier(conn.info.dbname)
            )
        )
    proxy_session.install(migrated_db, monkeypatch)
    proxy_session.database = migrated_db
    yield proxy_session
    proxy_session.close_store()


def _assert_prisma_timestamp(value: datetime, *, around: datetime) -> None:
    assert value.tzinfo is None  # TIMESTAMP(3) WITHOUT TIME ZONE, holding UTC
    assert value.microsecond % 1000 == 0  # millisecond precision
    assert abs(value - around) < timedelta(minutes=5)


def test_rows_written_by_the_patch_have_prismas_shape(proxy_far_from_utc):
    proxy, database = proxy_far_from_utc, proxy_far_from_utc.database
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    created = proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "shape", "value": "v1"})
    assert created.status_code == 200, created.text
    row = _db_row(database, "shape")
    assert row["memory_id"] == str(uuid.UUID(row["memory_id"]))  # canonical uuid text
    assert uuid.UUID(row["memory_id"]).version == 4
    _assert_prisma_timestamp(row["created_at"], around=now)
    assert row["updated_at"] == row["created_at"]
    assert row["metadata"] is None and row["created_by"] == row["updated_by"] == "user-compat"
    assert created.json() == litellm_answer(row)

    time.sleep(0.01)  # past the timestamps' millisecond precision
    updated = proxy.request("PUT", "/v1/memory/shape", key=CALLER, json={"value": "v2"})
    assert updated.status_code == 200, updated.text
    after = _db_row(database, "shape")
    assert after["created_at"] == row["created_at"]
    assert after["updated_at"] > row["updated_at"]
    _assert_prisma_timestamp(after["updated_at"], around=now)
    assert updated.json() == litellm_answer(after)
    assert proxy.request("GET", "/v1/memory/shape", key=CALLER).json() == litellm_answer(after)


def _metadata_column(database, key: str):
    """(SQL NULL?, jsonb type, value) of the metadata column."""
    with psycopg.connect(database.conninfo) as conn:
        return conn.execute(
            f"SELECT metadata IS NULL, jsonb_typeof(metadata), metadata FROM {TABLE} WHERE key = %s",
            (key,),
        ).fetchone()


@pytest.mark.parametrize(
    "method, body",
    [
        pytest.param("POST", {"key": "m", "value": "v"}, id="post-omitted"),
        pytest.param("POST", {"key": "m", "value": "v", "metadata": None}, id="post-null"),
        pytest.param("PUT", {"value": "v"}, id="put-create-omitted"),
        pytest.param("PUT", {"value": "v", "metadata": None}, id="put-create-null"),
    ],
)
def test_create_without_metadata_stores_sql_null(proxy, method, body):
    path = "/v1/memory" if method == "POST" else "/v1/memory/m"
    answer = proxy.request(method, path, key=CALLER, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] is None
    assert _metadata_column(proxy.database, "m") == (True, None, None)


def test_update_metadata_null_stores_json_null_and_omitted_keeps_it(proxy):
    proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "m", "value": "v", "metadata": {"a": 1}})
    kept = proxy.request("PUT", "/v1/memory/m", key=CALLER, json={"value": "v2"})
    assert kept.json()["metadata"] == {"a": 1}
    assert _metadata_column(proxy.database, "m") == (False, "object", {"a": 1})

    cleared = proxy.request("PUT", "/v1/memory/m", key=CALLER, json={"metadata": None})
    assert cleared.status_code == 200 and cleared.json()["metadata"] is None
    # LiteLLM stores an explicit null as the JSON literal null, not SQL NULL.
    assert _metadata_column(proxy.database, "m") == (False, "null", None)
    assert _db_row(proxy.database, "m")["value"] == "v2"


# -- the routes: header and OpenAPI -------------------------------------------------------------


def test_every_memory_answer_names_the_patch(proxy):
    proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "h", "value": "v"})
    answers = {
        "created": proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "h2", "value": "v"}),
        "listed": proxy.request("GET", "/v1/memory", key=CALLER),
        "read": proxy.request("GET", "/v1/memory/h", key=CALLER),
        "updated": proxy.request("PUT", "/v1/memory/h", key=CALLER, json={"value": "w"}),
        "deleted": proxy.request("DELETE", "/v1/memory/h2", key=CALLER),
        "not found": proxy.request("GET", "/v1/memory/missing", key=CALLER),
        "conflict": proxy.request("POST", "/v1/memory", key=ADMIN, json={"key": "h", "value": "v"}),
        "bad input": proxy.request("GET", "/v1/memory/", key=CALLER),
        "invalid body": proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "x"}),
        # No credentials at all: LiteLLM's auth refuses the request before the handler runs.
        "unauthenticated": proxy.request("GET", "/v1/memory/h", key="", headers={"Authorization": ""}),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "created": 200, "listed": 200, "read": 200, "updated": 200, "deleted": 200,
        "not found": 404, "conflict": 409, "bad input": 400, "invalid body": 422,
        "unauthenticated": 401,
    }
    from litellm_memory_patch import __version__

    assert {name: a.headers.get(PATCH_HEADER) for name, a in answers.items()} == {
        name: __version__ for name in answers
    }


def test_openapi_shows_the_five_patched_operations_once(proxy):
    from litellm_memory_patch import routes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = proxy.request("GET", "/openapi.json", key=CALLER).json()
    # FastAPI warns of each duplicate operation id (LiteLLM has some of its own elsewhere).
    assert not [w for w in caught if "memory" in str(w.message)]
    memory_paths = {
        path: operations
        for path, operations in schema["paths"].items()
        if path == "/v1/memory" or path.startswith("/v1/memory/")
    }
    assert {(path, method) for path, ops in memory_paths.items() for method in ops} == {
        ("/v1/memory", "get"),
        ("/v1/memory", "post"),
        ("/v1/memory/{key}", "get"),
        ("/v1/memory/{key}", "put"),
        ("/v1/memory/{key}", "delete"),
    }
    # Each operation is the patched handler's, not LiteLLM's stock one.
    for route in routes.router.routes:
        (method,) = route.methods
        operation = memory_paths[route.path.replace("{key:path}", "{key}")][method.lower()]
        assert operation["description"] == route.description
    listed = memory_paths["/v1/memory"]["get"]
    assert [p["name"] for p in listed["parameters"]] == ["key", "key_prefix", "search", "page", "page_size"]

    # The app holds the five patched routes and no stock one, after several installs.
    # FastAPI 0.165 (LiteLLM 1.108) keeps an included router as one entry holding the router.
    entries = [
        route
        for entry in proxy.app.router.routes
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry])
    ]
    served = [route for route in entries if getattr(route, "path", "").startswith("/v1/memory")]
    assert sorted((r.path, *sorted(r.methods)) for r in served) == sorted(
        (r.path, *sorted(r.methods)) for r in routes.router.routes
    )
    assert all(r.endpoint.__module__ == routes.__name__ for r in served)


# -- bad input: a clear 4xx, never a 500 --------------------------------------------------------

LONG_KEY = "k" * 1025
LONG_MULTIBYTE_KEY = "\u20ac" * 342  # 342 characters, 1026 bytes

JSON = {"content-type": "application/json"}
BAD_INPUT = [
    pytest.param("GET", "/v1/memory/a%00b", {}, 400, id="nul-in-key-get"),
    pytest.param("PUT", "/v1/memory/a%00b", {"json": {"value": "v"}}, 400, id="nul-in-key-put"),
    pytest.param("DELETE", "/v1/memory/a%00b", {}, 400, id="nul-in-key-delete"),
    pytest.param("POST", "/v1/memory", {"json": {"key": "a\x00b", "value": "v"}}, 400, id="nul-in-key-post"),
    pytest.param("POST", "/v1/memory", {"json": {"key": "k", "value": "a\x00b"}}, 400, id="nul-in-value-post"),
    pytest.param("PUT", "/v1/memory/k", {"json": {"value": "a\x00b"}}, 400, id="nul-in-value-put"),
    pytest.param(
        "POST", "/v1/memory", {"json": {"key": "k", "value": "v", "metadata": {"x": ["\x00"]}}}, 400,
        id="nul-in-metadata-value",
    ),
    pytest.param(
        "PUT", "/v1/memory/k", {"json": {"value": "v", "metadata": {"a\x00": 1}}}, 400,
        id="nul-in-metadata-name",
    ),
    pytest.param(
        "POST", "/v1/memory", {"json": {"key": "k", "value": "v", "team_id": "t\x00"}}, 400,
        id="nul-in-team-id",
    ),
    pytest.param("GET", "/v1/memory", {"params": {"key": "a\x00"}}, 400, id="nul-in-list-key"),
    pytest.param("GET", "/v1/memory", {"params": {"key_prefix": "a\x00"}}, 400, id="nul-in-list-prefix"),
    pytest.param("GET", "/v1/memory", {"params": {"search": "a\x00"}}, 400, id="nul-in-list-search"),
    pytest.param("GET", "/v1/memory/", {}, 400, id="empty-key-get"),
    pytest.param("PUT", "/v1/memory/", {"json": {"value": "v"}}, 400, id="empty-key-put"),
    pytest.param("DELETE", "/v1/memory/", {}, 400, id="empty-key-delete"),
    pytest.param("POST", "/v1/memory", {"json": {"key": "", "value": "v"}}, 400, id="empty-key-post"),
    pytest.param("GET", f"/v1/memory/{LONG_KEY}", {}, 400, id="long-key-get"),
    pytest.param("PUT", f"/v1/memory/{LONG_KEY}", {"json": {"value": "v"}}, 400, id="long-key-put"),
    pytest.param("DELETE", f"/v1/memory/{LONG_KEY}", {}, 400, id="long-key-delete"),
    pytest.param("POST", "/v1/memory", {"json": {"key": LONG_KEY, "value": "v"}}, 400, id="long-key-post"),
    pytest.param(
        "POST", "/v1/memory", {"json": {"key": LONG_MULTIBYTE_KEY, "value": "v"}}, 400,
        id="long-multibyte-key",
    ),
    pytest.param(
        "POST", "/v1/memory", {"content": b'{"key": "k", "value": ', "headers": JSON}, 422,
        id="truncated-json",
    ),
    pytest.param("PUT", "/v1/memory/k", {"content": b"{not json", "headers": JSON}, 422, id="malformed-json"),
    pytest.param("POST", "/v1/memory", {"json": {"key": "k", "value": 5}}, 422, id="value-not-a-string"),
    pytest.param("PUT", "/v1/memory/k", {"json": {}}, 400, id="put-nothing"),
    pytest.param("PUT", "/v1/memory/k", {"json": {"metadata": {"a": 1}}}, 400, id="put-create-without-value"),
    pytest.param("GET", "/v1/memory", {"params": {"page": 0}}, 422, id="page-zero"),
    pytest.param("GET", "/v1/memory", {"params": {"page": "many"}}, 422, id="page-not-a-number"),
    pytest.param("GET", "/v1/memory", {"params": {"page_size": 501}}, 422, id="page-size-too-large"),
]


@pytest.mark.parametrize("method, path, kwargs, status", BAD_INPUT)
def test_bad_input_gets_a_clear_4xx(proxy, method, path, kwargs, status):
    answer = proxy.request(method, path, key=CALLER, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]  # FastAPI's list of errors, or the patch's sentence
    with psycopg.connect(proxy.database.conninfo) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (0,)


def test_key_at_the_length_limit_is_accepted(proxy):
    key = "k" * 1024
    assert proxy.request("POST", "/v1/memory", key=CALLER, json={"key": key, "value": "v"}).status_code == 200
    assert proxy.request("GET", f"/v1/memory/{key}", key=CALLER).json()["key"] == key


def test_huge_page_is_an_empty_page(proxy):
    proxy.request("POST", "/v1/memory", key=CALLER, json={"key": "k", "value": "v"})
    for page in (10**6, 2**62, 10**30):
        answer = proxy.request("GET", "/v1/memory", key=CALLER, params={"page": page, "page_size": 500})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"memories": [], "total": 1}


def test_value_or_metadata_over_the_size_limit_is_413(proxy_session, migrated_db, monkeypatch):
    monkeypatch.setenv("LITELLM_MEMORY_MAX_VALUE_BYTES", "16")
    proxy_session.install(migrated_db, monkeypatch)
    try:
        request = proxy_session.request
        assert request("POST", "/v1/memory", key=CALLER, json={"key": "a", "value": "x" * 16}).status_code == 200
        too_large = [
            request("POST", "/v1/memory", key=CALLER, json={"key": "b", "value": "x" * 17}),
            # The limit counts bytes: 9 characters, 18 bytes.
            request("POST", "/v1/memory", key=CALLER, json={"key": "b", "value": "\u00e9" * 9}),
            request("POST", "/v1/memory", key=CALLER, json={"key": "b", "value": "v", "metadata": ["x" * 20]}),
            request("PUT", "/v1/memory/a", key=CALLER, json={"value": "x" * 17}),
            request("PUT", "/v1/memory/b", key=CALLER, json={"value": "x" * 17}),
        ]
        assert [a.status_code for a in too_large] == [413] * len(too_large)
        assert all("16 bytes" in a.json()["detail"] for a in too_large)
        assert request("GET", "/v1/memory/a", key=CALLER).json()["value"] == "x" * 16
        assert request("GET", "/v1/memory/b", key=CALLER).status_code == 404
    finally:
        proxy_session.close_store()


# -- a database that cannot serve: 503, and the rest of the proxy keeps serving ------------------

FIVE_ROUTES = [
    ("POST", "/v1/memory", {"json": {"key": "k", "value": "v"}}),
    ("GET", "/v1/memory", {}),
    ("GET", "/v1/memory/k", {}),
    ("PUT", "/v1/memory/k", {"json": {"value": "v"}}),
    ("DELETE", "/v1/memory/k", {}),
]


def test_not_migrated_database_answers_503_naming_the_fix(proxy_session, litellm_db, monkeypatch):
    proxy_session.install(litellm_db, monkeypatch)
    try:
        for method, path, kwargs in FIVE_ROUTES:
            answer = proxy_session.request(method, path, key=CALLER, **kwargs)
            assert answer.status_code == 503, answer.text
            assert MIGRATE_HINT in answer.json()["detail"]
            assert answer.headers.get(PATCH_HEADER)
        alive = proxy_session.request("GET", "/health/liveliness", key=CALLER)
        assert alive.status_code == 200
    finally:
        proxy_session.close_store()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_database_answers_503_without_internals(proxy_session, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("LITELLM_MEMORY_POOL_TIMEOUT", "1")
    monkeypatch.setenv("LITELLM_MEMORY_CONNECT_TIMEOUT", "1")
    unreachable = DatabaseTarget(conninfo=f"postgresql://memuser@127.0.0.1:{port}/memdb")
    proxy_session.install(unreachable, monkeypatch)
    try:
        for method, path, kwargs in FIVE_ROUTES:
            started = time.monotonic()
            answer = proxy_session.request(method, path, key=CALLER, **kwargs)
            # It must not hang: the pool gives up after its 1 s timeout.
            assert time.monotonic() - started < 30
            assert answer.status_code == 503, answer.text
            assert answer.headers.get(PATCH_HEADER)
            text = answer.text.lower()
            for internal in ("select", "insert", "memorytable", "127.0.0.1", str(port), "memuser",
                             "memdb", "postgres", "psycopg", "connection refused"):
                assert internal not in text, answer.text
        assert proxy_session.request("GET", "/health/liveliness", key=CALLER).status_code == 200
    finally:
        proxy_session.close_store()
