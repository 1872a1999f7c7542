"""The caller's scope: who is calling, what it may see, what it may write. Pure, no I/O.

Built from LiteLLM's ``UserAPIKeyAuth`` of the authenticated key. The same facts go to the
database as transaction-local settings (:meth:`CallerScope.settings`), where row-level security
applies the same rules again; the rules here are those of SECURITY.md. The team decides first,
the role second:

- a key bound to team T acts for team T whoever owns it, proxy admins included: it sees team
  T's rows and no others, even rows carrying its own user id. A proxy admin's team key may
  change any row of T and creates rows in T only;
- a key with no team sees its own rows that have no team;
- ``proxy_admin`` and ``proxy_admin_viewer`` sessions with no team (the master key, an admin's
  key without a team, an admin's UI session) see every row; only ``proxy_admin`` writes anywhere.

LiteLLM's admin-UI session team (``UI_TEAM_ID``), which every UI login key carries, is no team.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
# LiteLLM's litellm.proxy._types.UI_TEAM_ID: a marker on UI login keys, never a team's id.
UI_SESSION_TEAM = "litellm-dashboard"

CREATE_FOR_OTHER_USER = "Only proxy admins may set user_id to a different user."
CREATE_FOR_OTHER_TEAM = "Only proxy admins may set team_id to a different team."
TEAM_KEY_OTHER_TEAM = (
    "A key bound to a team creates memory entries in that team only; use a proxy admin key "
    "without a team to create one for another team."
)
CREATE_FOR_UI_SESSION_TEAM = (
    f"'{UI_SESSION_TEAM}' is LiteLLM's admin-UI session marker, not a team; name a real team "
    "or leave team_id out."
)
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
        """From LiteLLM's ``UserAPIKeyAuth``; empty strings and the UI session team count as
        absent."""
        team_id = getattr(auth, "team_id", None) or None
        return cls(
            team_id=None if team_id == UI_SESSION_TEAM else team_id,
            user_id=getattr(auth, "user_id", None) or None,
            role=_role_name(getattr(auth, "user_role", None)),
        )

    @property
    def is_admin(self) -> bool:
        """A proxy admin session with no team: every row, any write."""
        return self.role == PROXY_ADMIN and self.team_id is None

    @property
    def is_admin_of_team(self) -> bool:
        """A proxy admin's team key: any write within its team, nothing beyond it."""
        return self.role == PROXY_ADMIN and self.team_id is not None

    @property
    def reads_all(self) -> bool:
        return self.role in (PROXY_ADMIN, PROXY_ADMIN_VIEWER) and self.team_id is None

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

    def owner_for_create(
        self, *, requested_user_id: str | None, requested_team_id: str | None
    ) -> tuple[str | None, str | None]:
        """The (user_id, team_id) a new row is stamped with, or a :class:`ScopeError`."""
        if self.is_admin:
            if requested_team_id == UI_SESSION_TEAM:
                raise ScopeError(400, CREATE_FOR_UI_SESSION_TEAM)
            return (
                requested_user_id if requested_user_id is not None else self.user_id,
                requested_team_id,
            )
        if self.is_admin_of_team:
            if requested_team_id is not None and requested_team_id != self.team_id:
                raise ScopeError(403, TEAM_KEY_OTHER_TEAM)
            return (
                requested_user_id if requested_user_id is not None else self.user_id,
                self.team_id,
            )
        if requested_user_id is not None and requested_user_id != self.user_id:
            raise ScopeError(403, CREATE_FOR_OTHER_USER)
        if requested_team_id is not None and requested_team_id != self.team_id:
            raise ScopeError(403, CREATE_FOR_OTHER_TEAM)
        if not self.has_identity:
            raise ScopeError(400, CREATE_WITHOUT_IDENTITY)
        return self.user_id, self.team_id
