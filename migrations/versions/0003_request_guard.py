"""The per-request guard, and every enforcement object written again with it.

Revision ID: 0003_request_guard
Revises: 0002_row_level_security
Create Date: 2026-11-30

Creates ``litellm_memory_patch.begin_request()``, which every request calls first: it checks
that the protection is in place, then switches to ``litellm_memory_app`` and sets the caller's
scope, transaction-local. It also writes the session functions again with every name
qualified (``pg_catalog.``), so that nothing they run depends on the caller's search_path, and
the policies with the caller's scope read directly, not through SQL functions the planner would
parse again for every statement (``session_reads_all()`` is retired).

The definitions are in ``migrations/enforcement.py``, which ``doctor`` compares the database
with; every ``migrate`` at head applies them again, which is how hand-edited objects are
repaired.
"""

from alembic import context, op

from litellm_memory_patch.config import PATCH_SCHEMA
from litellm_memory_patch.migrations import enforcement

revision = "0003_request_guard"
down_revision = "0002_row_level_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(enforcement.upgrade_sql(context.config.attributes["litellm_schema"], revision=revision))


def downgrade() -> None:
    # The session functions and policies stay as this revision wrote them: they mean what
    # 0001's and 0002's did. Only the function this revision retired comes back, for 0002.
    op.execute(
        f"DROP FUNCTION IF EXISTS {PATCH_SCHEMA}.begin_request(text, text, text, text, text);\n"
        f"CREATE FUNCTION {PATCH_SCHEMA}.session_reads_all() RETURNS boolean\n"
        f"    LANGUAGE sql STABLE PARALLEL SAFE\n"
        f"    AS $$ SELECT {enforcement.CALLER_READS_ALL} $$;\n"
    )
