"""LiteLLM's own authentication without its database: keys, users and teams in its auth cache.

LiteLLM's ``user_api_key_auth`` reads a key, its owner and its team from its in-memory cache
before any database, and keeps them there after a key's first request. The demo, the test suite
and the benchmark cannot run LiteLLM's database client (Prisma), so they put them there
themselves, shaped as LiteLLM stores them: the key under its hash (``UserAPIKeyAuth``, with no
role: LiteLLM's key table has none), its owner under the user id (``LiteLLM_UserTable``, which
carries the role), each team under ``team_id:<id>`` and each member's place in it under
``team_membership:<user>:<team>``. LiteLLM's database client is then replaced by
:class:`NoDatabase`, so every answer comes from what was seeded.
"""

from __future__ import annotations

import inspect
from typing import Any

# Longer than any demo or benchmark: LiteLLM's cache would otherwise drop the rows after a minute.
SEEDED_FOR_SECONDS = 7 * 24 * 3600


class NoDatabase:
    """LiteLLM's database client as its auth sees it here: present, holding no key (so a key
    nobody seeded gets LiteLLM's own 401), and failing on any other use."""

    async def get_data(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str):
        raise RuntimeError(f"LiteLLM's database is not available here (used: {name})")


class AuthCache:
    """Seeds LiteLLM's auth cache (``proxy_server.user_api_key_cache`` unless given)."""

    def __init__(self, cache: Any = None) -> None:
        if cache is None:
            from litellm.proxy.proxy_server import user_api_key_cache as cache
        self._cache = cache
        # LiteLLM 1.110's UserApiKeyCache takes the stored object's class; 1.83's DualCache does not.
        self._typed = "model_type" in inspect.signature(cache.async_set_cache).parameters

    async def _put(self, key: str, value: Any) -> None:
        extra = {"model_type": type(value)} if self._typed else {}
        await self._cache.async_set_cache(key, value, ttl=SEEDED_FOR_SECONDS, **extra)

    async def user(self, user_id: str, role: str, *, teams: tuple[str, ...] = ()) -> None:
        from litellm.proxy._types import LiteLLM_UserTable

        await self._put(user_id, LiteLLM_UserTable(user_id=user_id, user_role=role, teams=list(teams)))

    async def team(self, team_id: str, *, members: dict[str, str] | None = None) -> None:
        """A team and its members (user id to role in the team)."""
        from litellm.proxy._types import LiteLLM_TeamMembership, LiteLLM_TeamTableCachedObj, Member

        members = members or {}
        await self._put(
            f"team_id:{team_id}",
            LiteLLM_TeamTableCachedObj(
                team_id=team_id,
                members_with_roles=[Member(user_id=user, role=role) for user, role in members.items()],
            ),
        )
        for user in members:
            # LiteLLM looks this up at every request of a key with both a user and a team (it
            # keeps it as a dict); missing, it would ask its database each time.
            await self._put(
                f"team_membership:{user}:{team_id}",
                LiteLLM_TeamMembership(user_id=user, team_id=team_id, litellm_budget_table=None).model_dump(),
            )

    async def key(
        self, raw: str, *, user: str | None = None, team: str | None = None, allowed_routes=()
    ) -> str:
        """A virtual key as LiteLLM stores it; returns ``raw``, the bearer token."""
        from litellm.proxy._types import UserAPIKeyAuth
        from litellm.proxy.utils import hash_token

        token = hash_token(raw)
        await self._put(
            token,
            UserAPIKeyAuth(
                token=token, user_id=user, team_id=team, allowed_routes=list(allowed_routes),
                models=[], spend=0.0,
            ),
        )
        return raw

    def flush(self) -> None:
        self._cache.flush_cache()
