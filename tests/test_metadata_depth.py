"""Deeply nested metadata: refused before anything is written, and any stored row reads back.

A row's metadata is returned as PostgreSQL stores it, whatever its depth, so a row written by
LiteLLM's own handlers or by SQL can never make a GET or a list answer 500.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from identity_auth import api_key
from litellm_memory_patch.routes import MAX_METADATA_DEPTH, METADATA_TOO_DEEP

TEAM_KEY = api_key(team="team-1", user="user-1")
ADMIN_KEY = api_key(user="admin", role="proxy_admin")
VIEWER_KEY = api_key(user="viewer", role="proxy_admin_viewer")


def nested(depth: int) -> dict:
    """``{"a": {"a": ... {"a": 1} ...}}`` with ``depth`` objects."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_text(depth: int) -> str:
    """The same as JSON text, built without recursion."""
    return '{"a": ' * depth + "1" + "}" * depth


def depth_of(text: str) -> int:
    """How deeply the objects of a JSON text of :func:`nested_text`'s shape nest."""
    return text.count("{")


def listed(proxy, key: str) -> dict:
    answer = proxy.request("GET", "/v1/memory", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 255, 700, 950, 5000])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_metadata_nested_beyond_the_limit_is_a_400_and_writes_nothing(proxy, method, depth):
    body = '{"key": "deep", "value": "v", "metadata": ' + nested_text(depth) + "}"
    path = "/v1/memory" if method == "POST" else "/v1/memory/deep"
    answer = proxy.request(
        method, path, key=TEAM_KEY, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    if depth <= 900:  # deeper than that, the body does not even parse as JSON in Python
        assert answer.json()["detail"] == METADATA_TOO_DEEP
    for key in (TEAM_KEY, ADMIN_KEY, VIEWER_KEY):
        assert listed(proxy, key)["total"] == 0


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_metadata_at_the_limit_is_stored_and_reads_back(proxy, method):
    metadata = nested(MAX_METADATA_DEPTH)
    path = "/v1/memory" if method == "POST" else "/v1/memory/deep"
    answer = proxy.request(method, path, key=TEAM_KEY, json={"key": "deep", "value": "v", "metadata": metadata})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == metadata
    assert proxy.request("GET", "/v1/memory/deep", key=TEAM_KEY).json()["metadata"] == metadata
    assert listed(proxy, TEAM_KEY)["memories"][0]["metadata"] == metadata


def test_an_update_nested_beyond_the_limit_leaves_the_row_as_it_was(proxy):
    created = proxy.request("POST", "/v1/memory", key=TEAM_KEY, json={"key": "k", "value": "v", "metadata": {"a": 1}})
    assert created.status_code == 200, created.text
    answer = proxy.request("PUT", "/v1/memory/k", key=TEAM_KEY, json={"value": "w", "metadata": nested(255)})
    assert answer.status_code == 400, answer.text
    assert proxy.request("GET", "/v1/memory/k", key=TEAM_KEY).json() == created.json()


# Rows written by LiteLLM's own handlers (Prisma) or by SQL know no limit.
STORED = {
    "nested 255": nested_text(255),
    "nested 2000": nested_text(2000),
    "an array": "[1, [2, [3]]]",
    "a string": '"text"',
    "a number": "12.5",
    "JSON null": "null",
}


@pytest.mark.parametrize("case", STORED, ids=str)
def test_any_stored_metadata_reads_back_through_every_route(proxy, case):
    stored = STORED[case]
    with psycopg.connect(proxy.database.conninfo, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO "LiteLLM_MemoryTable" (memory_id, key, value, metadata, team_id, user_id)'
            " VALUES ('stored-row', 'stored', 'v', %s::jsonb, 'team-1', 'user-1')",
            (stored,),
        )
        # Sorted key order and spacing are PostgreSQL's: compare with its own text.
        expected_text = conn.execute(
            'SELECT metadata::text FROM "LiteLLM_MemoryTable" WHERE key = %s', ("stored",)
        ).fetchone()[0]

    def metadata_text(answer_text: str) -> str:
        # The answer's metadata, cut out as text: Python's json cannot parse 2000 levels.
        start = answer_text.index('"metadata":') + len('"metadata":')
        return answer_text[start : start + len(expected_text)]

    one = proxy.request("GET", "/v1/memory/stored", key=TEAM_KEY)
    assert one.status_code == 200, one.text[:300]
    assert metadata_text(one.text) == expected_text
    for key in (TEAM_KEY, ADMIN_KEY, VIEWER_KEY):
        answer = proxy.request("GET", "/v1/memory", key=key)
        assert answer.status_code == 200, answer.text[:300]
        assert metadata_text(answer.text) == expected_text
        assert answer.text.endswith(',"total":1}')
    if depth_of(stored) < 500:
        row = json.loads(one.text)
        assert row["memory_id"] == "stored-row" and row["metadata"] == json.loads(stored)

    # The row is still the caller's to change and to delete.
    updated = proxy.request("PUT", "/v1/memory/stored", key=TEAM_KEY, json={"value": "w"})
    assert updated.status_code == 200, updated.text[:300]
    assert metadata_text(updated.text) == expected_text
    replaced = proxy.request("PUT", "/v1/memory/stored", key=TEAM_KEY, json={"metadata": {"a": 1}})
    assert replaced.status_code == 200 and replaced.json()["metadata"] == {"a": 1}
    deleted = proxy.request("DELETE", "/v1/memory/stored", key=TEAM_KEY)
    assert deleted.status_code == 200, deleted.text
    assert listed(proxy, ADMIN_KEY)["total"] == 0
