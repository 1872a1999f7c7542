"""deploy/Dockerfile and deploy/docker-compose.yml, checked as far as a machine without Docker can.

Neither file can be built or run here. What is checked: both parse; the Dockerfile uses valid
instructions, starts from LiteLLM's image at a tested version, and copies enough of the checkout
for the package to build; the compose file starts the proxy only after the one-shot migration
succeeded, with the patch's hook set; every command the services run exists and accepts the
flags used; every environment variable they set is one that the package or LiteLLM reads.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from litellm_memory_patch import cli
from litellm_memory_patch.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
IGNORE = DEPLOY / "Dockerfile.dockerignore"
LITELLM_IMAGE = "ghcr.io/berriai/litellm"
HOOK = "litellm_memory_patch:install"
BIN = Path(sys.executable).parent

INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}
# ${NAME:?message} and ${NAME:-default} as compose substitutes them.
COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::[?-][^}]*)?\}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0], text.split(None, 1)[1].strip()) for text in logical]


def versions_with_constraints() -> set[str]:
    files = (ROOT / "constraints").glob("litellm-*.txt")
    return {path.stem.removeprefix("litellm-") for path in files}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def substituted(value: str) -> str:
    return COMPOSE_VARIABLE.sub(lambda match: f"test-{match.group(1).lower()}", value)


def service_commands(service: dict) -> list[list[str]]:
    """The argument lists a service runs: `sh -c` scripts split at &&, or entrypoint + command."""
    entrypoint, command = service.get("entrypoint"), service.get("command")
    if entrypoint == ["sh", "-c"]:
        (script,) = command
        return [shlex.split(part) for part in script.split("&&")]
    # No entrypoint: LiteLLM's image runs `litellm` with the command as its arguments.
    return [[*(entrypoint or ["litellm"]), *command]]


def test_dockerfile_uses_valid_instructions_and_litellm_image_at_a_tested_version():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert set(keywords) <= INSTRUCTIONS, set(keywords) - INSTRUCTIONS
    assert all(keyword.isupper() for keyword in keywords)
    first_build = keywords.index("FROM")
    assert set(keywords[:first_build]) <= {"ARG"}, "only ARG may come before FROM"
    defaults = dict(arg.split("=", 1) for keyword, arg in instructions if keyword == "ARG")
    base = instructions[first_build][1]
    base = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], base)
    image, tag = base.rsplit(":", 1)
    assert image == LITELLM_IMAGE
    version = re.fullmatch(r"v(\d+\.\d+\.\d+)(-stable)?", tag)
    assert version and version.group(1) in versions_with_constraints(), tag


def _copied_sources() -> list[str]:
    sources = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY":
            *paths, _destination = arguments.split()
            sources += paths
    return sources


def test_dockerfile_copies_what_the_package_needs_and_the_ignore_file_lets_it_through(tmp_path):
    sources = _copied_sources()
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    ignore = {line.strip() for line in IGNORE.read_text().splitlines()}
    assert "*" in ignore
    for source in sources:
        assert {f"!{source}", f"!{source}/"} & ignore, f"{IGNORE.name} leaves out {source}"

    # setuptools only warns about a missing `file:` (the long description), so check those here.
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    for value in setup["metadata"].values():
        if value.startswith("file:"):
            for name in value.removeprefix("file:").split(","):
                assert name.strip() in sources, f"setup.cfg reads {name.strip()}, not copied"

    # Build a source distribution from exactly what the image gets: it must carry the code and
    # the migrations.
    context = tmp_path / "context"
    context.mkdir()
    for source in sources:
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / source, target)
    build = f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})"
    subprocess.run(
        [sys.executable, "-c", build],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[-1] for name in archive.getnames()}
    for module in (ROOT / "litellm_memory_patch").glob("*.py"):
        assert f"litellm_memory_patch/{module.name}" in names
    for revision in (ROOT / "migrations" / "versions").glob("0*.py"):
        assert f"migrations/versions/{revision.name}" in names


def test_dockerfile_installs_the_package_and_checks_the_console_script():
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert "pip install" in runs
    assert "litellm-memory-patch --help" in runs


def test_compose_starts_the_proxy_only_after_the_migration_succeeded():
    services = compose()["services"]
    assert {"db", "memory-migrate", "litellm"} <= set(services)
    assert "healthcheck" in services["db"]
    assert services["memory-migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert (
        services["litellm"]["depends_on"]["memory-migrate"]["condition"]
        == "service_completed_successfully"
    )
    migrate = [args[:2] for args in service_commands(services["memory-migrate"])]
    assert migrate[-2:] == [["litellm-memory-patch", "migrate"], ["litellm-memory-patch", "doctor"]]
    assert services["litellm"]["environment"]["LITELLM_WORKER_STARTUP_HOOKS"] == HOOK
    for name in ("memory-migrate", "litellm"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE


def _all_commands() -> list[list[str]]:
    services = compose()["services"]
    return [
        args for name in ("memory-migrate", "litellm") for args in service_commands(services[name])
    ]


def test_compose_package_commands_exist_and_accept_their_flags():
    package_commands = [args for args in _all_commands() if args[0] == "litellm-memory-patch"]
    assert package_commands
    for args in package_commands:
        cli.build_parser().parse_args(args[1:])  # exits (fails the test) on an unknown flag
        result = subprocess.run(
            [str(BIN / args[0]), *args[1:], "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr


def test_compose_litellm_commands_exist_and_accept_their_flags():
    litellm_commands = [args for args in _all_commands() if args[0] == "litellm"]
    assert len(litellm_commands) == 2  # LiteLLM's own schema set-up, and the proxy
    assert (BIN / "litellm").exists()
    # The options of LiteLLM's click command, hidden (deprecated but accepted) ones included.
    list_options = (
        "from litellm.proxy.proxy_cli import run_server;"
        "print(' '.join(o for p in run_server.params for o in p.opts))"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, "-c", list_options], capture_output=True, text=True, timeout=180, env=env
    )
    assert result.returncode == 0, result.stderr
    options = set(result.stdout.split())
    for args in litellm_commands:
        used = {word for word in args if word.startswith("--")}
        assert used <= options, f"{args}: {used - options} not accepted by this LiteLLM"


def _sources(folder: Path) -> str:
    return "".join(path.read_text() for path in folder.glob("*.py"))


def test_compose_sets_only_variables_that_are_read():
    services = compose()["services"]
    package = _sources(ROOT / "litellm_memory_patch")
    litellm = Path(importlib.util.find_spec("litellm").submodule_search_locations[0])
    proxy = _sources(litellm / "proxy")
    for service in ("memory-migrate", "litellm"):
        for name in services[service]["environment"]:
            quoted = f'"{name}"'
            assert quoted in package or quoted in proxy, f"{service}: nothing reads {name}"


def test_compose_database_url_is_one_the_package_can_use(monkeypatch):
    monkeypatch.delenv("LITELLM_MEMORY_DATABASE_URL", raising=False)
    url = substituted(compose()["services"]["litellm"]["environment"]["DATABASE_URL"])
    monkeypatch.setenv("DATABASE_URL", url)
    target = load_settings().database
    assert target.conninfo == url and target.schema == "public"
