"""Benchmark: ``litellm-memory-patch exposure`` on 1,000,000 memory rows and 100,000 keys.

Run from the project's virtualenv: ``python benchmarks/exposure.py [--write]``. It starts a
private PostgreSQL in a temporary folder, applies LiteLLM's schema, seeds it (SQL only), and
times the report twice: before the migration as the superuser, and after it as a login role
that only reads LiteLLM's tables and is a member of litellm_memory_app (so the memory statement
runs under row-level security). It prints the figures and the plan of every statement the
report runs; ``--write`` also puts them in docs/BENCHMARKS.md between the exposure markers.

The data: 20,000 users with 50 memory rows each, 1,000 teams; every user's rows and keys are in
their home team, except that one user in ten also holds keys in a second team and one row in
twenty has no team. 100,000 keys: 5 per user, one in ten of them deleted, every key of one
user in seven limited to ``llm_api_routes`` and every other one naming the memory routes, plus
5,000 service keys without a user. The users are internal users; ten proxy admins hold a key of
one team each, which reaches every row outside that team. Nothing here is a test: the 10 s
target is printed as PASS/MISS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from litellm_memory_patch import embedded, exposure, migrator
from litellm_memory_patch.config import APP_ROLE, parse_database_url

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- exposure:begin -->", "<!-- exposure:end -->"
TARGET_SECONDS = 10.0
RUNS = 3
AUDITOR = "exposure_auditor"
# The report's statements in the order it runs them.
STATEMENTS = (
    "the catalog (which tables and columns exist)",
    "the distinct owner roles and allowed_routes values (as the login role)",
    "keys grouped by user, team and admin team key or not (as the login role)",
    "the rows each group reaches (as litellm_memory_app)",
    "the totals (as litellm_memory_app)",
    "the keys behind each pair (as the login role)",
)

SEED = """
INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, members_with_roles, created_at, updated_at)
SELECT 'team-' || t, 'Team ' || t, '[]'::jsonb, now(), now() FROM generate_series(0, 999) t;

-- 5 keys per user: in the home team, the fifth in a second team for one user in ten.
INSERT INTO "LiteLLM_VerificationToken"
    (token, key_alias, user_id, team_id, allowed_routes, created_at, last_active)
SELECT md5('key-' || u || '-' || k), 'key-' || u || '-' || k, 'user-' || u,
       'team-' || CASE WHEN u % 10 = 0 AND k = 4 THEN (u * 7 + 1) % 1000 ELSE u % 1000 END,
       CASE WHEN u % 7 = 0 THEN ARRAY['llm_api_routes']
            ELSE ARRAY['/v1/memory', '/v1/memory/*'] END,
       now() - interval '400 days' + (k || ' days')::interval, now() - (u % 30 || ' days')::interval
FROM generate_series(0, 19999) u, generate_series(0, 4) k;

-- The owners' roles; ten proxy admins, each with a key of one team.
INSERT INTO "LiteLLM_UserTable" (user_id, user_role)
SELECT 'user-' || u, 'internal_user' FROM generate_series(0, 19999) u;
INSERT INTO "LiteLLM_UserTable" (user_id, user_role)
SELECT 'admin-' || a, 'proxy_admin' FROM generate_series(0, 9) a;
INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, user_id, team_id, created_at)
SELECT md5('admin-key-' || a), 'admin-key-' || a, 'admin-' || a, 'team-' || a * 100,
       now() - interval '300 days'
FROM generate_series(0, 9) a;

-- 5,000 service keys: a team, no user.
INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, user_id, team_id, created_at)
SELECT md5('service-' || s), 'service-' || s, NULL, 'team-' || s % 1000, now() - interval '300 days'
FROM generate_series(0, 4999) s;

-- One key in ten is deleted, copied as LiteLLM copies it.
WITH gone AS (
    DELETE FROM "LiteLLM_VerificationToken"
    WHERE user_id IS NOT NULL AND ('x' || substr(token, 1, 8))::bit(32)::int % 10 = 0
    RETURNING *
)
INSERT INTO "LiteLLM_DeletedVerificationToken"
    (id, token, key_alias, user_id, team_id, allowed_routes, created_at, last_active, deleted_at)
SELECT md5('deleted-' || token), token, key_alias, user_id, team_id, allowed_routes, created_at,
       last_active, now() - interval '100 days'
FROM gone;

INSERT INTO "LiteLLM_MemoryTable" (memory_id, key, value, user_id, team_id, created_at, updated_at)
SELECT md5('row-' || n), 'entry-' || n, 'value ' || n, 'user-' || n / 50,
       CASE WHEN n % 20 = 0 THEN NULL ELSE 'team-' || (n / 50) % 1000 END,
       now() - ((n % 500) || ' days')::interval, now()
FROM generate_series(0, 999999) n;

ANALYZE;
"""


class ExplainingCursor(psycopg.Cursor):
    """Runs each report statement under EXPLAIN ANALYZE first and keeps the plans."""

    plans: list[str] = []

    def execute(self, query, params=None, **kwargs):
        text = query.as_string(self.connection) if isinstance(query, sql.Composable) else query
        if text.lstrip().upper().startswith(("WITH", "SELECT C.RELNAME")):
            super().execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) ") + sql.SQL(text), params)
            plan = "\n".join(row[0] for row in super().fetchall())
            ExplainingCursor.plans.append(plan)
        return super().execute(query, params, **kwargs)


def url_as(url: str, *, database: str | None = None, user: str | None = None) -> str:
    parts = urlsplit(url)
    if user is not None:
        parts = parts._replace(netloc=f"{user}@{parts.hostname or ''}")
    if database is not None:
        parts = parts._replace(path=f"/{database}")
    return urlunsplit(parts)


def time_report(url: str) -> tuple[list[float], exposure.Report]:
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        report = exposure.build_report(parse_database_url(url))
        seconds.append(time.perf_counter() - started)
    return seconds, report


def plans_of(url: str) -> list[str]:
    ExplainingCursor.plans = []
    with psycopg.connect(url, autocommit=True, cursor_factory=ExplainingCursor) as conn:
        exposure.read_report(conn, schema="public")
    return ExplainingCursor.plans


def markdown(
    figures: list[tuple[str, list[float]]], report: exposure.Report, plans, machine: str
) -> str:
    lines = [
        BEGIN,
        "## exposure at 1,000,000 memory rows and 100,000 keys",
        "",
        "`python benchmarks/exposure.py`: 20,000 users, 1,000 teams, 50 rows per user, one user",
        "in ten with keys in two teams, one row in twenty without a team, one key in ten deleted,",
        "the keys of one user in seven limited to `llm_api_routes`,",
        f"plus 5,000 service keys. Whole command (connect, catalog, every statement), {RUNS} runs,",
        f"{machine}:",
        "",
        "| case | runs (s) | median (s) | target ≤ 10 s |",
        "| --- | --- | ---: | --- |",
    ]
    for name, seconds in figures:
        median = statistics.median(seconds)
        runs = ", ".join(f"{value:.2f}" for value in seconds)
        verdict = "PASS" if median <= TARGET_SECONDS else "MISS"
        lines.append(f"| {name} | {runs} | {median:.2f} | {verdict} |")
    lines += [
        "",
        f"The report found {report.memory_rows:,} rows, {report.rows_reached:,} of them"
        f" reached by a key of another team, {report.rows_exposed:,} while such a key existed"
        f" ({report.rows_exposed_not_barred:,} by a key LiteLLM's route check let reach"
        f" /v1/memory), in {len(report.pairs):,} (kind, row team, key team) pairs.",
        "",
        "Plans of the report's statements (after the migration, read through row-level security):",
        "",
    ]
    for title, plan in zip(STATEMENTS, plans, strict=True):
        lines += [f"{title}:", "", "```text", plan, "```", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_block(block: str) -> None:
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    BENCHMARKS_MD.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    with tempfile.TemporaryDirectory(prefix="exposure-bench-") as folder:
        server = embedded.start_server(Path(folder) / "pgdata")
        try:
            base = server.get_uri()
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute("CREATE DATABASE exposure_bench")
            url = url_as(base, database="exposure_bench")
            embedded.apply_litellm_schema(url)
            started = time.perf_counter()
            with psycopg.connect(url) as conn:
                conn.execute(SEED)
            print(f"seeded in {time.perf_counter() - started:.1f} s")

            with psycopg.connect(url) as conn:
                server_version = conn.execute("SHOW server_version").fetchone()[0]
            load = os.getloadavg()[0]
            before, report = time_report(url)
            print(f"before the migration, as the superuser: {before}")
            migrator.upgrade(parse_database_url(url))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(AUDITOR)))
                conn.execute(
                    sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                        sql.Identifier(AUDITOR)
                    )
                )
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(APP_ROLE), sql.Identifier(AUDITOR)
                    )
                )
            auditor = url_as(url, user=AUDITOR)
            after, migrated = time_report(auditor)
            print(f"after the migration, as a reading member of {APP_ROLE}: {after}")
            assert migrated.rows_exposed == report.rows_exposed, "the two runs disagree"
            plans = plans_of(auditor)
        finally:
            server.cleanup()
    block = markdown(
        [
            ("before the migration, superuser login", before),
            (f"after the migration, SELECT-only login, member of {APP_ROLE}", after),
        ],
        migrated,
        plans,
        f"PostgreSQL {server_version}, {os.cpu_count()} cores,"
        f" load average {load:.1f} at the start",
    )
    print(block)
    if args.write:
        write_block(block)


if __name__ == "__main__":
    main()
