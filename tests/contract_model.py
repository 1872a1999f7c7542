"""A small, pure model of the /v1/memory authorization contract, for generated test matrices.

It restates the contract on its own terms (who sees which row, who may change it, how a new row
is stamped, what each request answers) without importing the project, so the tests compare the
project against an independent reading of the contract rather than against its own code.
The answers' wording is LiteLLM 1.83.14's: the patch keeps LiteLLM's bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

ADMIN = "proxy_admin"
VIEWER = "proxy_admin_viewer"
# LiteLLM's UI_TEAM_ID: every UI login key carries it; it is no team.
UI_SESSION_TEAM = "litellm-dashboard"

NOT_FOUND = "Memory with key '{key}' not found"
KEY_EXISTS = "Memory with key '{key}' already exists."
WRITE_FORBIDDEN = "You do not have permission to modify this memory entry."
OTHER_USER = "Only proxy admins may set user_id to a different user."
OTHER_TEAM = "Only proxy admins may set team_id to a different team."
TEAM_KEY_OTHER_TEAM = (
    "A key bound to a team creates memory entries in that team only; use a proxy admin key "
    "without a team to create one for another team."
)
UI_SESSION_TEAM_REFUSED = (
    f"'{UI_SESSION_TEAM}' is LiteLLM's admin-UI session marker, not a team; name a real team "
    "or leave team_id out."
)
NO_IDENTITY = (
    "Cannot create a memory entry without a user_id or team_id. Authenticate with a key that "
    "has a user_id or team_id, or call as a proxy admin."
)
PUT_CREATE_NEEDS_VALUE = "Cannot create a new memory via PUT without a 'value'."
NOTHING_TO_UPDATE = "Request body must include at least one of: value, metadata."

# A request body without the field at all (as opposed to an explicit null).
OMITTED = "<omitted>"


@dataclass(frozen=True)
class Caller:
    name: str
    team: str | None = None
    user: str | None = None
    role: str | None = None

    @property
    def session_team(self) -> str | None:
        """The team the key acts for: the key's team, unless it is the UI session marker."""
        return None if self.team == UI_SESSION_TEAM else self.team

    @property
    def is_admin(self) -> bool:
        """The team decides first: a proxy admin reaches everything only without a team."""
        return self.role == ADMIN and self.session_team is None

    @property
    def is_admin_of_team(self) -> bool:
        return self.role == ADMIN and self.session_team is not None

    @property
    def reads_all(self) -> bool:
        return self.role in (ADMIN, VIEWER) and self.session_team is None


@dataclass(frozen=True)
class Row:
    key: str
    team: str | None
    user: str | None
    value: str = "v"
    metadata: Any = None
    memory_id: str | None = None  # None: created by the request, id not known in advance
    rank: int = 0  # order of updated_at; the newest is listed first


@dataclass(frozen=True)
class Team:
    team_id: str
    admins: frozenset = frozenset()  # users with "role": "admin" in members_with_roles
    organization: str | None = None


@dataclass(frozen=True)
class World:
    rows: tuple
    teams: tuple = ()
    org_admins: frozenset = frozenset()  # (user_id, organization_id) with user_role org_admin

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)

    def is_team_admin(self, user: str | None, team: str | None) -> bool:
        found = next((t for t in self.teams if t.team_id == team), None)
        if user is None or found is None:
            return False
        in_admin_org = found.organization is not None and (user, found.organization) in self.org_admins
        return user in found.admins or in_admin_org


@dataclass(frozen=True)
class Request:
    method: str  # GET, PUT, POST or DELETE
    key: str | None = None  # the path's key, or the POST body's; None: the list route
    value: str | None = None
    metadata: Any = OMITTED
    user_id: str | None = None
    team_id: str | None = None
    match: tuple = ()  # the list's (name, text) filters: key, key_prefix, search
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class Outcome:
    status: int
    detail: str | None = None
    rows: tuple = ()  # what a read returns, in order
    total: int | None = None
    effect: str | None = None  # "update", "delete" or "create"
    row: Row | None = None  # the row written, as it is afterwards (deleted: as it was)
    hidden: bool = False  # the answer for a row the caller cannot see


# -- the rules ---------------------------------------------------------------------------


def in_own_scope(caller: Caller, row: Row) -> bool:
    """The rows a session reaches in its own right: its team's, or with no team its own
    teamless ones."""
    if caller.session_team is not None:
        return row.team == caller.session_team
    return caller.user is not None and row.team is None and row.user == caller.user


def sees(caller: Caller, row: Row) -> bool:
    return caller.reads_all or in_own_scope(caller, row)


def may_write(world: World, caller: Caller, row: Row) -> bool:
    """Update/delete on a visible row; a viewer writes like an ordinary caller in its scope."""
    if caller.is_admin:
        return True
    if not in_own_scope(caller, row):
        return False
    if caller.is_admin_of_team:  # any row of its own team
        return True
    if caller.user is not None and row.user == caller.user:
        return True
    return (
        row.user is None
        and caller.session_team is not None
        and row.team == caller.session_team
        and world.is_team_admin(caller.user, caller.session_team)
    )


def create_owner(caller: Caller, *, user_id: str | None, team_id: str | None):
    """(team, user) a new row gets, or the refusal as an Outcome."""
    if caller.is_admin:
        if team_id == UI_SESSION_TEAM:  # no row is ever stamped with it
            return Outcome(400, UI_SESSION_TEAM_REFUSED)
        return team_id, user_id if user_id is not None else caller.user
    if caller.is_admin_of_team:
        if team_id is not None and team_id != caller.session_team:
            return Outcome(403, TEAM_KEY_OTHER_TEAM)
        return caller.session_team, user_id if user_id is not None else caller.user
    if user_id is not None and user_id != caller.user:
        return Outcome(403, OTHER_USER)
    if team_id is not None and team_id != caller.session_team:
        return Outcome(403, OTHER_TEAM)
    if caller.session_team is None and caller.user is None:
        return Outcome(400, NO_IDENTITY)
    return caller.session_team, caller.user


# -- what each request answers -------------------------------------------------------------


def _matches(row: Row, match: tuple) -> bool:
    filters = dict(match)
    # LiteLLM's precedence: search, then key_prefix, then key.
    if "search" in filters:
        return row.key.startswith(filters["search"]) or row.memory_id == filters["search"]
    if "key_prefix" in filters:
        return row.key.startswith(filters["key_prefix"])
    if "key" in filters:
        return row.key == filters["key"]
    return True


def _create(world: World, caller: Caller, request: Request, existing: Row | None) -> Outcome:
    owner = create_owner(caller, user_id=request.user_id, team_id=request.team_id)
    if isinstance(owner, Outcome):
        return replace(owner, hidden=existing is not None and not sees(caller, existing))
    if existing is not None:
        return Outcome(409, KEY_EXISTS.format(key=request.key), hidden=not sees(caller, existing))
    team, user = owner
    metadata = None if request.metadata is OMITTED else request.metadata
    new = Row(request.key, team, user, request.value, metadata, rank=1 + len(world.rows))
    return Outcome(200, effect="create", row=new)


def answer(world: World, caller: Caller, request: Request) -> Outcome:
    if request.key is None:  # the list route
        visible = [r for r in world.rows if sees(caller, r) and _matches(r, request.match)]
        visible.sort(key=lambda r: r.key)
        visible.sort(key=lambda r: r.rank, reverse=True)
        start = (request.page - 1) * request.page_size
        return Outcome(200, rows=tuple(visible[start : start + request.page_size]), total=len(visible))

    existing = world.row(request.key)
    seen = existing is not None and sees(caller, existing)
    not_found = Outcome(404, NOT_FOUND.format(key=request.key), hidden=existing is not None)

    if request.method == "GET":
        return Outcome(200, rows=(existing,)) if seen else not_found
    if request.method == "POST":
        return _create(world, caller, request, existing)
    if request.method == "DELETE":
        if not seen:
            return not_found
        if not may_write(world, caller, existing):
            return Outcome(403, WRITE_FORBIDDEN)
        return Outcome(200, effect="delete", row=existing)
    # PUT: an update of the visible row for the key, otherwise a create.
    if request.value is None and request.metadata is OMITTED:
        return Outcome(400, NOTHING_TO_UPDATE)
    if seen:
        if not may_write(world, caller, existing):
            return Outcome(403, WRITE_FORBIDDEN)
        # Ownership never changes on update: body user_id/team_id only count for a create.
        updated = replace(
            existing,
            value=request.value if request.value is not None else existing.value,
            metadata=existing.metadata if request.metadata is OMITTED else request.metadata,
            rank=1 + len(world.rows),
        )
        return Outcome(200, effect="update", row=updated)
    if request.value is None:
        return Outcome(400, PUT_CREATE_NEEDS_VALUE, hidden=existing is not None)
    return _create(world, caller, request, existing)


def after(world: World, outcome: Outcome) -> World:
    """The database's rows once ``outcome`` has happened."""
    if outcome.effect is None:
        return world
    kept = tuple(row for row in world.rows if row.key != outcome.row.key)
    if outcome.effect == "delete":
        return replace(world, rows=kept)
    return replace(world, rows=kept + (outcome.row,))
