"""``litellm-memory-patch exposure``: what LiteLLM issue #27722 left reachable in this database.

LiteLLM's stock ``/v1/memory`` rules leave two roads into another team's rows. A key of team T
and user U reads every row with ``user_id = U OR team_id = T`` (empty or missing values never
match) and updates and deletes the rows whose ``user_id`` is U: a row is reachable from outside
its team whenever a key carries the row's user and another team (or no team). And the stock
handlers treat every key whose owner is a proxy admin as an admin, team keys included: such a
key of team T reads and writes every row outside T too.

Whether a key reaches ``/v1/memory`` at all is LiteLLM's route check, which depends on the
owner's role (``LiteLLM_UserTable.user_role``) and the key's ``allowed_routes``: see
:func:`route_verdict`. LiteLLM's key tables (``LiteLLM_VerificationToken`` and, where it exists,
``LiteLLM_DeletedVerificationToken``) say which keys exist or existed; this module reads them,
their owners' roles and the memory table, and reports per (kind, row's team, reaching key's team)
how many rows, through which users and keys, whether a key's lifetime overlapped the row's, and
whether LiteLLM's route check barred the key from ``/v1/memory`` (judged in Python per distinct
role and ``allowed_routes``, then applied by the SQL). Keys of admins and viewers without a team
read everything under the patch too, by design: they are no exposure and are left out.

Everything runs in one ``READ ONLY`` transaction, needs only SELECT, and works before or after
the migration: when row-level security hides the memory rows from the login role, the memory
statement alone runs as ``litellm_memory_app`` with the read-only admin setting, set
transaction-locally. The joins are set-based; Python only groups and formats the per-pair
results. Values and metadata are never read; memory keys only with ``rows=True``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from .config import APP_ROLE, ConfigError, DatabaseTarget

MEMORY_TABLE = "LiteLLM_MemoryTable"
LIVE_KEYS = "LiteLLM_VerificationToken"
DELETED_KEYS = "LiteLLM_DeletedVerificationToken"
USERS = "LiteLLM_UserTable"
MEMORY_ROUTE = "/v1/memory"
LOGIN_ROLE = "login role"  # memory rows read without switching roles
# The role setting that reads every row under the policies (SECURITY.md): the read-only admin.
READER_ROLE = "proxy_admin_viewer"

# The named route groups of LiteLLM's ``LiteLLMRoutes`` in the tested versions (1.83.14 and
# 1.110.2). A key's ``allowed_routes`` may name one; none of them contains a /v1/memory path
# in those versions, so naming one does not open the memory routes. A name outside this list
# may be a group of another version: its verdict is "unknown".
KNOWN_ROUTE_GROUPS = frozenset(
    {
        "admin_viewer_routes", "agent_inference_routes", "agent_management_routes",
        "agent_routes", "anthropic_routes", "apply_guardrail_routes", "compliance_check_routes",
        "global_spend_tracking_routes", "google_routes", "info_routes", "internal_user_routes",
        "internal_user_view_only_routes", "key_management_routes", "litellm_native_routes",
        "llm_api_routes", "llm_api_routes_without_mcp", "management_routes",
        "mapped_pass_through_routes", "master_key_only_routes", "mcp_inference_routes",
        "mcp_management_routes", "mcp_routes", "model_info_routes", "openai_route_names",
        "openai_routes", "org_admin_allowed_routes", "org_admin_only_routes",
        "passthrough_routes_wildcard", "public_routes", "self_managed_routes", "skill_hub_routes",
        "spend_tracking_routes", "team_service_account_key_routes", "trace_telemetry_routes",
        "ui_routes",
    }
)

# Owner roles LiteLLM's route check tells apart for /v1/memory. Every other role, a key without
# a user and a key whose user has no row get the internal user's check.
ADMIN_ROLE = "proxy_admin"
VIEWER_ROLE = "proxy_admin_viewer"
# The team of every LiteLLM UI login key (UI_TEAM_ID): a marker, not a team.
UI_TEAM = "litellm-dashboard"

# Verdicts of LiteLLM's route check on /v1/memory for a key (its owner's role, its allowed_routes).
OPEN = "open"  # every method, the list and every key
PARTIAL = "partial"  # some memory paths only (named keys, or keys but not the list)
READS = "reads"  # GET only, and only from LiteLLM 1.110 on: a viewer's key
UNKNOWN = "unknown"  # an entry this report cannot decide
BARRED = "barred"  # no memory path: LiteLLM answers 401 or 403
VERDICTS = (OPEN, PARTIAL, READS, UNKNOWN, BARRED)

CROSS_TEAM = "cross-team"  # a team's row, reached by a key of another team
PERSONAL_ROW = "personal row"  # a row with no team, reached by its user's team key
PERSONAL_KEY = "personal key"  # a team's row, reached by its user's key with no team
ADMIN_TEAM_KEY = "admin team key"  # any row outside a team, reached by a proxy admin's key of it

NO_MEMORY_TABLE = (
    f'no "{MEMORY_TABLE}" in schema "{{schema}}": LiteLLM has /v1/memory from 1.83.14 on;'
    " check the database URL (and its ?schema=), or upgrade LiteLLM's schema"
)
NO_KEY_TABLE = (
    f'no "{LIVE_KEYS}" in schema "{{schema}}": this is not a LiteLLM proxy database;'
    " check the database URL (and its ?schema=)"
)
NO_USER_TABLE = (
    f'no "{USERS}" with user_id and user_role in schema "{{schema}}": the owners\' roles decide'
    " which keys reach /v1/memory; check the database URL (and its ?schema=)"
)
NO_SELECT = (
    "the login role may not read {tables}; grant it SELECT on them, or run as the owner of"
    " LiteLLM's tables"
)
HIDDEN_BY_RLS = (
    "row-level security hides the memory rows from the login role {login}, which may not switch"
    f" to {APP_ROLE}; run as a superuser or as a member of {APP_ROLE}"
    " (the role that ran litellm-memory-patch migrate is one)"
)

# Each key table becomes the same columns; a column this schema lacks becomes NULL.
KEY_COLUMNS = {
    "token": "text",
    "key_alias": "text",
    "user_id": "text",
    "team_id": "text",
    "allowed_routes": "text[]",
    "created_at": "timestamp",
    "last_active": "timestamp",
    "deleted_at": "timestamp",
}
REQUIRED_KEY_COLUMNS = ("token", "user_id", "team_id")

CATALOG_SQL = """
SELECT c.relname, has_table_privilege(c.oid, 'SELECT'),
       array_agg(a.attname::text ORDER BY a.attnum),
       CASE WHEN c.relname = %(memory)s THEN row_security_active(c.oid) END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
GROUP BY c.oid, c.relname
"""
CAN_SWITCH_SQL = (
    "SELECT current_user::text, to_regrole(%(role)s) IS NOT NULL"
    " AND pg_has_role(current_user, %(role)s, 'MEMBER')"
)
NOW_UTC = "(now() AT TIME ZONE 'UTC')"
READER_SQL = (
    "SELECT set_config('role', %(role)s, true),"
    " set_config('litellm_memory.user_role', %(user_role)s, true)"
)
LOGIN_SQL = "SELECT set_config('role', 'none', true)"

# The distinct (owner role, allowed_routes) of the keys, to be judged by route_verdict.
ROUTES_SQL = "WITH keys AS ({keys}) SELECT DISTINCT user_role, allowed_routes FROM keys"

# One row per (user, key team, admin team key or not): the latest moment any of those keys could
# be used, and any of those LiteLLM's route check lets reach /v1/memory (%(barred)s: a JSON list
# of the [role, allowed_routes] it bars).
KEY_GROUPS_SQL = """
WITH keys AS ({keys}),
judged AS (
    SELECT user_id, team_id, user_role IS NOT DISTINCT FROM %(admin)s AS admin,
           coalesce(deleted_at, {now}) AS key_end,
           jsonb_build_array(user_role, to_jsonb(allowed_routes))
               IN (SELECT jsonb_array_elements(%(barred)s::jsonb)) AS barred
    FROM keys
)
SELECT coalesce(array_agg(user_id), '{{}}'), coalesce(array_agg(team_id), '{{}}'),
       coalesce(array_agg(admin), '{{}}'), coalesce(array_agg(key_end), '{{}}'),
       coalesce(array_agg(open_end), '{{}}')
FROM (SELECT user_id, team_id, admin, max(key_end) AS key_end,
             max(key_end) FILTER (WHERE NOT barred) AS open_end
      FROM judged GROUP BY user_id, team_id, admin) AS groups
"""
GROUPS_CTE = """
WITH groups AS (
    SELECT * FROM unnest(%(users)s::text[], %(teams)s::text[], %(admins)s::boolean[],
                         %(ends)s::timestamp[], %(open_ends)s::timestamp[])
        AS g(user_id, team_id, admin, key_end, open_end)
)"""

# Every memory row reached by keys of another team (or of no team): through its user, by
# (row team, key team, user), and by a proxy admin's team key, by (row team, key team). A row of
# team A is counted once per key team that reaches it.
REACH_SQL = GROUPS_CTE + """,
memory_rows AS (
    SELECT m.user_id, nullif(m.team_id, '') AS team_id, m.created_at, m.key
    FROM {memory} m
),
admin_teams AS (
    SELECT team_id, max(key_end) AS key_end, max(open_end) AS open_end
    FROM groups WHERE admin GROUP BY team_id
)
SELECT r.team_id, g.team_id, false, r.user_id, count(*),
       count(*) FILTER (WHERE r.created_at <= g.key_end),
       count(*) FILTER (WHERE r.created_at <= g.open_end),
       CASE WHEN %(rows)s THEN array_agg(r.key ORDER BY r.key) END
FROM memory_rows r
JOIN groups g ON NOT g.admin AND g.user_id = r.user_id AND g.team_id IS DISTINCT FROM r.team_id
GROUP BY r.team_id, g.team_id, r.user_id
UNION ALL
SELECT r.team_id, g.team_id, true, NULL, count(*),
       count(*) FILTER (WHERE r.created_at <= g.key_end),
       count(*) FILTER (WHERE r.created_at <= g.open_end),
       CASE WHEN %(rows)s THEN array_agg(r.key ORDER BY r.key) END
FROM memory_rows r
JOIN admin_teams g ON g.team_id IS DISTINCT FROM r.team_id
GROUP BY r.team_id, g.team_id
"""
TOTALS_SQL = GROUPS_CTE + """,
admin_teams AS (
    SELECT team_id, max(key_end) AS key_end, max(open_end) AS open_end
    FROM groups WHERE admin GROUP BY team_id
),
reaching AS (
    SELECT m.memory_id, m.created_at, g.key_end, g.open_end
    FROM {memory} m
    JOIN groups g ON NOT g.admin AND g.user_id = m.user_id
        AND g.team_id IS DISTINCT FROM nullif(m.team_id, '')
    UNION ALL
    SELECT m.memory_id, m.created_at, g.key_end, g.open_end
    FROM {memory} m
    JOIN admin_teams g ON g.team_id IS DISTINCT FROM nullif(m.team_id, '')
),
reached AS (
    SELECT memory_id, min(created_at) AS created_at, max(key_end) AS key_end,
           max(open_end) AS open_end
    FROM reaching GROUP BY memory_id
)
SELECT (SELECT count(*) FROM {memory}), count(*), count(*) FILTER (WHERE created_at <= key_end),
       count(*) FILTER (WHERE created_at <= open_end)
FROM reached
"""

# The keys behind each (row team, key team, admin team key or not), one JSON object per key.
KEYS_SQL = """
WITH reach AS (
    SELECT * FROM unnest(%(row_teams)s::text[], %(key_teams)s::text[], %(admins)s::boolean[],
                         %(users)s::text[])
        AS r(row_team, key_team, admin, user_id)
),
keys AS ({keys})
SELECT r.row_team, r.key_team, r.admin, jsonb_agg(jsonb_build_object(
    'key', coalesce(k.key_alias, k.token), 'user_id', k.user_id, 'owner_role', k.user_role,
    'state', CASE WHEN k.deleted_at IS NULL THEN 'live' ELSE 'deleted' END,
    'created_at', k.created_at, 'deleted_at', k.deleted_at, 'last_active', k.last_active,
    'allowed_routes', k.allowed_routes)
    ORDER BY k.deleted_at NULLS FIRST, coalesce(k.key_alias, k.token))
FROM reach r
JOIN keys k ON k.user_id = r.user_id AND k.team_id IS NOT DISTINCT FROM r.key_team
    AND (k.user_role IS NOT DISTINCT FROM %(admin)s) = r.admin
GROUP BY r.row_team, r.key_team, r.admin
"""


def route_verdict(allowed_routes: list[str] | None, role: str | None = None) -> str:
    """What LiteLLM's route check answers on ``/v1/memory`` for a key of an owner with ``role``.

    Modelled on the checks of the tested versions (1.83.14 and 1.110.2), which no group of
    :data:`KNOWN_ROUTE_GROUPS` gives a memory path:

    - every key: a non-empty ``allowed_routes`` must allow the path. An entry matches a path
      exactly, or as a prefix followed by ``/``, or, ending in ``*``, as a plain prefix; a named
      route group matches the paths of that group.
    - a proxy admin's key: nothing more.
    - a viewer's (``proxy_admin_viewer``) key: GET only, from LiteLLM 1.110 on; 1.83.14 refuses
      every memory call. One verdict for both, ``reads``, as the report cannot know the version.
    - every other key (any other role, no user, no user row): the path must also match one of its
      ``allowed_routes`` entries by path, as no role's route group has it. An empty list allows
      nothing here, and a group name does not count.

    The route is the request path, so a memory key's own path (``/v1/memory/<key>``) may be
    allowed while the list is not (``partial``).
    """
    entries = allowed_routes or []
    by_path = _path_verdict(entries)
    if role not in (ADMIN_ROLE, VIEWER_ROLE):
        return by_path
    if not entries or by_path == OPEN:
        key_check = OPEN
    elif any(not entry.startswith("/") and entry not in KNOWN_ROUTE_GROUPS for entry in entries):
        # A name is a route group, of another version when it is not known.
        key_check = UNKNOWN
    else:
        key_check = by_path
    if role == VIEWER_ROLE and key_check in (OPEN, PARTIAL):
        return READS
    return key_check


def _path_verdict(entries: list[str]) -> str:
    """``open``, ``partial`` or ``barred``: which memory paths the entries match as paths."""
    memory_key = MEMORY_ROUTE + "/"

    def matches(entry: str, path: str) -> bool:
        if path == entry or path.startswith(entry + "/"):
            return True
        return entry.endswith("*") and path.startswith(entry[:-1])

    def some_key(entry: str) -> bool:
        # True when the entry matches /v1/memory/<k> for at least one key k.
        if memory_key.startswith(entry + "/") or entry.rstrip("*").startswith(memory_key):
            return True
        return entry.endswith("*") and memory_key.startswith(entry[:-1])

    if any(matches(entry, MEMORY_ROUTE) for entry in entries):
        return OPEN
    return PARTIAL if any(some_key(entry) for entry in entries) else BARRED


@dataclass
class Pair:
    """The rows of one team (``row_team``, None for personal rows) reached by another's keys."""

    kind: str
    row_team: str | None
    key_team: str | None
    rows: int = 0
    rows_in_key_lifetime: int = 0
    rows_not_barred: int = 0
    users: list[str] = field(default_factory=list)
    keys_live: int = 0
    keys_deleted: int = 0
    last_active: str | None = None
    routes: dict[str, int] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    memory_keys: list[str] | None = None


@dataclass
class Report:
    schema: str
    key_tables: list[str]
    last_active_recorded: bool
    memory_read_as: str
    memory_rows: int
    rows_reached: int
    rows_exposed: int
    rows_exposed_not_barred: int
    pairs: list[Pair]

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class Table(NamedTuple):
    """What the catalog says about one of LiteLLM's tables."""

    readable: bool  # the login role has SELECT on it
    columns: list[str]
    hidden: bool | None  # row-level security applies to the login role (memory table only)


def _kind(row_team: str | None, key_team: str | None, admin: bool) -> str:
    if admin:
        return ADMIN_TEAM_KEY
    if row_team is None:
        return PERSONAL_ROW
    return PERSONAL_KEY if key_team is None else CROSS_TEAM


def _has_key_columns(table: Table | None) -> bool:
    return table is not None and set(REQUIRED_KEY_COLUMNS) <= set(table.columns)


def _catalog(cur: psycopg.Cursor, schema: str) -> dict[str, Table]:
    tables = [MEMORY_TABLE, LIVE_KEYS, DELETED_KEYS, USERS]
    cur.execute(CATALOG_SQL, {"memory": MEMORY_TABLE, "schema": schema, "tables": tables})
    found = {name: Table(*rest) for name, *rest in cur}
    if not _has_key_columns(found.get(LIVE_KEYS)):
        raise ConfigError(NO_KEY_TABLE.format(schema=schema))
    if USERS not in found or not {"user_id", "user_role"} <= set(found[USERS].columns):
        raise ConfigError(NO_USER_TABLE.format(schema=schema))
    if MEMORY_TABLE not in found:
        raise ConfigError(NO_MEMORY_TABLE.format(schema=schema))
    unreadable = [f'"{name}"' for name, table in found.items() if not table.readable]
    if unreadable:
        raise ConfigError(NO_SELECT.format(tables=", ".join(sorted(unreadable))))
    return found


def _key_tables(found: dict[str, Table]) -> list[str]:
    return [name for name in (LIVE_KEYS, DELETED_KEYS) if _has_key_columns(found.get(name))]


def _reaching_keys(schema: str, found: dict[str, Table]) -> sql.Composed:
    """Live and deleted keys that may reach rows of another team, with their owners' roles.

    Empty user and team ids count as none, and so does LiteLLM's UI session team. Keys without a
    user reach no row through one, and a proxy admin's or viewer's key without a team reads
    every row with the patch too: both are left out.
    """
    keys = sql.SQL(
        "SELECT k.*, u.user_role::text AS user_role FROM ({union}) AS k"
        " LEFT JOIN {schema}.{users} AS u ON u.user_id = k.user_id"
        " WHERE k.user_id IS NOT NULL AND (k.team_id IS NOT NULL"
        " OR u.user_role IS NULL OR u.user_role NOT IN ({admin}, {viewer}))"
    )
    return keys.format(
        union=_keys_union(schema, found), schema=sql.Identifier(schema),
        users=sql.Identifier(USERS), admin=sql.Literal(ADMIN_ROLE),
        viewer=sql.Literal(VIEWER_ROLE),
    )


def _keys_union(schema: str, found: dict[str, Table]) -> sql.Composed:
    """Live and deleted keys as the same columns."""
    parts = []
    for table in _key_tables(found):
        columns = set(found[table].columns)
        selected = []
        for name, kind in KEY_COLUMNS.items():
            value = sql.Identifier(name) if name in columns else sql.SQL("NULL")
            if name == "user_id":
                value = sql.SQL("nullif({}, '')").format(value)
            if name == "team_id":
                value = sql.SQL("nullif(nullif({}, ''), {})").format(value, sql.Literal(UI_TEAM))
            selected.append(
                sql.SQL("{}::{} AS {}").format(value, sql.SQL(kind), sql.Identifier(name))
            )
        parts.append(
            sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(selected), sql.Identifier(schema), sql.Identifier(table)
            )
        )
    return sql.SQL(" UNION ALL ").join(parts)


def _read_memory_as(cur: psycopg.Cursor, hidden: bool) -> str:
    """Make the memory statements see every row; returns whom they run as."""
    if not hidden:
        return LOGIN_ROLE
    cur.execute(CAN_SWITCH_SQL, {"role": APP_ROLE})
    login, can_switch = cur.fetchone()
    if not can_switch:
        raise ConfigError(HIDDEN_BY_RLS.format(login=login))
    cur.execute(READER_SQL, {"role": APP_ROLE, "user_role": READER_ROLE})
    return f"{APP_ROLE} ({READER_ROLE})"


def _iso(value: str | None) -> str | None:
    # jsonb renders timestamps as ISO 8601 without a zone; LiteLLM stores them in UTC.
    return None if value is None else value + "Z"


def _summarise(pair: Pair, keys: list[dict[str, Any]]) -> None:
    pair.routes = {verdict: 0 for verdict in VERDICTS}
    for key in keys:
        key["routes"] = route_verdict(key["allowed_routes"], key["owner_role"])
        pair.routes[key["routes"]] += 1
        for name in ("created_at", "deleted_at", "last_active"):
            key[name] = _iso(key[name])
    pair.keys = keys
    pair.keys_live = sum(key["state"] == "live" for key in keys)
    pair.keys_deleted = len(keys) - pair.keys_live
    active = [key["last_active"] for key in keys if key["last_active"]]
    pair.last_active = max(active) if active else None


def build_report(target: DatabaseTarget, *, rows: bool = False) -> Report:
    """Connect, read the database in one read-only transaction and compute the report."""
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        return read_report(conn, schema=target.schema, rows=rows)


def read_report(conn: psycopg.Connection, *, schema: str, rows: bool = False) -> Report:
    """The report from ``conn`` (in autocommit mode), in one read-only transaction, rolled back.

    The transaction is begun here, not by psycopg, so that it is READ ONLY from its first
    statement.
    """
    with conn.cursor() as cur:
        cur.execute("BEGIN READ ONLY")
        found = _catalog(cur, schema)
        keys = _reaching_keys(schema, found)
        memory = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(MEMORY_TABLE))
        cur.execute(sql.SQL(ROUTES_SQL).format(keys=keys))
        barred = [
            [role, routes] for role, routes in cur.fetchall()
            if route_verdict(routes, role) == BARRED
        ]
        cur.execute(
            sql.SQL(KEY_GROUPS_SQL).format(keys=keys, now=sql.SQL(NOW_UTC)),
            {"barred": json.dumps(barred), "admin": ADMIN_ROLE},
        )
        users, teams, admins, ends, open_ends = cur.fetchone()

        read_as = _read_memory_as(cur, bool(found[MEMORY_TABLE].hidden))
        groups = {
            "users": users, "teams": teams, "admins": admins, "ends": ends,
            "open_ends": open_ends, "rows": rows,
        }
        cur.execute(sql.SQL(REACH_SQL).format(memory=memory), groups)
        reach = cur.fetchall()
        cur.execute(sql.SQL(TOTALS_SQL).format(memory=memory), groups)
        memory_rows, reached, exposed, not_barred = cur.fetchone()
        if read_as != LOGIN_ROLE:
            cur.execute(LOGIN_SQL)

        admin_owners: dict[str, set[str]] = {}
        for user, team, admin in zip(users, teams, admins):
            if admin:
                admin_owners.setdefault(team, set()).add(user)
        pairs: dict[tuple, Pair] = {}
        for row_team, key_team, admin, user, count, overlapping, open_rows, names in reach:
            pair = pairs.setdefault(
                (row_team, key_team, admin),
                Pair(
                    _kind(row_team, key_team, admin), row_team, key_team,
                    memory_keys=[] if rows else None,
                ),
            )
            pair.rows += count
            pair.rows_in_key_lifetime += overlapping
            pair.rows_not_barred += open_rows
            pair.users.extend(admin_owners[key_team] if admin else [user])
            if rows:
                pair.memory_keys.extend(names)
        for pair in pairs.values():
            pair.users.sort()
            if pair.memory_keys is not None:
                pair.memory_keys.sort()
        by_user = [
            (row_team, key_team, admin, user)
            for (row_team, key_team, admin), pair in pairs.items() for user in pair.users
        ]
        cur.execute(
            sql.SQL(KEYS_SQL).format(keys=keys),
            {
                "row_teams": [row[0] for row in by_user],
                "key_teams": [row[1] for row in by_user],
                "admins": [row[2] for row in by_user],
                "users": [row[3] for row in by_user],
                "admin": ADMIN_ROLE,
            },
        )
        for row_team, key_team, admin, key_list in cur.fetchall():
            _summarise(pairs[(row_team, key_team, admin)], key_list)
        cur.execute("ROLLBACK")

    ordered = sorted(
        pairs.values(), key=lambda p: (-p.rows, p.row_team or "", p.key_team or "", p.kind)
    )
    return Report(
        schema=schema,
        key_tables=_key_tables(found),
        last_active_recorded=any(
            "last_active" in found[table].columns for table in _key_tables(found)
        ),
        memory_read_as=read_as,
        memory_rows=memory_rows,
        rows_reached=reached,
        rows_exposed=exposed,
        rows_exposed_not_barred=not_barred,
        pairs=ordered,
    )


# -- formatting -------------------------------------------------------------------------------


def _routes_text(routes: dict[str, int]) -> str:
    present = [(verdict, count) for verdict, count in routes.items() if count]
    if len(present) == 1:
        return present[0][0]
    return ", ".join(f"{count} {verdict}" for verdict, count in present)


def _table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, tuple("-" * width for width in widths), *body]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return lines


def _key_text(key: dict[str, Any]) -> str:
    # The owner's role where it opens more than allowed_routes do, and the raw allowed_routes
    # where the verdict needs them to be read.
    role = f"{key['owner_role']}, " if key["owner_role"] in (ADMIN_ROLE, VIEWER_ROLE) else ""
    shown = f" {key['allowed_routes']}" if key["routes"] in (PARTIAL, UNKNOWN) else ""
    return f"{key['key']} ({key['state']}, {role}{key['routes']}{shown})"


def format_text(report: Report) -> str:
    """The report as a table plus one line per pair naming its users and keys."""
    found = ", ".join(report.key_tables)
    lines = [
        f"Exposure under LiteLLM's stock /v1/memory rules (issue #27722), schema {report.schema}",
        f"Key tables found: {found}"
        + ("" if report.last_active_recorded else " (no last_active column)"),
        f"Memory rows: {report.memory_rows} (read as: {report.memory_read_as})",
        "  reached by a key of another team or of no team (through their user, or as a proxy"
        f" admin's team key): {report.rows_reached}",
        f"  of those, reachable while such a key existed: {report.rows_exposed}",
        "  of those, by a key LiteLLM's route check let reach /v1/memory:"
        f" {report.rows_exposed_not_barred}",
        "",
    ]
    if not report.pairs:
        lines.append("No memory row was reachable by a key of another team, or by a key without")
        lines.append("a team, through a shared user or as a proxy admin's team key.")
    else:
        header = (
            "row team", "key team", "kind", "rows", "in key lifetime", "not barred", "users",
            "keys live", "keys deleted", "last active", "memory routes",
        )
        body = [
            (
                pair.row_team or "(none)", pair.key_team or "(none)", pair.kind,
                str(pair.rows), str(pair.rows_in_key_lifetime), str(pair.rows_not_barred),
                str(len(pair.users)),
                str(pair.keys_live), str(pair.keys_deleted), pair.last_active or "-",
                _routes_text(pair.routes),
            )
            for pair in report.pairs
        ]
        lines += _table(header, body)
        lines += ["", "Through:"]
        for pair in report.pairs:
            kind = f" ({pair.kind})" if pair.kind == ADMIN_TEAM_KEY else ""
            lines.append(
                f"  {pair.row_team or '(none)'} <- {pair.key_team or '(none)'}{kind}:"
                f" users {', '.join(pair.users)}; keys {', '.join(map(_key_text, pair.keys))}"
            )
            if pair.memory_keys is not None:
                lines.append(f"    memory keys: {', '.join(pair.memory_keys)}")
    lines += [
        "",
        "Every reachable row was also writable (update, delete) by those keys, except by keys",
        "that only read (a viewer's, on LiteLLM 1.110 and later). Reads leave no trace in",
        "LiteLLM's tables: this is what keys could reach, not what they did.",
    ]
    return "\n".join(lines)
