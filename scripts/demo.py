"""Run the demo, doing its own set-up: LiteLLM issue #27722 replayed against the patched proxy.

    python3 scripts/demo.py [--once] [--port N]

Installs the pinned environment for the default LiteLLM version on first use, then runs
``litellm-memory-patch demo`` with the given arguments.
"""

import sys

from environments import DEFAULT_LITELLM, python_for, run


def main() -> int:
    python = python_for(DEFAULT_LITELLM)
    return run(python, "-m", "litellm_memory_patch.cli", "demo", *sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
