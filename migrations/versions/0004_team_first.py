"""The team decides first: a key bound to a team reaches that team only, whoever owns it.

Revision ID: 0004_team_first
Revises: 0003_request_guard
Create Date: 2026-12-02

Writes every enforcement object again as ``migrations/enforcement.py`` now defines them:

- a session with a team is confined to that team whatever its role: a proxy admin's or viewer's
  team key sees its team's rows only; a proxy admin's team key may change any row of its team
  and create rows in it only. Reading and writing every row is for admin and viewer sessions
  with no team;
- LiteLLM's admin-UI session team (``litellm-dashboard``) counts as no team, and no row is
  stamped with it.

The per-request guard serves proxies that expect this revision or the previous one
(``serves_proxies_from``), so replicas can be upgraded one by one after ``migrate``; a proxy of
this release answers 503 against a database still at the previous revision.
"""

from alembic import context, op

from litellm_memory_patch.migrations import enforcement

revision = "0004_team_first"
down_revision = "0003_request_guard"
# Proxies of the previous release keep serving through a rolling upgrade: the database confines
# them to the team-first rule too (its one visible difference there: an entry an admin's UI
# session creates through such a proxy is refused with 403, as the old handler stamps it with
# the UI session team).
serves_proxies_from = "0003_request_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(enforcement.upgrade_sql(context.config.attributes["litellm_schema"], revision=revision))


def downgrade() -> None:
    # The objects stay as this revision defines them (the stricter rule), written again with the
    # previous revision's name so that the previous release's proxies serve.
    op.execute(
        enforcement.upgrade_sql(context.config.attributes["litellm_schema"], revision=down_revision)
    )
