"""LiteLLM's own authentication in the suite: ``user_api_key_auth`` with no ``custom_auth``.

LiteLLM's auth reads keys, users and teams from its in-memory cache before any database, and
its own unit tests seed that cache; so do these. The proxy's database client is replaced by a
stand-in that fails on any use, so an answer can only come from what was seeded, shaped as
LiteLLM stores it: a key row (``UserAPIKeyAuth`` under the key's hash, with no role: the key
table has none), the owner's user row (``LiteLLM_UserTable``, which carries the role) and the
team row (``LiteLLM_TeamTableCachedObj``).
"""

from __future__ import annotations

import inspect

import pytest
from litellm.proxy._types import (
    UI_TEAM_ID,
    LiteLLM_TeamTableCachedObj,
    LiteLLM_UserTable,
    Member,
    UserAPIKeyAuth,
)
from litellm.proxy.utils import hash_token

from conftest import LITELLM_MASTER_KEY

MEMORY_ROUTES = ["/v1/memory", "/v1/memory/*"]


class NoDatabase:
    """LiteLLM's Prisma client as the auth sees it here: present, and failing on any use."""

    def __getattr__(self, name):
        raise RuntimeError(f"LiteLLM's database is not available in this test (used: {name})")


class LiteLLMAuth:
    """Seeds LiteLLM's auth cache; every seeded key is then a real LiteLLM virtual key."""

    master_key = LITELLM_MASTER_KEY
    ui_team = UI_TEAM_ID

    def __init__(self, proxy, cache) -> None:
        self._proxy = proxy
        self._cache = cache
        self._typed = "model_type" in inspect.signature(cache.async_set_cache).parameters

    def _seed(self, key: str, value) -> None:
        # LiteLLM 1.110's UserApiKeyCache takes the stored object's class; 1.83's DualCache does not.
        extra = {"model_type": type(value)} if self._typed else {}
        self._proxy.call(lambda: self._cache.async_set_cache(key, value, **extra))

    def user(self, user_id: str, role: str, *, teams: tuple = ()) -> None:
        self._seed(user_id, LiteLLM_UserTable(user_id=user_id, user_role=role, teams=list(teams)))

    def team(self, team_id: str, *, members: dict[str, str] | None = None) -> None:
        self._seed(
            f"team_id:{team_id}",
            LiteLLM_TeamTableCachedObj(
                team_id=team_id,
                members_with_roles=[
                    Member(user_id=user, role=role) for user, role in (members or {}).items()
                ],
            ),
        )

    def key(
        self, raw: str, *, user: str | None = None, team: str | None = None, allowed_routes=()
    ) -> str:
        """A virtual key as LiteLLM stores it; returns ``raw``, the bearer token."""
        token = hash_token(raw)
        self._seed(
            token,
            UserAPIKeyAuth(
                token=token,
                user_id=user,
                team_id=team,
                allowed_routes=list(allowed_routes),
                models=[],
                spend=0.0,
            ),
        )
        return raw


@pytest.fixture
def litellm_auth(proxy, monkeypatch) -> LiteLLMAuth:
    """The proxy serving a fresh migrated database, authenticating with LiteLLM's own auth."""
    import litellm.proxy.proxy_server as proxy_server

    monkeypatch.setattr(proxy_server, "user_custom_auth", None)
    monkeypatch.setattr(proxy_server, "prisma_client", NoDatabase())
    cache = proxy_server.user_api_key_cache
    yield LiteLLMAuth(proxy, cache)
    # Nothing seeded outlives the test.
    cache.flush_cache()
