"""The caller's scope: who is calling, what it may see, what it may write. Pure, no I/O.

Built from LiteLLM's ``UserAPIKeyAuth`` of the authenticated key. The same facts go to the
database as transaction-local settings (:meth:`CallerScope.settings`), where row-level security
applies the same rules again; the rules here are those of SECURITY.md:

- the team is the tenancy boundary: a key of team T sees team T's rows and no others, even rows
  carrying its own user id;
- a key with no team sees its own rows that have no team;
- ``proxy_admin`` and ``proxy_admin_viewer`` see every row; only ``proxy_admin`` writes anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"

CREATE_FOR_OTHER_USER = "Only proxy admins may set user_id to a different user."
CREATE_FOR_OTHER_TEAM = "Only proxy admins may set team_id to a different team."
CREATE_WITHOUT_IDENTITY = (
    "Cannot create a memory entry without a user_id or team_id. Authenticate with a key that "
    "has a user_id or team_id, or call as a proxy admin."
)
WRITE_FORBIDDEN = "You do not have permission to modify this memory entry."


class ScopeError(Exception):
    """The caller may not do this; ``status`` is the HTTP answer (400 or 403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _role_name(role: Any) -> str | None:
    # LiteLLM passes an enum (LitellmUserRoles, a str enum) or a plain string.
    if role is None:
        return None
    return str(getattr(role, "value", role))


@dataclass(frozen=True)
class CallerScope:
    team_id: str | None
    user_id: str | None
    role: str | None

    @classmethod
    def from_auth(cls, auth: Any) -> "CallerScope":
        """From LiteLLM's ``UserAPIKeyAuth``; empty strings count as absent."""
        return cls(
            team_id=getattr(auth, "team_id", None) or None,
            user_id=getattr(auth, "user_id", None) or None,
            role=_role_name(getattr(auth, "user_role", None)),
        )

    @property
    def is_admin(self) -> bool:
        return self.role == PROXY_ADMIN

    @property
    def reads_all(self) -> bool:
        return self.role in (PROXY_ADMIN, PROXY_ADMIN_VIEWER)

    @property
    def has_identity(self) -> bool:
        return self.team_id is not None or self.user_id is not None

    def settings(self) -> dict[str, str]:
        """The transaction-local settings row-level security reads ('' means absent)."""
        return {
            "litellm_memory.team_id": self.team_id or "",
            "litellm_memory.user_id": self.user_id or "",
            "litellm_memory.user_role": self.role or "",
        }

    def may_write(self, row: Any, *, is_team_admin: bool) -> bool:
        """Update/delete authority on a visible row; ``is_team_admin`` comes from the database."""
        if self.is_admin:
            return True
        in_own_scope = row.team_id == self.team_id
        if self.user_id is not None and row.user_id == self.user_id and in_own_scope:
            return True
        return (
            row.user_id is None
            and self.team_id is not None
            and row.team_id == self.team_id
            and is_team_admin
        )

    def owner_for_create(
        self, *, requested_user_id: str | None, requested_team_id: str | None
    ) -> tuple[str | None, str | None]:
        """The (user_id, team_id) a new row is stamped with, or a :class:`ScopeError`."""
        if self.is_admin:
            return (
                requested_user_id if requested_user_id is not None else self.user_id,
                requested_team_id if requested_team_id is not None else self.team_id,
            )
        if requested_user_id is not None and requested_user_id != self.user_id:
            raise ScopeError(403, CREATE_FOR_OTHER_USER)
        if requested_team_id is not None and requested_team_id != self.team_id:
            raise ScopeError(403, CREATE_FOR_OTHER_TEAM)
        if not self.has_identity:
            raise ScopeError(400, CREATE_WITHOUT_IDENTITY)
        return self.user_id, self.team_id
