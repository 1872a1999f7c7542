"""Hundreds of concurrent requests from many teams over a pool of two connections.

Every team's key carries the same user (the LiteLLM #27722 set-up), so a scope left behind on a
pooled connection, or a filter confused by the shared user, would hand one team another team's
row. Afterwards each pooled connection must carry nothing of the requests it served.
"""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from identity_auth import api_key

TEAMS = [f"team-{n:02d}" for n in range(10)]
KEYS_PER_TEAM = 10
SHARED_USER = "shared-user"
TABLE = '"LiteLLM_MemoryTable"'


@pytest.fixture
def two_connection_proxy(proxy_session, migrated_db, monkeypatch):
    monkeypatch.setenv("LITELLM_MEMORY_POOL_MIN_SIZE", "2")
    monkeypatch.setenv("LITELLM_MEMORY_POOL_MAX_SIZE", "2")
    # The queue for two connections is long on a busy machine; waiting must not turn into 503s.
    monkeypatch.setenv("LITELLM_MEMORY_POOL_TIMEOUT", "120")
    proxy_session.install(migrated_db, monkeypatch)
    proxy_session.database = migrated_db
    yield proxy_session
    proxy_session.close_store()


def _foreign(team: str, text: str) -> list[str]:
    """Any other team's marker in an answer to ``team``."""
    return [other for other in TEAMS if other != team and other in text]


async def _chain(client: httpx.AsyncClient, team: str, n: int) -> list[str]:
    """One key's life in ``team``, with probes at a neighbour team's key on the way."""
    auth = {"Authorization": f"Bearer {api_key(team=team, user=SHARED_USER)}"}
    key = f"{team}/key-{n}"
    neighbour_key = f"{TEAMS[(TEAMS.index(team) + 1) % len(TEAMS)]}/key-{n}"
    problems = []

    def expect(answer: httpx.Response, status: int, *, echoed: str = "") -> None:
        if answer.status_code != status:
            problems.append(f"{team} {answer.request.method} {answer.request.url.path}: "
                            f"{answer.status_code} {answer.text[:200]}")
        # A 404 names the key asked for; anything else of another team is a leak.
        if _foreign(team, answer.text.replace(echoed, "") if echoed else answer.text):
            problems.append(f"{team} got another team's data: {answer.text[:200]}")

    expect(await client.post("/v1/memory", headers=auth, json={"key": key, "value": f"{team} secret"}), 200)
    expect(await client.get(f"/v1/memory/{key}", headers=auth), 200)
    # The neighbour's key may or may not exist yet: either way this team cannot see it.
    expect(await client.get(f"/v1/memory/{neighbour_key}", headers=auth), 404, echoed=neighbour_key)
    expect(await client.delete(f"/v1/memory/{neighbour_key}", headers=auth), 404, echoed=neighbour_key)
    updated = await client.put(f"/v1/memory/{key}", headers=auth, json={"value": f"{team} updated"})
    expect(updated, 200)
    listed = await client.get("/v1/memory", headers=auth, params={"page_size": 500})
    expect(listed, 200)
    if listed.status_code == 200 and any(m["team_id"] != team for m in listed.json()["memories"]):
        problems.append(f"{team} listed another team's row")
    if n % 2:
        expect(await client.delete(f"/v1/memory/{key}", headers=auth), 200)
    return problems


async def _run_all(app) -> tuple[int, list[str]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        results = await asyncio.gather(
            *(_chain(client, team, n) for team in TEAMS for n in range(KEYS_PER_TEAM))
        )
    requests = len(TEAMS) * KEYS_PER_TEAM * 6 + len(TEAMS) * KEYS_PER_TEAM // 2  # 650
    return requests, [problem for problems in results for problem in problems]


async def _pooled_connection_state(store) -> list[tuple]:
    """What each of the pool's two connections carries, borrowed both at once."""
    pool = store._pool  # the store keeps its pool private; only this check needs it
    async with pool.connection() as first, pool.connection() as second:
        states = []
        for conn in (first, second):
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            cur = await conn.execute(
                "SELECT current_setting('litellm_memory.team_id', true),"
                " current_setting('litellm_memory.user_id', true),"
                " current_setting('litellm_memory.user_role', true),"
                " current_user = session_user, current_setting('statement_timeout'),"
                " pg_backend_pid()"
            )
            states.append((idle, *await cur.fetchone()))
        return states


def test_concurrent_teams_over_two_connections_never_cross(two_connection_proxy):
    proxy = two_connection_proxy
    requests, problems = proxy.call(_run_all, proxy.app)
    assert requests >= 400
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])

    store = proxy.app.state.litellm_memory_store
    # The two connections were shared: requests had to queue for them.
    assert store._pool.get_stats().get("requests_queued", 0) > 0

    with psycopg.connect(proxy.database.conninfo) as conn:
        rows = conn.execute(f"SELECT key, value, team_id, user_id FROM {TABLE}").fetchall()
        default_timeout = conn.execute("SHOW statement_timeout").fetchone()[0]
    assert len(rows) == len(TEAMS) * KEYS_PER_TEAM // 2
    for key, value, team, user in rows:
        assert key.startswith(f"{team}/") and value == f"{team} updated" and user == SHARED_USER

    states = proxy.call(_pooled_connection_state, store)
    assert len({state[-1] for state in states}) == 2
    for idle, team, user, role, same_user, timeout, _pid in states:
        assert idle
        assert team in (None, "") and user in (None, "") and role in (None, "")
        assert same_user  # back to the login role, not litellm_memory_app
        assert timeout == default_timeout
