"""A read-only check of the database side of the patch, for ``litellm-memory-patch doctor``.

Every object the enforcement rests on is compared, by content, with what this version's
migrations create (``migrations/enforcement.py``): each policy's USING and WITH CHECK
expressions, each function's body, language, volatility, SECURITY DEFINER, settings, owner and
EXECUTE grants (and no other function of its name), the trigger, the rules and other triggers
on the table, the restricted role's attributes and memberships, and the grants on the table.
Then the per-request guard is called as a request would call it, and a canary tries every
command across teams for real. All of it runs in transactions that are always rolled back, so
nothing doctor writes survives, whatever happens. Each check answers ok, warn or fail with a
one-line detail that names the object, what differs and how to repair it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from . import migrator
from .config import APP_ROLE, PATCH_SCHEMA, DatabaseTarget, quote_ident, refuses_the_switch
from .migrations import enforcement
from .unknowns import columns_check

OK = "ok"
WARN = "warn"
FAIL = "fail"

MIGRATE_HINT = "repair: litellm-memory-patch migrate"
# What doctor sees depends on the login role of its URL; the proxy's own login is what counts.
PROXY_URL_NOTE = "doctor checks its URL's login role: run it with the proxy's own database URL"
CANNOT_SWITCH = (
    "{login} cannot switch to {role}, so a proxy logging in as it answers 503; repair, as a"
    " superuser: GRANT {role} TO {login}; (or litellm-memory-patch migrate --grant-to {login})"
)
LACKS_PRIVILEGE = (
    "this login role ({login}) lacks a privilege ({reason}): the problem is this role's"
    " privileges, not the database's protection; {note}"
)
# The guard and the canary see the sum of what the other checks compare: their repair is the
# one those name (a superuser's ALTER ROLE, say), else migrate (a restore left every object as
# it was, but not written by migrate).
REPAIR_ABOVE = "repair: what the checks above name, else litellm-memory-patch migrate"
ROLE_ATTRIBUTES = ("LOGIN", "SUPERUSER", "BYPASSRLS", "CREATEDB", "CREATEROLE", "INHERIT", "REPLICATION")
TABLE_PRIVILEGES = ["DELETE", "INSERT", "SELECT", "UPDATE"]
# pg_trigger.tgtype of BEFORE INSERT OR UPDATE ... FOR EACH ROW.
TRIGGER_TYPE = 1 | 2 | 4 | 16
# The canary gives up instead of hanging the doctor behind a lock or a widened policy.
CANARY_TIMEOUT = "10s"
DATABASE_READ_ONLY = (
    "read-only ({reason}): the memory routes serve reads and answer 503 to writes, and the"
    " policies and the canary cannot be checked; point the proxy and doctor at a database that"
    " accepts writes"
)
# A scratch copy of the table's columns that the expected policies are created on.
EXPECTED_TABLE = "pg_temp.litellm_memory_doctor_expected"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def _short(text: str | None, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lacks(conn: psycopg.Connection, exc: psycopg.Error) -> str:
    """A refusal met because of doctor's own login role, said as such."""
    reason = _short(exc.diag.message_primary or exc)
    if refuses_the_switch(reason):
        return CANNOT_SWITCH.format(login=quote_ident(conn.info.user), role=APP_ROLE)
    return LACKS_PRIVILEGE.format(login=conn.info.user, reason=reason, note=PROXY_URL_NOTE)


def _rls_check(cur: psycopg.Cursor, table: str) -> Check:
    cur.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
        (table,),
    )
    enabled, forced = cur.fetchone()
    if enabled and forced:
        return Check("row-level security", OK, "enabled and forced")
    missing = ", ".join(f"not {word}" for word, on in (("enabled", enabled), ("forced", forced)) if not on)
    return Check("row-level security", FAIL, f"{missing}: the table is not protected; {MIGRATE_HINT}")


_POLICY_QUERY = """
    SELECT polname, polcmd, polpermissive, polroles::regrole[]::text[],
           pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
    FROM pg_policy WHERE polrelid = %s::regclass"""


def _policy_checks(conn: psycopg.Connection, table: str) -> list[Check]:
    """Each policy against the same policy created on a scratch copy of the table's columns,
    so both expressions are printed back by PostgreSQL the same way."""
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {EXPECTED_TABLE} (LIKE {table})")
            for policy in enforcement.policies():
                cur.execute(enforcement.create_policy_sql(policy, EXPECTED_TABLE))
            expected = {row[0]: row[1:] for row in cur.execute(_POLICY_QUERY, (EXPECTED_TABLE,))}
            found = {row[0]: row[1:] for row in cur.execute(_POLICY_QUERY, (table,))}
    except errors.InsufficientPrivilege as exc:
        return [Check("policies", FAIL, f"cannot compare them with this version's: {_lacks(conn, exc)}")]
    except psycopg.Error as exc:
        # Without the role, or without the right to create a temporary table.
        reason = _short(exc.diag.message_primary or exc)
        return [Check("policies", FAIL, f"cannot compare them with this version's ({reason}); {MIGRATE_HINT}")]
    checks = []
    for name in (policy.name for policy in enforcement.policies()):
        want, have = expected[name], found.get(name)
        if have is None:
            checks.append(Check(f"policy {name}", FAIL, f"missing; {MIGRATE_HINT}"))
            continue
        labels = ("command", "permissive", "roles", "USING", "WITH CHECK")
        differs = [
            f"{label} is {_short(got) if got is not None else 'absent'}"
            for label, got, wanted in zip(labels, have, want)
            if got != wanted
        ]
        if differs:
            detail = "; ".join(differs) + f", not what this version creates; {MIGRATE_HINT}"
            checks.append(Check(f"policy {name}", FAIL, detail))
        else:
            checks.append(Check(f"policy {name}", OK, "as this version creates it"))
    # Permissive policies add up: any other one may widen what a caller sees or writes.
    for name in sorted(found.keys() - expected.keys()):
        checks.append(
            Check(f"policy {name}", FAIL, f"not one of this version's: it may widen access;"
                  f" {MIGRATE_HINT}, which drops it")
        )
    return checks


_FUNCTION_QUERY = """
    SELECT pg_get_function_identity_arguments(f.oid), pg_get_function_result(f.oid),
           l.lanname, f.provolatile, f.prosecdef, coalesce(f.proconfig, '{}'), f.prosrc,
           pg_get_userbyid(f.proowner), pg_get_userbyid(n.nspowner),
           has_function_privilege('public', f.oid, 'EXECUTE'),
           to_regrole(%(role)s) IS NOT NULL AND has_function_privilege(%(role)s, f.oid, 'EXECUTE')
    FROM pg_proc f
    JOIN pg_language l ON l.oid = f.prolang
    JOIN pg_namespace n ON n.oid = f.pronamespace
    WHERE n.nspname = %(schema)s AND f.proname = %(name)s"""


def _function_check(cur: psycopg.Cursor, function: enforcement.Function) -> Check:
    name = f"function {function.name}()"
    rows = cur.execute(
        _FUNCTION_QUERY, {"role": APP_ROLE, "schema": PATCH_SCHEMA, "name": function.name}
    ).fetchall()
    row = next((row for row in rows if row[0] == function.arguments), None)
    if row is None:
        return Check(name, FAIL, f"missing; {MIGRATE_HINT}")
    _, returns, language, volatility, definer, config, body, owner, schema_owner, public, role = row
    wanted = {
        "result": (returns, function.returns),
        "language": (language, function.language),
        "volatility": (volatility, function.volatility),
        "SECURITY DEFINER": (definer, function.security_definer),
        "settings": (list(config), list(function.config)),
        "body": (function.body_matches(body), True),
        # The migration creates the schema and its functions as one role; a function that
        # changed hands (a SECURITY DEFINER one above all) runs with another role's rights.
        "owner": (owner, schema_owner),
        # The restricted role runs the policies' and the trigger's functions through PUBLIC,
        # or through its own grant where PUBLIC's is revoked.
        "EXECUTE for PUBLIC": (public, not function.execute_revoked_from_public),
    }
    if function.execute_revoked_from_public:
        wanted[f"EXECUTE for {APP_ROLE}"] = (role, True)
    differs = [
        f"{label} differs" if label == "body" else f"{label} is {_short(got)}"
        for label, (got, expected) in wanted.items()
        if got != expected
    ]
    # Another function of the same name makes calls to it ambiguous, or may be called instead.
    differs += [
        f"another function {function.name}({arguments}) exists" for arguments, *_ in rows if row[0] != arguments
    ]
    if differs:
        # Only the function's owner (or a superuser) may write it again.
        who = f" as a superuser or a member of {owner}" if owner != schema_owner else ""
        return Check(name, FAIL, "; ".join(differs) + f", not what this version creates; {MIGRATE_HINT}{who}")
    return Check(name, OK, "as this version creates it")


def _trigger_check(cur: psycopg.Cursor, table: str) -> Check:
    name = enforcement.TRIGGER_NAME
    row = cur.execute(
        "SELECT tgenabled, tgfoid::regprocedure::text, tgtype, tgqual IS NULL, tgattr::text"
        " FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
        (table, name),
    ).fetchone()
    check = f"trigger {name}"
    if row is None:
        return Check(check, FAIL, f"missing; {MIGRATE_HINT}")
    enabled, function, kind, unconditional, columns = row
    differs = []
    if enabled == "D":
        differs.append("disabled")
    elif enabled != "A":
        # session_replication_role = replica (or origin, for 'R') would switch it off.
        differs.append("not enabled in every replication role (ENABLE ALWAYS)")
    if function != f"{PATCH_SCHEMA}.enforce_ownership()":
        differs.append(f"runs {function}")
    if kind != TRIGGER_TYPE or not unconditional or columns.strip():
        differs.append("does not fire BEFORE every INSERT OR UPDATE, FOR EACH ROW")
    if differs:
        return Check(check, FAIL, "; ".join(differs) + f"; {MIGRATE_HINT}")
    return Check(check, OK, f"enabled always, BEFORE INSERT OR UPDATE, runs {function}")


def _rules_and_triggers_checks(cur: psycopg.Cursor, table: str) -> list[Check]:
    """What else acts on the table's writes: rules and other triggers firing before or
    instead of one fail (they may change what a write does after the policies allowed it);
    AFTER triggers are named, as they may write too."""
    rules = [
        name for (name,) in cur.execute(
            "SELECT rulename FROM pg_rewrite WHERE ev_class = %s::regclass ORDER BY 1", (table,)
        )
    ]
    first = [
        name for (name,) in cur.execute(
            "SELECT tgname FROM pg_trigger t WHERE tgrelid = %s::regclass"
            f" AND {enforcement.OTHER_TRIGGER_FIRES_FIRST} ORDER BY 1",
            (table,),
        )
    ]
    after = [
        name for (name,) in cur.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal"
            " AND tgtype::int4 & (2 | 64) = 0 AND tgenabled <> 'D' ORDER BY 1",
            (table,),
        )
    ]
    checks = []
    if rules or first:
        objects = [f"rule {name}" for name in rules] + [
            f"trigger {name} (fires before or instead of a write)" for name in first
        ]
        checks.append(
            Check(
                "rules and triggers", FAIL,
                f"{', '.join(objects)}: may change what a write does after the policies allowed it;"
                f" {MIGRATE_HINT}, which drops them",
            )
        )
    else:
        checks.append(Check("rules and triggers", OK, "no rule, no other trigger before a write"))
    (flagged,) = cur.execute(
        "SELECT relhasrules FROM pg_class WHERE oid = %s::regclass", (table,)
    ).fetchone()
    if flagged and not rules:
        # PostgreSQL clears the flag when it next vacuums the table, not when the rule goes.
        checks.append(
            Check(
                "rules flag", WARN,
                "no rule is left, but the table is still flagged as having some: every request"
                f" takes the check's slower path (about 0.1 ms) until VACUUM {table}",
            )
        )
    if after:
        checks.append(
            Check(
                "after triggers", WARN,
                f"{', '.join(after)} fire(s) after writes: the protection does not check what"
                " they do (a SECURITY DEFINER one may write any row)",
            )
        )
    return checks


def _role_checks(cur: psycopg.Cursor, table: str | None) -> list[Check]:
    row = cur.execute(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolinherit,"
        " rolreplication FROM pg_roles WHERE rolname = %s",
        (APP_ROLE,),
    ).fetchone()
    if row is None:
        return [Check("restricted role", FAIL, f"role {APP_ROLE} missing; {MIGRATE_HINT}")]
    granted = [word for word, on in zip(ROLE_ATTRIBUTES, row) if on]
    if granted:
        undo = " ".join(f"NO{word}" for word in granted)
        checks = [
            Check(
                "restricted role", FAIL,
                f"{APP_ROLE} has {', '.join(granted)}: row-level security may not bind it;"
                f" repair (as a superuser): ALTER ROLE {APP_ROLE} {undo}; or run"
                f" litellm-memory-patch migrate as a superuser, which does it",
            )
        ]
    else:
        checks = [Check("restricted role", OK, f"{APP_ROLE} is NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT")]

    # Whatever the role is a member of, or owns, it may use: the login role's ownership of
    # the table, a superuser's rights.
    member_of = [
        name for (name,) in cur.execute(
            "SELECT roleid::regrole::text FROM pg_auth_members"
            " WHERE member = to_regrole(%s) ORDER BY 1",
            (APP_ROLE,),
        )
    ]
    owns = [
        thing for thing, owner in cur.execute(
            "SELECT 'the memory table', pg_get_userbyid(relowner) FROM pg_class"
            " WHERE oid = %s::regclass"
            " UNION ALL SELECT 'schema ' || nspname, pg_get_userbyid(nspowner) FROM pg_namespace"
            " WHERE nspname = %s",
            (table or "pg_class", PATCH_SCHEMA),
        )
        if owner == APP_ROLE
    ]
    problems = [
        f"is a member of {name} ({MIGRATE_HINT}, which revokes it)" for name in member_of
    ]
    problems += [
        f"owns {thing} ({MIGRATE_HINT}, which makes it over to the role migrating)"
        if thing.startswith("schema")
        else f"owns {thing} (repair: ALTER TABLE {table} OWNER TO the role LiteLLM logs in as)"
        for thing in owns
    ]
    if problems:
        checks.append(Check("restricted role memberships", FAIL, f"{APP_ROLE} " + "; ".join(problems)))
    else:
        checks.append(Check("restricted role memberships", OK, f"{APP_ROLE} is a member of no role and owns nothing"))

    # PostgreSQL 16 split "may SET ROLE" from membership; before it, membership implied it.
    login, member, can_set, superuser, bypassrls = cur.execute(
        "SELECT current_user, pg_has_role(current_user, %(role)s, 'MEMBER'),"
        " CASE WHEN current_setting('server_version_num')::int >= 160000"
        " THEN pg_has_role(current_user, %(role)s, 'SET') ELSE true END,"
        " rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        {"role": APP_ROLE},
    ).fetchone()
    if member and can_set:
        checks.append(Check("role switch", OK, f"{login} can switch to {APP_ROLE} ({PROXY_URL_NOTE})"))
    else:
        checks.append(
            Check("role switch", FAIL, CANNOT_SWITCH.format(login=quote_ident(login), role=APP_ROLE))
        )

    owner = False
    if table is not None:
        cur.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (table,))
        owner = cur.fetchone()[0] == login
    flags = (("a superuser", superuser), ("the table owner", owner), ("BYPASSRLS", bypassrls))
    powers = [word for word, on in flags if on]
    if powers:
        checks.append(
            Check(
                "login role", WARN,
                f"{login} is {' and '.join(powers)}, so it may skip or switch off row-level security;"
                f" enforcement still holds because every request switches to {APP_ROLE}",
            )
        )
    else:
        checks.append(Check("login role", OK, f"{login} is an ordinary role"))
    return checks


def _grant_check(cur: psycopg.Cursor, table: str) -> Check:
    granted: dict[str, list[str]] = {}
    for grantee, privilege, grantable in cur.execute(
        "SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable"
        " FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a"
        " LEFT JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE c.oid = %s::regclass AND (a.grantee = 0 OR r.rolname = %s)"
        " ORDER BY 1, 2",
        (table, APP_ROLE),
    ):
        granted.setdefault(grantee, []).append(privilege + (" WITH GRANT OPTION" if grantable else ""))
    problems = []
    if granted.get(APP_ROLE, []) != TABLE_PRIVILEGES:
        problems.append(f"{APP_ROLE} has {', '.join(granted.get(APP_ROLE, [])) or 'nothing'}")
    if granted.get("PUBLIC"):
        problems.append(f"PUBLIC (every role) has {', '.join(granted['PUBLIC'])}")
    if problems:
        return Check(
            "table grants", FAIL,
            "; ".join(problems) + f"; expected {APP_ROLE}: {', '.join(TABLE_PRIVILEGES)} only;"
            f" {MIGRATE_HINT}",
        )
    return Check("table grants", OK, f"{APP_ROLE}: {', '.join(TABLE_PRIVILEGES)}; PUBLIC: nothing")


def _guard_check(conn: psycopg.Connection, repair: str) -> Check:
    """The per-request guard, called as a request calls it (then rolled back)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(
                sql.SQL("SELECT {}.begin_request(%s, '', '', '', '5000')").format(
                    sql.Identifier(PATCH_SCHEMA)
                ),
                (migrator.head_revision(),),
            )
    except errors.InsufficientPrivilege as exc:
        return Check("request guard", FAIL, f"requests as this login role answer 503: {_lacks(conn, exc)}")
    except psycopg.Error as exc:
        reason = _short(exc.diag.message_primary or exc)
        return Check("request guard", FAIL, f"requests answer 503: {reason}; {repair}")
    return Check("request guard", OK, "requests pass the per-request check")


class _Canary:
    """One random team's rows, probed from another team, by a plain member and with no scope."""

    def __init__(self, cur: psycopg.Cursor, table: sql.Composable) -> None:
        self.cur = cur
        self.table = table
        token = uuid.uuid4().hex
        self.token = token
        self.user, self.member, self.team, self.other_team = (
            f"doctor-{part}-{token}" for part in ("user", "member", "team-a", "team-b")
        )

    def scope(self, *, team: str = "", user: str = "", role: str = "") -> None:
        self.cur.execute(
            "SELECT set_config('litellm_memory.team_id', %s, true),"
            " set_config('litellm_memory.user_id', %s, true),"
            " set_config('litellm_memory.user_role', %s, true)",
            (team, user, role),
        )

    def insert(self, key: str, *, team: str | None = None, user: str | None = None) -> str | None:
        # Values as literals, no placeholders: a "%" in the schema's name is no placeholder.
        values = (f"{key}-{self.token}", f"litellm-memory-patch-doctor-{key}-{self.token}", team, user)
        self.cur.execute(
            sql.SQL(
                "INSERT INTO {} (memory_id, key, value, team_id, user_id)"
                " VALUES ({}, {}, 'canary', {}, {}) RETURNING team_id"
            ).format(self.table, *map(sql.Literal, values))
        )
        return self.cur.fetchone()[0]

    def count(self, statement: str) -> int:
        """Rows an unfiltered statement reaches: it names no column, so only the policy of its
        own command decides (a WHERE would bring the SELECT policy in too)."""
        self.cur.execute(sql.SQL(statement).format(self.table))
        return self.cur.fetchone()[0] if statement.startswith("SELECT") else self.cur.rowcount

    def refused(self, action) -> bool:
        try:
            with self.cur.connection.transaction():  # a savepoint: the canary goes on after it
                action()
        except errors.InsufficientPrivilege:
            return True
        return False

    def failures(self) -> list[str]:
        failures = []
        self.scope(team=self.team, user=self.user)
        try:
            with self.cur.connection.transaction():
                stamped = self.insert("own")
        except errors.InsufficientPrivilege:
            stamped = None
        if stamped != self.team:
            failures.append("an insert without owners was not stamped with the session's team")
        self.scope(role="proxy_admin")
        self.insert("team-row", team=self.team)

        # Same user, another team: the LiteLLM #27722 case.
        self.scope(team=self.other_team, user=self.user)
        if self.count("SELECT count(*) FROM {}"):
            failures.append("another team sees rows")
        if self.count("UPDATE {} SET value = 'changed by doctor'"):
            failures.append("another team can update rows")
        if self.count("DELETE FROM {}"):
            failures.append("another team can delete rows")
        if not self.refused(lambda: self.insert("foreign", team=self.team, user=self.user)):
            failures.append("another team can insert a row into this team")

        # The team decides first: a proxy admin's key of another team is confined to that team.
        self.scope(team=self.other_team, user=self.user, role="proxy_admin")
        if self.count("SELECT count(*) FROM {}") or self.count("DELETE FROM {}"):
            failures.append("a proxy admin's key of another team reaches rows")

        # A plain member (not the team's admin) and the pure team row.
        self.scope(team=self.team, user=self.member)
        if self.count("DELETE FROM {}"):
            failures.append("a plain member can delete a pure team row or another member's row")
        self.scope(team=self.team, user=self.user)
        if not self.refused(lambda: self.count("UPDATE {} SET team_id = 'doctor-elsewhere'")):
            failures.append("a member can move its row to another team")

        self.scope()
        if self.count("SELECT count(*) FROM {}"):
            failures.append("a session without settings sees rows")
        if not self.refused(lambda: self.insert("no-scope")):
            failures.append("a session without settings can insert")
        return failures


def _canary(conn: psycopg.Connection, schema: str, repair: str) -> Check:
    table = sql.Identifier(schema, enforcement.TABLE_NAME)
    try:
        # force_rollback: the canary's rows never commit, on success or on any error.
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('lock_timeout', %(timeout)s, true),"
                " set_config('statement_timeout', %(timeout)s, true),"
                " set_config('row_security', 'on', true),"
                " set_config('role', %(role)s, true)",
                {"timeout": CANARY_TIMEOUT, "role": APP_ROLE},
            )
            failures = _Canary(cur, table).failures()
    except errors.InsufficientPrivilege as exc:
        return Check("canary", FAIL, f"the test writes could not run: {_lacks(conn, exc)}")
    except psycopg.Error as exc:
        return Check("canary", FAIL, f"the test writes failed: {_short(exc.diag.message_primary or exc)}")
    if failures:
        return Check("canary", FAIL, "; ".join(failures) + f"; {repair}")
    return Check(
        "canary", OK,
        "reads, inserts, updates and deletes across teams all refused (rolled back)",
    )


def _read_only_reason(cur: psycopg.Cursor) -> str | None:
    """Why this connection's transactions cannot write, if they cannot."""
    cur.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
    in_recovery, read_only = cur.fetchone()
    if in_recovery:
        return "a standby in recovery"
    return "default_transaction_read_only is on" if read_only else None


def _revision_check(conn: psycopg.Connection, schema: str) -> Check:
    # The version table is per database; the protection is for one schema of it.
    others = [name for name in migrator.migrated_schemas(conn) if name != schema]
    if others:
        return Check("revision", FAIL, migrator.MIGRATED_FOR_ANOTHER_SCHEMA.format(other=others[0], schema=schema))
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
            table = sql.Identifier(target.schema, enforcement.TABLE_NAME).as_string(conn)
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                return [
                    Check("memory table", FAIL, migrator.table_problem(conn, target.schema)),
                    _revision_check(conn, target.schema),
                    *_role_checks(cur, None),
                ]
            checks = [Check("memory table", OK, table), _revision_check(conn, target.schema), _rls_check(cur, table)]
            # Comparing the policies and the canary both write, in transactions rolled back.
            read_only = _read_only_reason(cur)
            if read_only:
                checks.append(Check("database", FAIL, DATABASE_READ_ONLY.format(reason=read_only)))
            else:
                checks += _policy_checks(conn, table)
            checks += [_function_check(cur, function) for function in enforcement.functions(target.schema, revision=migrator.head_revision())]
            checks.append(_trigger_check(cur, table))
            checks += _rules_and_triggers_checks(cur, table)
            checks += _role_checks(cur, table)
            checks.append(_grant_check(cur, table))
            checks.append(columns_check(cur, table))
        repair = _repair_for_the_live_checks(checks)
        checks.append(_guard_check(conn, repair))
        if not read_only:
            checks.append(_canary(conn, target.schema, repair))
    return checks


def _repair_for_the_live_checks(checks: list[Check]) -> str:
    """The repair the guard and the canary name: a failing restricted role is repaired by its
    own statement (migrate cannot take a superuser's powers away unless run as one), anything
    else by migrate."""
    for check in checks:
        if check.name == "restricted role" and check.status == FAIL:
            return "repair: see the restricted role line above"
    return REPAIR_ABOVE


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
