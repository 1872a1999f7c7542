"""LiteLLM ``custom_auth`` hook for the tests: the API key itself names the caller.

A key reads ``team:T,user:U,role:R`` (each part optional), so a test can be any caller without
LiteLLM's virtual keys, which need Prisma. Values are percent-decoded: ``%00`` gives an identity
with a NUL, which no HTTP header can carry but an auth layer may return. The proxy's real ``user_api_key_auth`` dependency
calls this and builds the ``UserAPIKeyAuth`` the routes receive.
"""

from urllib.parse import unquote

from litellm.proxy._types import ProxyErrorTypes, ProxyException, UserAPIKeyAuth

NO_KEY = "No API key."


def api_key(*, team: str | None = None, user: str | None = None, role: str | None = None) -> str:
    parts = [f"{name}:{value}" for name, value in (("team", team), ("user", user), ("role", role)) if value]
    return ",".join(parts) or "anonymous"


async def user_auth(request, api_key: str | None) -> UserAPIKeyAuth:
    if not api_key:
        # LiteLLM's own way to refuse a caller: a 401 in its error format.
        raise ProxyException(message=NO_KEY, type=ProxyErrorTypes.auth_error, param="api_key", code=401)
    fields = {
        name: unquote(value)
        for name, value in (part.split(":", 1) for part in api_key.split(",") if ":" in part)
    }
    return UserAPIKeyAuth(
        api_key=api_key,
        team_id=fields.get("team"),
        user_id=fields.get("user"),
        user_role=fields.get("role"),
    )
