"""LiteLLM's Prisma drift repair must find nothing to undo after the migration.

LiteLLM compares its live database with its ``schema.prisma`` and applies the difference, dropping
whatever its schema does not name. The diff is computed here the same way, with Prisma's
WebAssembly schema engine (``tests/prisma_drift``), whose npm packages are installed once into a
cache folder outside the repository. A negative control shows the check can fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from litellm_memory_patch import migrator

TOOL = Path(__file__).parent / "prisma_drift"
TOOL_FILES = ("package.json", "drift.mjs")
EMPTY_DIFF = "-- This is an empty migration."


def _cache_dir() -> Path:
    explicit = os.environ.get("LITELLM_MEMORY_PRISMA_DRIFT_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "litellm-memory-patch" / "prisma-drift"


def _litellm_schema() -> Path:
    # Located without importing litellm, which takes seconds.
    package = Path(importlib.util.find_spec("litellm").submodule_search_locations[0])
    return package / "proxy" / "schema.prisma"


@pytest.fixture(scope="session")
def drift_tool() -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run Prisma's schema engine")
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    pinned = (TOOL / "package.json").read_text()
    stale = not (cache / "node_modules" / "@prisma" / "schema-engine-wasm").is_dir() or (
        not (cache / "package.json").exists() or (cache / "package.json").read_text() != pinned
    )
    for name in TOOL_FILES:
        shutil.copyfile(TOOL / name, cache / name)
    if stale:
        install = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert install.returncode == 0, f"npm install failed in {cache}:\n{install.stderr}"
    return cache


def prisma_diff(tool: Path, url: str) -> str:
    result = subprocess.run(
        ["node", "drift.mjs", str(_litellm_schema())],
        cwd=tool,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_migrate_adds_no_drift(drift_tool, litellm_db):
    # LiteLLM's own SQL migrations can lag its schema.prisma (1.108.7 leaves two SpendLogs
    # indexes to its start-up repair): whatever drift LiteLLM has, migrate must add none.
    before = prisma_diff(drift_tool, litellm_db.conninfo)
    migrator.upgrade(litellm_db)
    after = prisma_diff(drift_tool, litellm_db.conninfo)
    assert after == before
    assert "LiteLLM_MemoryTable" not in after and "alembic_version" not in after


def test_litellm_183_schema_has_no_drift_at_all(drift_tool, migrated_db):
    from importlib.metadata import version

    if version("litellm") != "1.83.14":
        pytest.skip("only LiteLLM 1.83.14's migrations are known to match its schema.prisma exactly")
    assert prisma_diff(drift_tool, migrated_db.conninfo) == EMPTY_DIFF


def test_an_extra_column_shows_as_drift(drift_tool, migrated_db):
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute('ALTER TABLE "LiteLLM_MemoryTable" ADD COLUMN owner_team TEXT')
    diff = prisma_diff(drift_tool, migrated_db.conninfo)
    assert 'ALTER TABLE "LiteLLM_MemoryTable" DROP COLUMN "owner_team"' in diff
