"""The benchmark's workload: its databases, its callers and the one request of each operation.

Each side (``baseline``, ``patched``) answers the same four operations: GET by key, list page 1,
PUT (an update of a seeded row) and POST (a new key). Callers are members of a few seeded
teams; the databases hold ``teams`` × 100 rows, spread over the table as rows written over
time would be.
"""

from __future__ import annotations

import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from identity_auth import api_key
from litellm_memory_patch import embedded, migrator
from litellm_memory_patch.config import parse_database_url

SIDES = ("baseline", "patched")
OPS = ("get", "list", "put", "post")
OP_NAMES = {"get": "GET by key", "list": "list page 1", "put": "PUT update", "post": "POST create"}
PREFIX = {"baseline": "/bench/baseline", "patched": ""}

ROWS_PER_TEAM = 100
SMALL_TEAMS = 100  # 10,000 rows
LARGE_TEAMS = 10_000  # 1,000,000 rows
CALLER_TEAMS = 8  # the benchmark's callers, present in both databases
CONCURRENCY = 8
POOL_SIZE = 4

LITELLM_CONFIG = """\
model_list: []
general_settings:
  custom_auth: auth_hook.user_auth
"""

SEED = """
INSERT INTO {table} (memory_id, key, value, metadata, user_id, team_id,
                     created_at, created_by, updated_at, updated_by)
SELECT gen_random_uuid()::text,
       format('team-%%s/note-%%s', lpad((g %% t)::text, 5, '0'), lpad((g / t)::text, 3, '0')),
       repeat('v', 200),
       jsonb_build_object('n', g / t),
       format('user-%%s', lpad((g %% t)::text, 5, '0')),
       format('team-%%s', lpad((g %% t)::text, 5, '0')),
       ts, 'seed', ts, 'seed'
FROM generate_series(0, %(rows)s - 1) AS g,
     LATERAL (SELECT %(teams)s::int AS t,
                     timestamp '2026-01-01' + g * interval '1 second' AS ts) AS s
"""


def team(n: int) -> str:
    return f"{n:05d}"


def caller(i: int) -> str:
    """The API key of request ``i``'s caller: a member of one of the caller teams."""
    n = i % CALLER_TEAMS
    if AUTHENTICATION["by"] == "litellm":
        return litellm_key(n)
    return api_key(team=f"team-{team(n)}", user=f"user-{team(n)}", role="internal_user")


def litellm_key(n: int) -> str:
    """Caller ``n``'s LiteLLM virtual key (seeded into LiteLLM's cache by ``realauth``)."""
    return f"sk-bench-{team(n)}"


# Who authenticates the requests: the ``custom_auth`` hook (its key names the caller), or
# LiteLLM's own ``user_api_key_auth`` with virtual keys (``realauth.litellm_auth`` sets it).
AUTHENTICATION = {"by": "custom_auth"}


def seeded_key(i: int) -> str:
    n = i % CALLER_TEAMS
    return f"team-{team(n)}/note-{(i // CALLER_TEAMS) % ROWS_PER_TEAM:03d}"


_post_numbers = itertools.count()


async def send(client, side: str, op: str, i: int, *, check: bool = True):
    """Request ``i`` of ``op`` on ``side``; returns the response."""
    headers = {"Authorization": f"Bearer {caller(i)}"}
    base = PREFIX[side] + "/v1/memory"
    if op == "get":
        response = await client.get(f"{base}/{seeded_key(i)}", headers=headers)
    elif op == "list":
        response = await client.get(base, headers=headers)
    elif op == "put":
        response = await client.put(
            f"{base}/{seeded_key(i)}", headers=headers, json={"value": f"updated {i}"}
        )
    else:
        # The process id keeps keys unique across the memory probes' processes too.
        new_key = f"bench/{side}/{os.getpid()}/{next(_post_numbers)}"
        response = await client.post(
            base, headers=headers, json={"key": new_key, "value": "new", "metadata": {"i": i}}
        )
    if check and response.status_code != 200:
        raise RuntimeError(f"{side} {op}: {response.status_code} {response.text[:300]}")
    return response


def url_for(server_url: str, database: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def prepare_database(server_url: str, name: str, teams: int) -> str:
    """A database with LiteLLM's schema, the migrations and ``teams`` × 100 seeded rows."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = url_for(server_url, name)
    embedded.apply_litellm_schema(url)
    migrator.upgrade(parse_database_url(url))
    table = sql.Identifier("LiteLLM_MemoryTable")
    with psycopg.connect(url) as conn:
        # Replica mode skips the ownership trigger for the bulk load, for this transaction only.
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            sql.SQL(SEED).format(table=table), {"rows": teams * ROWS_PER_TEAM, "teams": teams}
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))
    return url
