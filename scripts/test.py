"""Run the whole test suite once per tested LiteLLM version, doing its own set-up.

    python3 scripts/test.py [pytest arguments]

Each version runs in its own virtual environment, installed from constraints/litellm-X.txt.
``--litellm X`` runs one version only.
"""

import argparse
import sys

from environments import ensure_pgbouncer, python_for, run, tested_versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litellm", action="append", help="a LiteLLM version to test (repeatable)")
    options, pytest_args = parser.parse_known_args()
    versions = options.litellm or tested_versions()
    ensure_pgbouncer()
    results = {}
    for version in versions:
        python = python_for(version)
        print(f"\n=== LiteLLM {version} ===", flush=True)
        results[version] = run(python, "-m", "pytest", *pytest_args)
    print()
    for version, code in results.items():
        print(f"LiteLLM {version}: {'passed' if code == 0 else f'FAILED (pytest exit {code})'}")
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
