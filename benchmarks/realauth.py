"""LiteLLM's own authentication for the benchmark: ``user_api_key_auth`` with no ``custom_auth``.

As production requests are authenticated: a master key set, no ``custom_auth`` hook, and each
caller's virtual key, user and team served from LiteLLM's in-memory cache, where LiteLLM keeps
them after a key's first request. They are seeded there as LiteLLM stores them, as the test
suite and the demo do (``litellm_memory_patch.litellm_cache``); LiteLLM's database client is a
stand-in that fails on any use, so every answer comes from the cache. The keys belong to
internal users and name both sides' memory routes in ``allowed_routes``, as LiteLLM requires
for such a key to reach them.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import workload
from litellm_memory_patch.litellm_cache import AuthCache, NoDatabase
from workload import CALLER_TEAMS, PREFIX, SIDES, litellm_key, team

MASTER_KEY = "sk-bench-master-key"


async def _seed() -> None:
    cache = AuthCache()
    routes = [PREFIX[side] + path for side in SIDES for path in ("/v1/memory", "/v1/memory/*")]
    for n in range(CALLER_TEAMS):
        team_id, user_id = f"team-{team(n)}", f"user-{team(n)}"
        await cache.user(user_id, "internal_user", teams=(team_id,))
        await cache.team(team_id, members={user_id: "user"})
        await cache.key(litellm_key(n), user=user_id, team=team_id, allowed_routes=routes)


@asynccontextmanager
async def litellm_auth():
    """Requests inside authenticate through LiteLLM's own auth; everything restored after."""
    import litellm.proxy.proxy_server as proxy_server

    names = ("user_custom_auth", "prisma_client", "master_key")
    saved = {name: getattr(proxy_server, name) for name in names}
    proxy_server.user_custom_auth = None
    proxy_server.prisma_client = NoDatabase()
    proxy_server.master_key = MASTER_KEY
    await _seed()
    workload.AUTHENTICATION["by"] = "litellm"
    try:
        yield
    finally:
        workload.AUTHENTICATION["by"] = "custom_auth"
        for name, value in saved.items():
            setattr(proxy_server, name, value)
        proxy_server.user_api_key_cache.flush_cache()
