"""A read-only checklist of the database side of the patch, for ``litellm-memory-patch doctor``.

Each check looks at one thing the enforcement rests on (the table, the migration revision,
row-level security, the policies, the ownership trigger, the restricted role and the login
role's right to switch to it) and answers ok, warn or fail with a one-line detail. The last
check, the canary, tries the isolation for real inside a transaction that is always rolled
back, so nothing it writes survives, whatever happens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import migrator
from .config import APP_ROLE, DatabaseTarget
from .unknowns import columns_check

OK = "ok"
WARN = "warn"
FAIL = "fail"

TABLE = "LiteLLM_MemoryTable"
TRIGGER = "litellm_memory_enforce_ownership"
POLICIES = {
    "litellm_memory_select": "SELECT",
    "litellm_memory_insert": "INSERT",
    "litellm_memory_update": "UPDATE",
    "litellm_memory_delete": "DELETE",
}
MIGRATE_HINT = "run: litellm-memory-patch migrate"
# At the head revision a missing object was removed by hand, and migrate alone would change
# nothing. Re-applying keeps every row (the table is unprotected between the two commands).
REAPPLY_HINT = (
    f"{MIGRATE_HINT}; if the revision is already head, re-apply:"
    " litellm-memory-patch downgrade base, then migrate (rows are kept)"
)
# A canary that waits longer than this for a lock fails instead of hanging the doctor.
CANARY_LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def _table_checks(cur: psycopg.Cursor, schema: str, table: str) -> list[Check]:
    cur.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
        (table,),
    )
    enabled, forced = cur.fetchone()
    if enabled and forced:
        rls = Check("row-level security", OK, "enabled and forced")
    else:
        missing = ", ".join(
            f"not {word}" for word, on in (("enabled", enabled), ("forced", forced)) if not on
        )
        rls = Check(
            "row-level security", FAIL, f"{missing}: the table is not protected; {REAPPLY_HINT}"
        )

    cur.execute(
        "SELECT policyname, cmd, roles::text[], permissive FROM pg_policies"
        " WHERE schemaname = %s AND tablename = %s",
        (schema, TABLE),
    )
    found = {name: (cmd, roles, permissive) for name, cmd, roles, permissive in cur.fetchall()}
    problems = []
    for name, command in POLICIES.items():
        if name not in found:
            problems.append(f"{name} missing")
        elif found[name] != (command, [APP_ROLE], "PERMISSIVE"):
            problems.append(f"{name} is not a permissive {command} policy for {APP_ROLE}")
    # Permissive policies add up: any other one may widen what a caller sees or writes.
    problems += [f"unexpected policy {name}" for name in sorted(found.keys() - POLICIES.keys())]
    if problems:
        policies = Check("policies", FAIL, "; ".join(problems) + f"; {REAPPLY_HINT}")
    else:
        policies = Check("policies", OK, f"the four policies for {APP_ROLE}")

    cur.execute(
        "SELECT tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
        (table, TRIGGER),
    )
    row = cur.fetchone()
    if row is None:
        trigger = Check("ownership trigger", FAIL, f"{TRIGGER} missing; {REAPPLY_HINT}")
    elif row[0] in ("O", "A"):
        trigger = Check("ownership trigger", OK, f"{TRIGGER} enabled")
    else:
        trigger = Check(
            "ownership trigger",
            FAIL,
            f"{TRIGGER} is disabled: ALTER TABLE {table} ENABLE TRIGGER {TRIGGER}",
        )
    return [rls, policies, trigger]


def _role_checks(cur: psycopg.Cursor, table: str | None) -> list[Check]:
    cur.execute(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
    )
    row = cur.fetchone()
    if row is None:
        return [Check("restricted role", FAIL, f"role {APP_ROLE} missing; {REAPPLY_HINT}")]
    unsafe = [word for word, on in zip(("LOGIN", "SUPERUSER", "BYPASSRLS"), row) if on]
    if unsafe:
        checks = [
            Check(
                "restricted role",
                FAIL,
                f"{APP_ROLE} has {', '.join(unsafe)}: row-level security may not bind it;"
                f" a superuser must run ALTER ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS",
            )
        ]
    else:
        checks = [Check("restricted role", OK, f"{APP_ROLE} is NOLOGIN NOSUPERUSER NOBYPASSRLS")]

    # PostgreSQL 16 split "may SET ROLE" from membership; before it, membership implied it.
    cur.execute(
        "SELECT current_user, pg_has_role(current_user, %(role)s, 'MEMBER'),"
        " CASE WHEN current_setting('server_version_num')::int >= 160000"
        " THEN pg_has_role(current_user, %(role)s, 'SET') ELSE true END,"
        " rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        {"role": APP_ROLE},
    )
    login, member, can_set, superuser, bypassrls = cur.fetchone()
    if member and can_set:
        checks.append(Check("role switch", OK, f"{login} can switch to {APP_ROLE}"))
    else:
        checks.append(
            Check(
                "role switch",
                FAIL,
                f"{login} cannot SET ROLE {APP_ROLE}; migrate as this login role,"
                f" or run: GRANT {APP_ROLE} TO {login}",
            )
        )

    owner = False
    if table is not None:
        cur.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (table,)
        )
        owner = cur.fetchone()[0] == login
    flags = (("a superuser", superuser), ("the table owner", owner), ("BYPASSRLS", bypassrls))
    powers = [word for word, on in flags if on]
    if powers:
        checks.append(
            Check(
                "login role",
                WARN,
                f"{login} is {' and '.join(powers)}, so it may skip or switch off row-level security;"
                f" enforcement still holds because every request switches to {APP_ROLE}",
            )
        )
    else:
        checks.append(Check("login role", OK, f"{login} is an ordinary role"))
    return checks


def _set_scope(cur: psycopg.Cursor, *, team_id: str, user_id: str) -> None:
    cur.execute(
        "SELECT set_config('litellm_memory.team_id', %s, true),"
        " set_config('litellm_memory.user_id', %s, true),"
        " set_config('litellm_memory.user_role', '', true)",
        (team_id, user_id),
    )


def _canary_failures(cur: psycopg.Cursor, table: sql.Composable) -> list[str]:
    """Write one row as a random team, then probe it from outside that team."""
    token = uuid.uuid4().hex
    memory_id, user, owner_team, other_team = (
        f"doctor-{part}-{token}" for part in ("row", "user", "team-a", "team-b")
    )
    cur.execute(
        "SELECT set_config('lock_timeout', %s, true), set_config('role', %s, true)",
        (CANARY_LOCK_TIMEOUT, APP_ROLE),
    )
    _set_scope(cur, team_id=owner_team, user_id=user)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (memory_id, key, value) VALUES (%s, %s, 'canary') RETURNING team_id"
        ).format(table),
        (memory_id, f"litellm-memory-patch-doctor-{token}"),
    )
    failures = []
    if cur.fetchone()[0] != owner_team:
        failures.append("an insert was not stamped with the session's team")

    # Same user, another team: the LiteLLM #27722 case.
    _set_scope(cur, team_id=other_team, user_id=user)
    by_id = sql.SQL("WHERE memory_id = %s")
    cur.execute(sql.SQL("SELECT count(*) FROM {} ").format(table) + by_id, (memory_id,))
    if cur.fetchone()[0]:
        failures.append("another team sees the row")
    cur.execute(sql.SQL("UPDATE {} SET value = 'changed' ").format(table) + by_id, (memory_id,))
    if cur.rowcount:
        failures.append("another team can update the row")
    cur.execute(sql.SQL("DELETE FROM {} ").format(table) + by_id, (memory_id,))
    if cur.rowcount:
        failures.append("another team can delete the row")

    _set_scope(cur, team_id="", user_id="")
    cur.execute(sql.SQL("SELECT count(*) FROM {} ").format(table) + by_id, (memory_id,))
    if cur.fetchone()[0]:
        failures.append("a session without settings sees the row")
    return failures


def _canary(conn: psycopg.Connection, schema: str) -> Check:
    table = sql.Identifier(schema, TABLE)
    try:
        # force_rollback: the canary row never commits, on success or on any error.
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            failures = _canary_failures(cur, table)
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        return Check("canary", FAIL, f"the test write failed: {' '.join(message.split())}")
    if failures:
        return Check("canary", FAIL, "; ".join(failures))
    return Check(
        "canary", OK, "a row of one team is invisible and untouchable from another (rolled back)"
    )


def _revision_check(conn: psycopg.Connection) -> Check:
    head = migrator.head_revision()
    try:
        current = migrator.current_revision(conn)
    except psycopg.errors.InsufficientPrivilege:
        # A login role that only runs the proxy may not read the version table; the other
        # checks still tell whether the protection is in place.
        return Check("revision", WARN, "cannot read the version table as this login role")
    if current == head:
        return Check("revision", OK, f"{head} (head)")
    return Check("revision", FAIL, f"at {current or 'no revision'}, head is {head}; {MIGRATE_HINT}")


def run_checks(target: DatabaseTarget, *, connect_timeout: int = 10) -> list[Check]:
    """Every check, in order; connection errors propagate to the caller."""
    with psycopg.connect(target.conninfo, autocommit=True, connect_timeout=connect_timeout) as conn:
        with conn.cursor() as cur:
            table = sql.Identifier(target.schema, TABLE).as_string(conn)
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if cur.fetchone()[0]:
                checks = [Check("memory table", OK, table)]
            else:
                checks = [
                    Check(
                        "memory table",
                        FAIL,
                        f"{table} does not exist:"
                        f" start LiteLLM >= 1.83.14 once, then {MIGRATE_HINT}",
                    )
                ]
            checks.append(_revision_check(conn))
            if checks[0].status == FAIL:
                return checks + _role_checks(cur, None)
            checks += _table_checks(cur, target.schema, table)
            checks += _role_checks(cur, table)
            checks.append(columns_check(cur, table))
        checks.append(_canary(conn, target.schema))
    return checks


def all_ok(checks: list[Check]) -> bool:
    return all(check.status != FAIL for check in checks)


def format_table(checks: list[Check]) -> str:
    """The checks as aligned text columns: name, status, detail."""
    width = max(len(check.name) for check in checks)
    rows = [(check.name, check.status, check.detail) for check in checks]
    rows.append(("overall", OK if all_ok(checks) else FAIL, ""))
    return "\n".join(
        f"{name:<{width}}  {status.upper():<4}  {detail}".rstrip() for name, status, detail in rows
    )
