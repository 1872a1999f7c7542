"""Row-level security on the memory table: one policy per command for litellm_memory_app.

Revision ID: 0002_row_level_security
Revises: 0001_ownership
Create Date: 2026-11-30

The rules are those of the project's SECURITY.md:

- read: admins and viewers see every row; a team session sees its team's rows only; a personal
  session (no team) sees its own rows that have no team; no settings, no rows;
- create: admins anything; anyone else only a row stamped with its own team and user;
- update and delete: admins anything; anyone else its own rows in its own scope, and pure team
  rows of its team when the database finds it is that team's (or organization's) admin.

Every ``session_*()`` call is wrapped in a sub-select, so PostgreSQL evaluates it once per
statement (an InitPlan) instead of once per row; the query's own ``team_id``/``key`` conditions
keep using LiteLLM's indexes. FORCE makes the table owner subject to the policies too: it has
none, so it sees and writes nothing. Superusers and BYPASSRLS roles skip row-level security
even when forced, which is why each request switches to ``litellm_memory_app`` first.
"""

from alembic import context, op

from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, quote_ident

revision = "0002_row_level_security"
down_revision = "0001_ownership"
branch_labels = None
depends_on = None

def _names() -> dict:
    schema = quote_ident(context.config.attributes["litellm_schema"])
    patch = PATCH_SCHEMA
    caller_team = f"(SELECT {patch}.session_team_id())"
    caller_user = f"(SELECT {patch}.session_user_id())"
    is_admin = f"(SELECT {patch}.session_is_admin())"
    visible = (
        f"(SELECT {patch}.session_reads_all())"
        f" OR team_id = {caller_team}"
        f" OR (team_id IS NULL AND user_id = {caller_user} AND {caller_team} IS NULL)"
    )
    writable = (
        f"{is_admin}"
        f" OR (user_id = {caller_user} AND team_id IS NOT DISTINCT FROM {caller_team})"
        f" OR (user_id IS NULL AND team_id = {caller_team} AND (SELECT {patch}.session_is_team_admin()))"
    )
    insertable = (
        f"{is_admin}"
        f" OR (({caller_team} IS NOT NULL OR {caller_user} IS NOT NULL)"
        f" AND team_id IS NOT DISTINCT FROM {caller_team}"
        f" AND user_id IS NOT DISTINCT FROM {caller_user})"
    )
    return {
        "table": f'{schema}."LiteLLM_MemoryTable"',
        "role": APP_ROLE,
        "visible": visible,
        "writable": writable,
        "insertable": insertable,
    }


UPGRADE = """
DROP POLICY IF EXISTS litellm_memory_select ON {table};
DROP POLICY IF EXISTS litellm_memory_insert ON {table};
DROP POLICY IF EXISTS litellm_memory_update ON {table};
DROP POLICY IF EXISTS litellm_memory_delete ON {table};

CREATE POLICY litellm_memory_select ON {table} FOR SELECT TO {role}
    USING ({visible});
CREATE POLICY litellm_memory_insert ON {table} FOR INSERT TO {role}
    WITH CHECK ({insertable});
CREATE POLICY litellm_memory_update ON {table} FOR UPDATE TO {role}
    USING ({writable})
    WITH CHECK ({writable});
CREATE POLICY litellm_memory_delete ON {table} FOR DELETE TO {role}
    USING ({writable});

ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
"""

DOWNGRADE = """
ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS litellm_memory_select ON {table};
DROP POLICY IF EXISTS litellm_memory_insert ON {table};
DROP POLICY IF EXISTS litellm_memory_update ON {table};
DROP POLICY IF EXISTS litellm_memory_delete ON {table};
"""


def upgrade() -> None:
    op.execute(UPGRADE.format(**_names()))


def downgrade() -> None:
    op.execute(DOWNGRADE.format(**_names()))
