"""Run the whole test suite once per tested LiteLLM version, doing its own set-up.

    python3 scripts/test.py [pytest arguments]

Each version runs in its own virtual environment, installed from constraints/litellm-X.txt.
``--litellm X`` runs one version only. The summary gives the time of each part.
"""

import argparse
import sys
import time

from environments import ensure_system_packages, python_for, run, tested_versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litellm", action="append", help="a LiteLLM version to test (repeatable)")
    options, pytest_args = parser.parse_known_args()
    versions = options.litellm or tested_versions()
    ensure_system_packages()
    results = {}
    for version in versions:
        started = time.monotonic()
        python = python_for(version)
        built = time.monotonic()
        print(f"\n=== LiteLLM {version} ===", flush=True)
        code = run(python, "-m", "pytest", *pytest_args)
        results[version] = (code, built - started, time.monotonic() - built)
    print()
    for version, (code, setup, tests) in results.items():
        outcome = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"LiteLLM {version}: {outcome}; environment {setup:.0f} s, tests {tests:.0f} s")
    return 0 if all(code == 0 for code, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
