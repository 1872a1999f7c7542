"""Restricted role, caller-scope functions and the enforced team_id ownership column.

Revision ID: 0001_ownership
Revises:
Create Date: 2026-11-30

What a DBA reviews here:

- ``litellm_memory_app``: NOLOGIN, NOSUPERUSER, NOBYPASSRLS; it may read and write the memory
  table and nothing else. The login role that runs this migration is made a member so that it
  can switch to it per transaction (``set_config('role', 'litellm_memory_app', true)``).
- ``litellm_memory_patch.session_*()``: the caller's scope, read from transaction-local settings
  ``litellm_memory.team_id``, ``.user_id`` and ``.user_role``. A missing or empty setting reads
  as NULL, which matches no row.
- ``session_is_team_admin()``: team-admin and org-admin status, derived from LiteLLM's own team
  and organization tables. SECURITY DEFINER (the restricted role cannot read those tables) with
  a pinned search_path; it only answers for the session's own team and user.
- ``enforce_ownership``: a trigger that makes ``team_id``/``user_id`` an enforced ownership pair
  for the restricted role: filled from the session when an insert leaves them empty, an insert
  naming another team or user refused, and no change on update unless the session is admin.
  A refused write raises; nothing is silently rewritten.

Nothing here adds a column, index or table to LiteLLM's schema: its Prisma drift repair would
drop them. ``team_id`` has been part of LiteLLM's table since the table's first migration; the
``ADD COLUMN IF NOT EXISTS`` only guards against a hand-made table without it.
"""

from alembic import context, op

from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, dollar_tag, quote_ident, quote_literal

revision = "0001_ownership"
down_revision = None
branch_labels = None
depends_on = None

MISSING_TABLE_HINT = (
    "LiteLLM creates it from version 1.83.14 on: upgrade LiteLLM, start the proxy once "
    "(or apply its migrations), then run litellm-memory-patch migrate again."
)


def _names() -> dict:
    schema = quote_ident(context.config.attributes["litellm_schema"])
    table = f'{schema}."LiteLLM_MemoryTable"'
    return {
        "schema": schema,
        "table": table,
        "table_literal": quote_literal(table),
        # The schema name stands inside quoted bodies below: their tag must not occur in it.
        "tag": dollar_tag(schema),
        "teams": f'{schema}."LiteLLM_TeamTable"',
        "org_members": f'{schema}."LiteLLM_OrganizationMembership"',
        "role": APP_ROLE,
        "patch": PATCH_SCHEMA,
        "hint": MISSING_TABLE_HINT,
    }


UPGRADE = """
DO {tag}
BEGIN
    IF to_regclass({table_literal}) IS NULL THEN
        RAISE EXCEPTION 'the LiteLLM memory table % does not exist', {table_literal}
            USING ERRCODE = 'undefined_table', HINT = '{hint}';
    END IF;
END
{tag};

ALTER TABLE {table} ADD COLUMN IF NOT EXISTS team_id TEXT;

DO {tag}
DECLARE
    unsafe boolean;
BEGIN
    SELECT rolcanlogin OR rolsuper OR rolbypassrls INTO unsafe FROM pg_roles WHERE rolname = '{role}';
    IF NOT FOUND THEN
        CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    ELSIF unsafe THEN
        -- Enforcement rests on this role being subject to row-level security.
        RAISE EXCEPTION 'role {role} exists but can log in, is a superuser or bypasses row-level security'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A superuser must run: ALTER ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS; then migrate again.';
    END IF;
    -- The login role running this migration is the one the proxy uses: let it switch. Only
    -- when it cannot yet: granting needs ADMIN on the role, which a login role that a DBA
    -- already made a member (of a role the DBA created) does not have.
    IF NOT pg_has_role(current_user, '{role}',
                       CASE WHEN current_setting('server_version_num')::int >= 160000
                            THEN 'SET' ELSE 'MEMBER' END) THEN
        EXECUTE 'GRANT {role} TO ' || quote_ident(current_user);
    END IF;
END
{tag};

GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role};
GRANT USAGE ON SCHEMA {patch} TO {role};

CREATE OR REPLACE FUNCTION {patch}.session_team_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('litellm_memory.team_id', true), '') $$;

CREATE OR REPLACE FUNCTION {patch}.session_user_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('litellm_memory.user_id', true), '') $$;

-- proxy_admin: every row, any write.
CREATE OR REPLACE FUNCTION {patch}.session_is_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('litellm_memory.user_role', true) = 'proxy_admin', false) $$;

-- proxy_admin and proxy_admin_viewer read every row; the viewer writes like anyone else.
CREATE OR REPLACE FUNCTION {patch}.session_reads_all() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('litellm_memory.user_role', true)
                          IN ('proxy_admin', 'proxy_admin_viewer'), false) $$;

CREATE OR REPLACE FUNCTION {patch}.session_is_team_admin() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS {tag}
    WITH caller AS (
        SELECT {patch}.session_team_id() AS team_id, {patch}.session_user_id() AS user_id
    )
    SELECT coalesce((
        SELECT EXISTS (
                   SELECT 1 FROM {teams} t
                   WHERE t.team_id = caller.team_id
                     AND jsonb_typeof(t.members_with_roles) = 'array'
                     AND t.members_with_roles @> jsonb_build_array(
                             jsonb_build_object('user_id', caller.user_id, 'role', 'admin')))
            OR EXISTS (
                   SELECT 1 FROM {teams} t
                   JOIN {org_members} m ON m.organization_id = t.organization_id
                   WHERE t.team_id = caller.team_id
                     AND m.user_id = caller.user_id
                     AND m.user_role = 'org_admin')
        FROM caller
        WHERE caller.team_id IS NOT NULL AND caller.user_id IS NOT NULL
    ), false)
    {tag};
REVOKE ALL ON FUNCTION {patch}.session_is_team_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {patch}.session_is_team_admin() TO {role};

CREATE OR REPLACE FUNCTION {patch}.enforce_ownership() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    caller_team text := {patch}.session_team_id();
    caller_user text := {patch}.session_user_id();
BEGIN
    -- Only the restricted role is confined. The table owner is fenced off by forced row-level
    -- security (it has no policy); superusers are trusted by PostgreSQL's design.
    IF current_user <> '{role}' OR {patch}.session_is_admin() THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
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
        IF NEW.user_id IS DISTINCT FROM caller_user THEN
            RAISE EXCEPTION 'litellm_memory: a memory cannot be created for another user'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NEW.team_id IS DISTINCT FROM OLD.team_id OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        RAISE EXCEPTION 'litellm_memory: only a proxy admin can change the team_id or user_id of a memory'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS litellm_memory_enforce_ownership ON {table};
CREATE TRIGGER litellm_memory_enforce_ownership
    BEFORE INSERT OR UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {patch}.enforce_ownership();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS litellm_memory_enforce_ownership ON {table};
DROP FUNCTION IF EXISTS {patch}.enforce_ownership();
DROP FUNCTION IF EXISTS {patch}.session_is_team_admin();
DROP FUNCTION IF EXISTS {patch}.session_reads_all();
DROP FUNCTION IF EXISTS {patch}.session_is_admin();
DROP FUNCTION IF EXISTS {patch}.session_user_id();
DROP FUNCTION IF EXISTS {patch}.session_team_id();

DO {tag}
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        REVOKE ALL ON {table} FROM {role};
        REVOKE USAGE ON SCHEMA {schema} FROM {role};
        REVOKE USAGE ON SCHEMA {patch} FROM {role};
        -- Roles belong to the whole cluster: another database may still use this one, and a
        -- role a DBA created may only be dropped by a role with ADMIN on it. Either way the
        -- role keeps no right on this table.
        BEGIN
            DROP ROLE {role};
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role {role} is kept: objects in another database still depend on it';
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'role {role} is kept: only its creator or a superuser may drop it';
        END;
    END IF;
END
{tag};
"""


def upgrade() -> None:
    op.execute(UPGRADE.format(**_names()))


def downgrade() -> None:
    op.execute(DOWNGRADE.format(**_names()))
