"""The database enforcement as the head revision defines it: functions, policies, trigger, guard.

One definition serves three readers:

- the revisions that (re)create the objects (``0003_request_guard`` and later) and every
  ``litellm-memory-patch migrate``, which re-applies them so that hand-edited objects are
  repaired (:func:`upgrade_sql`);
- ``doctor``, which compares what the database holds with :func:`functions`,
  :func:`policies` and the trigger, by content;
- ``litellm_memory_patch.begin_request()``, the per-request guard, which each request calls
  first and which refuses to run the request unless every object below is still the one the
  last ``migrate`` wrote.

What a DBA reviews here:

- Nothing any function or policy runs depends on the caller's ``search_path``. The policies
  read the caller's settings themselves (their expressions are stored parsed). The SQL session
  functions, which the planner inlines wherever they are called and parses with the caller's
  ``search_path``, qualify every name (``pg_catalog.``, ``OPERATOR(pg_catalog.=)``). The
  plpgsql functions pin ``search_path`` (the guard pins it for the whole transaction, so the
  request's own statements resolve names in ``pg_catalog`` too).
- How the guard knows that nothing changed since ``migrate``: every catalog row PostgreSQL
  writes carries the id of the writing transaction (``xmin``). ``migrate`` (re)creates all the
  objects in one transaction and writes that transaction's id into the guard itself; the guard
  then checks, in one query, that the policies, the trigger and the functions (itself included)
  are exactly the rows that transaction wrote (none missing, no other policy on the table), that
  no rule and no other trigger acts before a write to the table, that the ownership trigger
  fires in every replication role, that row-level security is enabled, forced and binds the
  restricted role, and that the revision the calling proxy expects is one of those ``migrate``
  wrote into it: the database's own, and the older ones it still serves (a revision names the
  oldest in ``serves_proxies_from``), so that proxies of the previous release keep serving
  through a rolling upgrade. A proxy expecting a newer revision than the database's fails.
  expects. Any later ``ALTER``, ``CREATE OR REPLACE``, ``DROP``, ``GRANT``/``REVOKE`` or
  ``DISABLE`` writes a new row or removes one, and the next request answers 503 until
  ``migrate`` writes them all again. A dump and restore also writes new rows, all in one
  transaction with ``psql -1``, but never in the one the restored guard names: run ``migrate``
  after restoring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, dollar_tag, quote_ident, quote_literal

TABLE_NAME = "LiteLLM_MemoryTable"
TRIGGER_NAME = "litellm_memory_enforce_ownership"
# A trigger of someone else's on the table that fires before or instead of a write (pg_trigger
# as t; tgtype bits 2 and 64), unless disabled. It could change or redo what a write does after
# the policies allowed it, so the protection allows none (AFTER triggers, doctor warns about).
OTHER_TRIGGER_FIRES_FIRST = (
    f"t.tgname <> '{TRIGGER_NAME}' AND t.tgtype::int4 & (2 | 64) <> 0 AND t.tgenabled <> 'D'"
)
GUARD_SIGNATURE = f"{PATCH_SCHEMA}.begin_request(text, text, text, text, text)"
# Stands in the guard's body for the id of the transaction migrate writes every object in;
# migrate puts the real one in its place when it writes the guard (see upgrade_sql).
MIGRATE_TRANSACTION = "'migrate-transaction'::pg_catalog.xid"
# Raised by the guard; the store turns it into a 503 that names the problem.
GUARD_SQLSTATE = "LM001"


@dataclass(frozen=True)
class Function:
    name: str
    arguments: str  # as pg_get_function_identity_arguments() prints them
    returns: str
    language: str
    volatility: str  # pg_proc.provolatile: i, s or v
    security_definer: bool
    config: tuple[str, ...]  # pg_proc.proconfig
    body: str  # pg_proc.prosrc, exactly
    execute_revoked_from_public: bool = False

    @property
    def signature(self) -> str:
        return f"{PATCH_SCHEMA}.{self.name}({self.arguments})"

    def body_matches(self, found: str) -> bool:
        """Whether ``found`` (pg_proc.prosrc) is this body, any transaction id standing where
        the body names migrate's."""
        if MIGRATE_TRANSACTION not in self.body:
            return found == self.body
        pattern = re.escape(self.body).replace(re.escape(MIGRATE_TRANSACTION), r"'\d+'::pg_catalog\.xid")
        return re.fullmatch(pattern, found) is not None


@dataclass(frozen=True)
class Policy:
    name: str
    command: str
    using: str | None
    with_check: str | None


PINNED_PATH = ("search_path=pg_catalog, pg_temp",)
# The functions the policies and the trigger run, which the guard checks at every request.
TRACKED_FUNCTIONS = (
    "session_team_id", "session_user_id", "session_is_admin", "session_is_team_admin",
    "enforce_ownership",
)


def _setting(name: str, *, absent: tuple[str, ...] = ("",)) -> str:
    # NULLIF and IN would look up "=" on the caller's search_path; CASE WHEN with a qualified
    # operator does not. A setting never set reads NULL, one of ``absent`` NULL too.
    value = f"pg_catalog.current_setting('litellm_memory.{name}', true)"
    present = " AND ".join(f"{value} OPERATOR(pg_catalog.<>) {quote_literal(word)}" for word in absent)
    return f"CASE WHEN {present} THEN {value} END"


# LiteLLM's admin-UI session team (UI_TEAM_ID): every UI login key carries it, and it is no team.
UI_SESSION_TEAM = "litellm-dashboard"

# The caller's scope as SQL expressions, used alike by the SQL functions (whose bodies the
# planner parses again wherever it inlines them) and, directly, by the policies (parsed once,
# when created, so a statement under row-level security pays no parsing for them).
CALLER_TEAM = _setting("team_id", absent=("", UI_SESSION_TEAM))
CALLER_USER = _setting("user_id")
_USER_ROLE = "pg_catalog.current_setting('litellm_memory.user_role', true)"
_NO_TEAM = f"{CALLER_TEAM} IS NULL"
# The owner is a proxy admin, whatever the key's team: with a team, any write within it.
CALLER_HAS_ADMIN_ROLE = f"coalesce({_USER_ROLE} OPERATOR(pg_catalog.=) 'proxy_admin', false)"
# The team decides first: only a proxy admin session with no team reaches every row and writes
# anywhere.
CALLER_IS_ADMIN = f"({CALLER_HAS_ADMIN_ROLE} AND {_NO_TEAM})"
# proxy_admin and proxy_admin_viewer sessions with no team read every row; the viewer writes
# like anyone else.
CALLER_READS_ALL = (
    f"(coalesce({_USER_ROLE} OPERATOR(pg_catalog.=) ANY"
    f" (ARRAY['proxy_admin', 'proxy_admin_viewer']::pg_catalog.text[]), false) AND {_NO_TEAM})"
)
# Functions earlier revisions created that nothing uses any more.
RETIRED_FUNCTIONS = ("session_reads_all",)


def functions(schema: str, *, revision: str) -> tuple[Function, ...]:
    """Every function of the enforcement, for LiteLLM's tables in ``schema``, as the migrations
    write them at ``revision``."""
    names = _names(schema)
    return (
        Function("session_team_id", "", "text", "sql", "s", False, (), f" SELECT {CALLER_TEAM} "),
        Function("session_user_id", "", "text", "sql", "s", False, (), f" SELECT {CALLER_USER} "),
        Function(
            "session_is_admin", "", "boolean", "sql", "s", False, (), f" SELECT {CALLER_IS_ADMIN} "
        ),
        # Team-admin and org-admin status, from LiteLLM's own tables, for the session's own
        # team and user only. SECURITY DEFINER: the restricted role cannot read those tables.
        Function(
            "session_is_team_admin", "", "boolean", "sql", "s", True, PINNED_PATH,
            f"""
    WITH caller AS (
        SELECT {PATCH_SCHEMA}.session_team_id() AS team_id, {PATCH_SCHEMA}.session_user_id() AS user_id
    )
    SELECT coalesce((
        SELECT EXISTS (
                   SELECT 1 FROM {names['teams']} t
                   WHERE t.team_id = caller.team_id
                     AND jsonb_typeof(t.members_with_roles) = 'array'
                     AND t.members_with_roles @> jsonb_build_array(
                             jsonb_build_object('user_id', caller.user_id, 'role', 'admin')))
            OR EXISTS (
                   SELECT 1 FROM {names['teams']} t
                   JOIN {names['org_members']} m ON m.organization_id = t.organization_id
                   WHERE t.team_id = caller.team_id
                     AND m.user_id = caller.user_id
                     AND m.user_role = 'org_admin')
        FROM caller
        WHERE caller.team_id IS NOT NULL AND caller.user_id IS NOT NULL
    ), false)
    """,
            execute_revoked_from_public=True,
        ),
        # team_id/user_id as an enforced ownership pair for the restricted role: filled from the
        # session when an insert leaves them empty, another team or user refused, and no change
        # on update unless the session is admin. A refused write raises; nothing is rewritten.
        Function(
            "enforce_ownership", "", "trigger", "plpgsql", "v", False, PINNED_PATH,
            f"""
DECLARE
    caller_team text;
    caller_user text;
BEGIN
    -- Only the restricted role is confined. The table owner is fenced off by forced row-level
    -- security (it has no policy); superusers are trusted by PostgreSQL's design.
    IF current_user <> '{APP_ROLE}' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.team_id = '{UI_SESSION_TEAM}' THEN
            RAISE EXCEPTION 'litellm_memory: a memory cannot be created for LiteLLM''s UI session team'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF {PATCH_SCHEMA}.session_is_admin() THEN
            RETURN NEW;
        END IF;
        caller_team := {PATCH_SCHEMA}.session_team_id();
        caller_user := {PATCH_SCHEMA}.session_user_id();
        IF caller_team IS NULL AND caller_user IS NULL THEN
            RAISE EXCEPTION 'litellm_memory: no caller scope in this transaction'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.team_id := coalesce(NEW.team_id, caller_team);
        NEW.user_id := coalesce(NEW.user_id, caller_user);
        IF NEW.team_id IS DISTINCT FROM caller_team THEN
            RAISE EXCEPTION 'litellm_memory: a memory cannot be created for another team'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        -- A proxy admin's team key may name another user, within its team.
        IF NEW.user_id IS DISTINCT FROM caller_user AND NOT {CALLER_HAS_ADMIN_ROLE} THEN
            RAISE EXCEPTION 'litellm_memory: a memory cannot be created for another user'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NEW.team_id IS DISTINCT FROM OLD.team_id OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        IF NOT {PATCH_SCHEMA}.session_is_admin() THEN
            RAISE EXCEPTION 'litellm_memory: only a proxy admin without a team can change the team_id or user_id of a memory'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.team_id = '{UI_SESSION_TEAM}' THEN
            RAISE EXCEPTION 'litellm_memory: a memory cannot be moved to LiteLLM''s UI session team'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NEW;
END
""",
        ),
        # The start of every request. No SET clause: its settings must outlive the call, for
        # the rest of the request's transaction. Its first statement pins search_path, so every
        # later statement (its own and the request's) resolves names in pg_catalog first.
        Function(
            "begin_request",
            "revision text, team_id text, user_id text, user_role text, statement_timeout text",
            "void", "plpgsql", "v", False, (),
            _guard_body(names, revision),
        ),
    )


def _guard_body(names: dict, revision: str) -> str:
    from litellm_memory_patch.migrator import served_revisions  # Alembic: migrate and doctor only

    table = names["table_regclass"]
    served = ", ".join(quote_literal(name) for name in served_revisions(revision))
    expected = f"revision = ANY (ARRAY[{served}]::pg_catalog.text[])"
    tracked = ", ".join(quote_literal(f"{PATCH_SCHEMA}.{name}()") for name in TRACKED_FUNCTIONS)
    # The guard's own row too: migrate wrote it, with the rest, in the transaction it records.
    functions = f"ARRAY[{tracked}, {quote_literal(GUARD_SIGNATURE)}]::regprocedure[]"
    policies = f"SELECT p.xmin FROM pg_policy p WHERE p.polrelid = {table}"
    # The ownership trigger, enabled in every replication role, and every other trigger that
    # fires before or instead of a write: a fast path that finds one more row fails.
    triggers = (
        f"SELECT t.xmin FROM pg_trigger t WHERE t.tgrelid = {table}"
        f" AND (t.tgname = '{TRIGGER_NAME}' AND t.tgenabled = 'A' OR {OTHER_TRIGGER_FIRES_FIRST})"
    )
    others = (
        f"SELECT string_agg(quote_ident(t.tgname), ', ' ORDER BY t.tgname) FROM pg_trigger t"
        f" WHERE t.tgrelid = {table} AND {OTHER_TRIGGER_FIRES_FIRST}"
    )
    every_object = (
        f"{policies} UNION ALL SELECT t.xmin FROM pg_trigger t WHERE t.tgrelid = {table}"
        f" AND t.tgname = '{TRIGGER_NAME}' UNION ALL SELECT f.xmin FROM pg_proc f"
        f" WHERE f.oid = ANY ({functions})"
    )
    return f"""
DECLARE
    intact pg_catalog.bool;
    problem pg_catalog.text;
BEGIN
    -- Every name below resolves in pg_catalog from here on; this statement's own are qualified.
    -- row_security: off would turn the policies' filtering into errors; only on is meant here.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
            pg_catalog.set_config('row_security', 'on', true),
            pg_catalog.set_config('lock_timeout', statement_timeout, true),
            pg_catalog.set_config('statement_timeout', statement_timeout, true),
            pg_catalog.set_config('role', '{APP_ROLE}', true),
            pg_catalog.set_config('litellm_memory.team_id', team_id, true),
            pg_catalog.set_config('litellm_memory.user_id', user_id, true),
            pg_catalog.set_config('litellm_memory.user_role', user_role, true);
    -- The table's lock first: a migration (which locks it exclusively) then waits for this
    -- request, or this request for it, and the checks below read what it committed.
    LOCK TABLE {names['table']} IN ACCESS SHARE MODE;
    -- The fast path, one query: every object is the catalog row written by the transaction
    -- migrate ran in (which it recorded here, with the revision it migrated to), no rule and
    -- no other trigger acts before a write, row-level security is enabled, forced and binds
    -- this role, and the calling proxy expects that revision.
    SELECT c.relrowsecurity AND c.relforcerowsecurity AND NOT c.relhasrules
           AND row_security_active(c.oid)
           AND {expected}
           AND ARRAY({policies} UNION ALL {triggers}
                     UNION ALL SELECT f.xmin FROM pg_proc f WHERE f.oid = ANY ({functions}))
               = array_fill({MIGRATE_TRANSACTION}, ARRAY[{4 + 1 + len(TRACKED_FUNCTIONS) + 1}])
    INTO intact
    FROM pg_class c
    WHERE c.oid = {table};
    IF intact THEN
        RETURN;
    END IF;
    -- migrate committed while this call waited for the table's lock: PostgreSQL runs the copy
    -- of this function it looked up before, whose recorded transaction is the replaced one. The
    -- catalog's copy names its own transaction (a restore's would not): run that one instead.
    IF EXISTS (SELECT FROM pg_proc f
               WHERE f.oid = {quote_literal(GUARD_SIGNATURE)}::regprocedure
                 AND f.xmin <> {MIGRATE_TRANSACTION}
                 AND strpos(f.prosrc, quote_literal(f.xmin::text) || '::pg_catalog.xid') > 0) THEN
        PERFORM {PATCH_SCHEMA}.begin_request(revision, team_id, user_id, user_role, statement_timeout);
        RETURN;
    END IF;
    -- Something is off: name the first problem. None found means relhasrules outlived the
    -- table's last rule (PostgreSQL clears it at the next VACUUM): the request goes on.
    SELECT CASE
        WHEN NOT c.relrowsecurity THEN 'row-level security is disabled on the memory table'
        WHEN NOT c.relforcerowsecurity THEN 'row-level security is not forced on the memory table'
        WHEN EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = {table})
            THEN format('the memory table has a rule (%s), which may change what its writes do',
                        (SELECT string_agg(quote_ident(r.rulename), ', ' ORDER BY r.rulename)
                         FROM pg_rewrite r WHERE r.ev_class = {table}))
        WHEN ({others}) IS NOT NULL
            THEN format('trigger %s acts before writes to the memory table, besides the protection''s own',
                        ({others}))
        WHEN (SELECT bool_and(o.xmin = g.xmin) AND NOT bool_or(o.xmin = {MIGRATE_TRANSACTION})
              FROM ({every_object}) o,
                   (SELECT xmin FROM pg_proc WHERE oid = {quote_literal(GUARD_SIGNATURE)}::regprocedure) g)
            THEN 'the protection was written again outside migrate, all in one transaction'
                 ' (a restore from a dump?)'
        WHEN ARRAY({policies}) IS DISTINCT FROM array_fill({MIGRATE_TRANSACTION}, ARRAY[4])
            THEN 'the memory table''s policies are not those migrate created'
        WHEN NOT EXISTS (SELECT FROM pg_trigger t
                         WHERE t.tgrelid = {table} AND t.tgname = '{TRIGGER_NAME}'
                           AND t.xmin = {MIGRATE_TRANSACTION} AND t.tgenabled = 'A')
            THEN 'the ownership trigger is missing, not enabled in every replication role,'
                 ' or not the one migrate created'
        WHEN NOT coalesce({expected}, false)
            THEN 'the database is migrated for another version of the patch than this proxy'
        -- Also false when the restricted role was given SUPERUSER or BYPASSRLS.
        WHEN NOT row_security_active(c.oid)
            THEN 'the restricted role is not bound by row-level security'
        -- A function changed: one the restricted role may no longer run first (the login role
        -- runs the guard; a trigger's function needs no EXECUTE to fire).
        ELSE (SELECT format(CASE WHEN revoked
                                 THEN 'EXECUTE on function %s was revoked from the restricted role'
                                 ELSE 'function %s is not the one migrate created' END,
                            f.oid::regprocedure)
              FROM pg_proc f,
                   LATERAL (SELECT f.proname <> ALL (ARRAY['begin_request', 'enforce_ownership'])
                                   AND NOT has_function_privilege(f.oid, 'EXECUTE') AS revoked) r
              WHERE f.oid = ANY ({functions}) AND f.xmin <> {MIGRATE_TRANSACTION}
              ORDER BY revoked DESC, f.proname
              LIMIT 1)
    END
    INTO problem
    FROM pg_class c
    WHERE c.oid = {table};
    IF problem IS NULL THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '%', problem
        USING ERRCODE = '{GUARD_SQLSTATE}',
              HINT = 'Run litellm-memory-patch doctor, then litellm-memory-patch migrate.';
END
"""


def policies() -> tuple[Policy, ...]:
    """The four policies for the restricted role: the team decides first, the role second.

    Every reading of the caller's scope is wrapped in a sub-select, so PostgreSQL evaluates it
    once per statement (an InitPlan), not per row, and the query's own key and team_id
    conditions keep using LiteLLM's indexes."""
    patch = PATCH_SCHEMA
    caller_team = f"(SELECT {CALLER_TEAM})"
    caller_user = f"(SELECT {CALLER_USER})"
    is_admin = f"(SELECT {CALLER_IS_ADMIN})"
    visible = (
        f"(SELECT {CALLER_READS_ALL})"
        f" OR team_id = {caller_team}"
        f" OR (team_id IS NULL AND user_id = {caller_user} AND {caller_team} IS NULL)"
    )
    writable = (
        f"{is_admin}"
        f" OR ((SELECT {CALLER_HAS_ADMIN_ROLE}) AND team_id = {caller_team})"
        f" OR (user_id = {caller_user} AND team_id IS NOT DISTINCT FROM {caller_team})"
        f" OR (user_id IS NULL AND team_id = {caller_team} AND (SELECT {patch}.session_is_team_admin()))"
    )
    # The trigger fills the owner columns first; with a team, only the team's own rows, of the
    # caller's own user unless the owner is a proxy admin.
    insertable = (
        f"{is_admin}"
        f" OR (({caller_team} IS NOT NULL OR {caller_user} IS NOT NULL)"
        f" AND team_id IS NOT DISTINCT FROM {caller_team}"
        f" AND (user_id IS NOT DISTINCT FROM {caller_user} OR (SELECT {CALLER_HAS_ADMIN_ROLE})))"
    )
    return (
        Policy("litellm_memory_select", "SELECT", visible, None),
        Policy("litellm_memory_insert", "INSERT", None, insertable),
        Policy("litellm_memory_update", "UPDATE", writable, writable),
        Policy("litellm_memory_delete", "DELETE", writable, None),
    )


def _names(schema: str) -> dict:
    quoted = quote_ident(schema)
    table = f'{quoted}."{TABLE_NAME}"'
    return {
        "table": table,
        "table_regclass": f"{quote_literal(table)}::regclass",
        "teams": f'{quoted}."LiteLLM_TeamTable"',
        "org_members": f'{quoted}."LiteLLM_OrganizationMembership"',
    }


def create_policy_sql(policy: Policy, table: str) -> str:
    clauses = "".join(
        f"\n    {word} ({expression})"
        for word, expression in (("USING", policy.using), ("WITH CHECK", policy.with_check))
        if expression is not None
    )
    return f"CREATE POLICY {policy.name} ON {table} FOR {policy.command} TO {APP_ROLE}{clauses};"


def _do(body: str) -> str:
    tag = dollar_tag(body)
    return f"DO {tag}{body}{tag};"


def _create_function_sql(function: Function) -> str:
    """The function as defined, owned by the role migrating and executable by exactly the roles
    meant to run it: CREATE OR REPLACE keeps an owner and grants someone changed by hand."""
    volatility = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}[function.volatility]
    definer = " SECURITY DEFINER" if function.security_definer else ""
    tag = dollar_tag(function.body)
    config = "".join(
        f"\n    SET {setting.split('=', 1)[0]} = {setting.split('=', 1)[1]}"
        for setting in function.config
    )
    create = (
        f"CREATE OR REPLACE FUNCTION {function.signature} RETURNS {function.returns}"
        f"\n    LANGUAGE {function.language} {volatility}{definer}{config}"
        f"\n    AS {tag}{function.body}{tag}"
    )
    if MIGRATE_TRANSACTION in function.body:
        # This transaction's id, known only when it runs, goes in where the body stands for it.
        create = _do(
            f"\nBEGIN\n    EXECUTE pg_catalog.replace({quote_literal(create)}, {quote_literal(MIGRATE_TRANSACTION)},"
            f"\n        pg_catalog.quote_literal(pg_catalog.pg_current_xact_id()::pg_catalog.xid::pg_catalog.text)"
            f" OPERATOR(pg_catalog.||) '::pg_catalog.xid');\nEND\n"
        )
    else:
        create += ";"
    statement = f"{create}\nALTER FUNCTION {function.signature} OWNER TO CURRENT_USER;"
    if function.execute_revoked_from_public:
        statement += (
            f"\nREVOKE ALL ON FUNCTION {function.signature} FROM PUBLIC;"
            f"\nGRANT EXECUTE ON FUNCTION {function.signature} TO {APP_ROLE};"
        )
    else:
        statement += f"\nGRANT EXECUTE ON FUNCTION {function.signature} TO PUBLIC;"
    return statement


def _drop_other_overloads(functions: tuple[Function, ...]) -> str:
    # Another function of one of these names makes every call to it ambiguous (an error), or
    # may be picked instead of it.
    names = ", ".join(quote_literal(function.name) for function in functions)
    keep = ", ".join(quote_literal(f"{function.name}({function.arguments})") for function in functions)
    return _do(f"""
DECLARE
    overload regprocedure;
BEGIN
    FOR overload IN
        SELECT f.oid FROM pg_proc f
        WHERE f.pronamespace = {quote_literal(PATCH_SCHEMA)}::regnamespace AND f.proname = ANY (ARRAY[{names}])
          AND f.proname || '(' || pg_get_function_identity_arguments(f.oid) || ')' <> ALL (ARRAY[{keep}])
    LOOP
        EXECUTE format('DROP FUNCTION %s', overload);
    END LOOP;
END
""")


def _drop_what_else_acts_on_writes(names: dict) -> str:
    # Permissive policies add up: one this version does not define may only widen access. A
    # rule, or another trigger firing before a write, may change what a write does after the
    # policies allowed it (the protection's own policies and trigger are created again below).
    table = names["table_regclass"]
    return _do(f"""
DECLARE
    object name;
BEGIN
    FOR object IN SELECT polname FROM pg_policy WHERE polrelid = {table} LOOP
        EXECUTE format('DROP POLICY %I ON %s', object, {table});
    END LOOP;
    FOR object IN SELECT rulename FROM pg_rewrite WHERE ev_class = {table} LOOP
        EXECUTE format('DROP RULE %I ON %s', object, {table});
    END LOOP;
    FOR object IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = {table} AND {OTHER_TRIGGER_FIRES_FIRST} LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', object, {table});
    END LOOP;
END
""")


_REVOKE_MEMBERSHIPS = f"""DO $revoke$
DECLARE
    granted regrole;
BEGIN
    FOR granted IN SELECT roleid::regrole FROM pg_auth_members WHERE member = '{APP_ROLE}'::regrole LOOP
        EXECUTE format('REVOKE %s FROM {APP_ROLE}', granted);
    END LOOP;
END
$revoke$;"""


def upgrade_sql(schema: str, *, revision: str) -> str:
    """(Re)create every object in one go, as ``revision`` defines them; run inside the
    migration's transaction.

    The guard records that transaction's id, and checks at every request that each object is
    still the row that transaction wrote.
    """
    names = _names(schema)
    table = names["table"]
    defined = functions(schema, revision=revision)
    parts = [
        # Exactly these rights, and no role's rights besides its own.
        f"REVOKE ALL ON {table} FROM PUBLIC;",
        f"REVOKE ALL ON {table} FROM {APP_ROLE};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};",
        _REVOKE_MEMBERSHIPS,
        # The functions' owner is the schema's: the role migrating, which created it. A change
        # of owner takes the previous owner's rights along: the role's USAGE is granted again.
        f"ALTER SCHEMA {PATCH_SCHEMA} OWNER TO CURRENT_USER;",
        f"GRANT USAGE ON SCHEMA {quote_ident(schema)}, {PATCH_SCHEMA} TO {APP_ROLE};",
        _drop_other_overloads(defined),
    ]
    parts += [_create_function_sql(function) for function in defined]
    parts.append(_drop_what_else_acts_on_writes(names))
    parts += [f"DROP FUNCTION IF EXISTS {PATCH_SCHEMA}.{name}();" for name in RETIRED_FUNCTIONS]
    parts += [create_policy_sql(policy, table) for policy in policies()]
    parts += [
        f"DROP TRIGGER IF EXISTS {TRIGGER_NAME} ON {table};",
        f"CREATE TRIGGER {TRIGGER_NAME}"
        f"\n    BEFORE INSERT OR UPDATE ON {table}"
        f"\n    FOR EACH ROW EXECUTE FUNCTION {PATCH_SCHEMA}.enforce_ownership();",
        # In every replication role: session_replication_role = replica must not switch it off.
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {TRIGGER_NAME};",
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;",
    ]
    return "\n\n".join(parts) + "\n"
