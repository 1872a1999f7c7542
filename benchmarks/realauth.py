"""LiteLLM's own authentication for the benchmark: ``user_api_key_auth`` with no ``custom_auth``.

As production requests are authenticated: a master key set, no ``custom_auth`` hook, and each
caller's virtual key, user and team served from LiteLLM's in-memory cache, where LiteLLM keeps
them after a key's first request. They are seeded there as LiteLLM stores them, as the test
suite does (``tests/litellm_auth.py``); LiteLLM's database client is a stand-in that fails on
any use, so every answer comes from the cache. The keys belong to internal users and name both
sides' memory routes in ``allowed_routes``, as LiteLLM requires for such a key to reach them.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager

import workload
from workload import CALLER_TEAMS, PREFIX, SIDES, litellm_key, team

MASTER_KEY = "sk-bench-master-key"
# Longer than any run: LiteLLM's cache would otherwise expire the seeded rows after a minute.
SEEDED_FOR_SECONDS = 24 * 3600


class NoDatabase:
    """LiteLLM's database client as its auth sees it here: present, failing on any use."""

    def __getattr__(self, name):
        raise RuntimeError(f"LiteLLM's database is not available in the benchmark (used: {name})")


async def _seed(cache) -> None:
    from litellm.proxy._types import (
        LiteLLM_TeamMembership,
        LiteLLM_TeamTableCachedObj,
        LiteLLM_UserTable,
        Member,
        UserAPIKeyAuth,
    )
    from litellm.proxy.utils import hash_token

    # LiteLLM 1.110's UserApiKeyCache takes the stored object's class; 1.83's DualCache does not.
    typed = "model_type" in inspect.signature(cache.async_set_cache).parameters

    async def put(key: str, value) -> None:
        extra = {"model_type": type(value)} if typed else {}
        await cache.async_set_cache(key, value, ttl=SEEDED_FOR_SECONDS, **extra)

    routes = [PREFIX[side] + path for side in SIDES for path in ("/v1/memory", "/v1/memory/*")]
    for n in range(CALLER_TEAMS):
        team_id, user_id = f"team-{team(n)}", f"user-{team(n)}"
        await put(
            user_id, LiteLLM_UserTable(user_id=user_id, user_role="internal_user", teams=[team_id])
        )
        await put(
            f"team_id:{team_id}",
            LiteLLM_TeamTableCachedObj(
                team_id=team_id, members_with_roles=[Member(user_id=user_id, role="user")]
            ),
        )
        # The user's membership of the team, which LiteLLM looks up at every request of a key
        # with both (kept in its cache as a dict); missing, it would ask its database each time.
        await put(
            f"team_membership:{user_id}:{team_id}",
            LiteLLM_TeamMembership(
                user_id=user_id, team_id=team_id, litellm_budget_table=None
            ).model_dump(),
        )
        token = hash_token(litellm_key(n))
        await put(
            token,
            UserAPIKeyAuth(
                token=token, user_id=user_id, team_id=team_id, allowed_routes=routes, models=[],
                spend=0.0,
            ),
        )


@asynccontextmanager
async def litellm_auth():
    """Requests inside authenticate through LiteLLM's own auth; everything restored after."""
    import litellm.proxy.proxy_server as proxy_server

    names = ("user_custom_auth", "prisma_client", "master_key")
    saved = {name: getattr(proxy_server, name) for name in names}
    proxy_server.user_custom_auth = None
    proxy_server.prisma_client = NoDatabase()
    proxy_server.master_key = MASTER_KEY
    await _seed(proxy_server.user_api_key_cache)
    workload.AUTHENTICATION["by"] = "litellm"
    try:
        yield
    finally:
        workload.AUTHENTICATION["by"] = "custom_auth"
        for name, value in saved.items():
            setattr(proxy_server, name, value)
        proxy_server.user_api_key_cache.flush_cache()
