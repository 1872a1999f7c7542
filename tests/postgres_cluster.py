"""A throw-away PostgreSQL cluster from a folder of server binaries, on a Unix socket.

The suite's database-level tests run on every tested PostgreSQL version this way
(``LITELLM_MEMORY_TEST_POSTGRES`` names the ``bin`` folder; scripts/test.py sets it). Run as
root, the cluster belongs to ``nobody``: initdb refuses root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

# A test server: its data may be lost in a crash.
FAST_UNSAFE = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
# A run writes a few GB of short-lived database copies, and a disk shared with other work makes
# writing and removing them the slowest part of it: they go to memory when it has the room.
SHARED_MEMORY = Path("/dev/shm")
ROOM_IN_MEMORY = 6 * 2**30


def _parent_folder() -> Path | None:
    if SHARED_MEMORY.is_dir() and shutil.disk_usage(SHARED_MEMORY).free > ROOM_IN_MEMORY:
        return SHARED_MEMORY
    return None  # the system's temporary folder


class Cluster:
    """``initdb`` and ``pg_ctl start`` in a new temporary folder; ``url`` logs in as ``postgres``."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="litellm-memory-pg-", dir=_parent_folder()))
        self._as_owner = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("nobody")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups"]
        self.data = self.folder / "data"
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
        self._run(
            "pg_ctl", "-D", self.data, "-w", "-l", self.folder / "log",
            "-o", f"-c listen_addresses='' -k {self.folder} {FAST_UNSAFE}", "start",
        )
        # The same form as pgserver's URLs: tests derive other roles' URLs from it.
        self.url = f"postgresql://postgres:@/postgres?host={quote(str(self.folder), safe='')}"

    def _run(self, program: str, *args) -> None:
        command = [*self._as_owner, str(self.binaries / program), *map(str, args)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
