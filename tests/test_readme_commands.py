"""The README's install section, run as written, so the README and the package cannot drift apart.

Every ``sh`` code block of the section "Installing into an existing deployment" is read line by
line. Lines of the console script run in a shell, in README order, against a fresh database with
LiteLLM's schema (``DATABASE_URL`` points there, as it would on the proxy's host). The only lines
not run are those that need something outside this machine (see ``NOT_RUN``). The README must
also name every subcommand, flag and environment variable the package has.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from litellm_memory_patch import cli, migrator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
INSTALL_SECTION = "## Installing into an existing deployment"
PROG = "litellm-memory-patch"
# Installing from the package index, and asking a running proxy: not possible in a test.
NOT_RUN = ("pip ", "curl ")
HOOK_LINE = re.compile(r"^LITELLM_WORKER_STARTUP_HOOKS=(\S+)$", re.MULTILINE)
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENV_NAME = re.compile(r"\bLITELLM_MEMORY_[A-Z_]+\b")


def install_section() -> str:
    text = README.read_text()
    start = text.index(INSTALL_SECTION)
    end = text.find("\n## ", start + len(INSTALL_SECTION))
    return text[start : end if end != -1 else None]


def shell_lines() -> list[str]:
    lines = []
    for language, body in CODE_BLOCK.findall(install_section()):
        if language == "sh":
            lines += [line.strip() for line in body.splitlines() if line.strip()]
    return lines


def readme_commands() -> list[str]:
    commands = [line for line in shell_lines() if not line.startswith(NOT_RUN)]
    strays = [line for line in commands if not line.startswith(PROG + " ")]
    assert not strays, f"README lines this test does not know how to run: {strays}"
    return commands


def subcommand(line: str) -> str:
    return shlex.split(line, comments=True)[1]


def flags(line: str) -> list[str]:
    return [word for word in shlex.split(line, comments=True) if word.startswith("--")]


def console_script() -> str:
    return str(Path(sys.executable).parent / PROG)


def test_install_section_shows_every_database_command():
    shown = {subcommand(line) for line in readme_commands()}
    assert shown >= {"migrate", "doctor", "sql", "downgrade"}


def test_install_section_commands_run_as_written(litellm_db, tmp_path):
    # The shell finds this environment's console script, and the URL the proxy would have.
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": litellm_db.conninfo,
    }
    env.pop("LITELLM_MEMORY_DATABASE_URL", None)
    for line in readme_commands():
        result = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        state = _revision(litellm_db.conninfo)
        if subcommand(line) == "migrate":
            assert state == migrator.head_revision(), line
        if subcommand(line) == "doctor":
            assert "overall" in result.stdout and "FAIL" not in result.stdout, result.stdout
        if subcommand(line) == "downgrade":
            assert state is None, line
    # The README ends on the rollback: the database is back to LiteLLM's stock table.
    assert _revision(litellm_db.conninfo) is None


def _revision(conninfo: str) -> str | None:
    with psycopg.connect(conninfo) as conn:
        return migrator.current_revision(conn)


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_has_help_naming_the_flags_the_readme_uses(name):
    result = subprocess.run(
        [console_script(), name, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for line in readme_commands():
        if subcommand(line) == name:
            for flag in flags(line):
                assert flag in result.stdout, f"{line}: {flag} is not an option of {name}"


def test_the_activation_line_names_the_package_hook():
    (value,) = HOOK_LINE.findall(install_section())
    module, function = value.split(":")
    hook = getattr(importlib.import_module(module), function)
    # LiteLLM calls each hook with no arguments, and awaits it when it is a coroutine function.
    assert inspect.iscoroutinefunction(hook)
    assert all(p.default is not p.empty for p in inspect.signature(hook).parameters.values())


def test_readme_names_every_subcommand_and_flag():
    readme = README.read_text()
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    for name, sub in commands.choices.items():
        assert f"`{name}" in readme, f"subcommand {name} is not in the README"
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in readme, f"{name} {option} is not in the README"


def test_readme_names_every_environment_variable():
    sources = [*(ROOT / "litellm_memory_patch").glob("*.py"), ROOT / "tests" / "conftest.py"]
    names = {name for path in sources for name in ENV_NAME.findall(path.read_text())}
    assert "LITELLM_MEMORY_DATABASE_URL" in names
    readme = README.read_text()
    missing = sorted(name for name in names | {"DATABASE_URL"} if f"`{name}`" not in readme)
    assert not missing, f"environment variables the README does not name: {missing}"
