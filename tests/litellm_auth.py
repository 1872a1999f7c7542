"""LiteLLM's own authentication in the suite: ``user_api_key_auth`` with no ``custom_auth``.

LiteLLM's auth reads keys, users and teams from its in-memory cache before any database, and
its own unit tests seed that cache; so does the suite, through the package's
``litellm_cache.AuthCache`` (which the demo and the benchmark use too). The proxy's database
client is replaced by a stand-in that fails on any use, so an answer can only come from what
was seeded, shaped as LiteLLM stores it.
"""

from __future__ import annotations

import pytest
from litellm.proxy._types import UI_TEAM_ID

from conftest import LITELLM_MASTER_KEY
from litellm_memory_patch.litellm_cache import AuthCache, NoDatabase

MEMORY_ROUTES = ["/v1/memory", "/v1/memory/*"]


class LiteLLMAuth:
    """Seeds LiteLLM's auth cache on the proxy's loop; every seeded key is then a real LiteLLM
    virtual key."""

    master_key = LITELLM_MASTER_KEY
    ui_team = UI_TEAM_ID

    def __init__(self, proxy, cache: AuthCache) -> None:
        self._proxy = proxy
        self._cache = cache

    def user(self, user_id: str, role: str, *, teams: tuple = ()) -> None:
        self._proxy.call(lambda: self._cache.user(user_id, role, teams=teams))

    def team(self, team_id: str, *, members: dict[str, str] | None = None) -> None:
        self._proxy.call(lambda: self._cache.team(team_id, members=members))

    def key(self, raw: str, *, user: str | None = None, team: str | None = None, allowed_routes=()) -> str:
        return self._proxy.call(
            lambda: self._cache.key(raw, user=user, team=team, allowed_routes=allowed_routes)
        )


@pytest.fixture
def litellm_auth(proxy, monkeypatch) -> LiteLLMAuth:
    """The proxy serving a fresh migrated database, authenticating with LiteLLM's own auth."""
    import litellm.proxy.proxy_server as proxy_server

    monkeypatch.setattr(proxy_server, "user_custom_auth", None)
    monkeypatch.setattr(proxy_server, "prisma_client", NoDatabase())
    cache = AuthCache(proxy_server.user_api_key_cache)
    yield LiteLLMAuth(proxy, cache)
    # Nothing seeded outlives the test.
    cache.flush()
