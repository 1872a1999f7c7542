"""``litellm-memory-patch demo``, run as a user would: a subprocess on a free port.

The demo starts its own PostgreSQL and the real LiteLLM proxy (importing LiteLLM takes ~15 s), so
each run here takes half a minute; every wait is bounded. Checked: the replay passes step by step,
by both roads of the issue, through LiteLLM's own authentication; the server answers the demo keys
while it serves; and whatever the way it ends (``--once``, Ctrl-C while serving, SIGTERM during
start-up) its PostgreSQL is stopped and its files removed.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from litellm_memory_patch import demo
from litellm_memory_patch.routes import PATCH_HEADER

TIMEOUT = 240
STEP_ROW = re.compile(r"^\s+(\d+)\. .*\s(PASS|FAIL)$", re.MULTILINE)
SQL_ROW = re.compile(
    r"^\s+(as [^:]+): (SELECT|UPDATE|DELETE|INSERT) .*\s(PASS|FAIL)$", re.MULTILINE
)
FOLDER = re.compile(r"Starting PostgreSQL in (\S+) \.\.\.")
# The exposure report's rows: row team, key team, kind, rows (taken before the migration).
EXPOSURE_ROW = re.compile(
    r"^\s+(\S+)\s+(\S+)\s+(cross-team|personal row|admin team key)\s+(\d+)\s+\d+\s+(\d+)\s",
    re.MULTILINE,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((demo.HOST, 0))
        return sock.getsockname()[1]


class Demo:
    """The demo in a subprocess, its output read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        script = Path(sys.executable).parent / "litellm-memory-patch"
        self.process = subprocess.Popen(
            [str(script), "demo", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.output:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, f"the demo ended before printing {text!r}:\n{self.output}"
            self.lines.append(line)

    def finish(self) -> int:
        code = self.process.wait(timeout=TIMEOUT)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    def folder(self) -> Path:
        return Path(FOLDER.search(self.output).group(1))

    def postgres_pid(self) -> int:
        return int((self.folder() / "pgdata" / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def run_demo():
    started = []

    def start(*args: str) -> Demo:
        started.append(Demo(*args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def _running(pid: int) -> bool:
    # An exited process whose parent has not reaped it yet (a zombie) has stopped too.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def assert_gone(pid: int, folder: Path) -> None:
    assert not folder.exists(), f"{folder} was left behind"
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid), f"PostgreSQL (pid {pid}) is still running"


def test_once_replays_every_step_passing_and_cleans_up(run_demo):
    process = run_demo("--once")
    process.wait_for("Replaying LiteLLM issue #27722")
    pid = process.postgres_pid()
    code = process.finish()
    assert code == 0, process.output
    steps = STEP_ROW.findall(process.output)
    assert [int(number) for number, _ in steps] == list(range(1, 14)), process.output
    assert {verdict for _, verdict in steps} == {"PASS"}, process.output
    sql = SQL_ROW.findall(process.output)
    assert {who for who, _, _ in sql} == {
        "as team 2", "as team 1", "as admin's team 2", "as admin's team 1"
    }, process.output
    assert {kind for _, kind, _ in sql} == {"SELECT", "UPDATE", "DELETE", "INSERT"}
    assert {verdict for _, _, verdict in sql} == {"PASS"}
    assert "Replay passed" in process.output and "FAIL" not in process.output
    # It ends with the blast radius of the issue in its own database, before the migration:
    # (row team, key team, kind, rows, of those not barred).
    report = process.output.split("Replay passed", 1)[1]
    assert EXPOSURE_ROW.findall(report) == [
        ("team-1", "team-2", "admin team key", "2", "2"),
        ("team-1", "team-2", "cross-team", "2", "2"),
        # The team-3 key names no memory route: LiteLLM refuses it (step 13).
        ("team-1", "team-3", "cross-team", "2", "0"),
        ("(none)", "team-1", "admin team key", "1", "1"),
        ("(none)", "team-1", "personal row", "1", "1"),
        ("(none)", "team-2", "admin team key", "1", "1"),
        ("(none)", "team-2", "personal row", "1", "1"),
        ("(none)", "team-3", "personal row", "1", "0"),
    ]
    assert "team-1 <- team-2: users demo-user; keys demo-team-2 (live, open)" in report
    admin = "team-1 <- team-2 (admin team key): users demo-admin; keys demo-admin-team-2"
    assert admin + " (live, proxy_admin, open)" in report
    assert_gone(pid, process.folder())


def test_serves_the_demo_keys_until_ctrl_c_then_cleans_up(run_demo):
    process = run_demo()
    process.wait_for("Press Ctrl-C")
    pid = process.postgres_pid()
    base = f"http://{demo.HOST}:{process.port}"
    assert f"curl -s -i {base}/v1/memory/{demo.ENTRY}" in process.output

    def get(key: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.get(f"{base}/v1/memory/{demo.ENTRY}", headers=headers)

    own = get(demo.TEAM_1_KEY)
    assert own.status_code == 200 and own.json()["value"] == demo.SECRET
    for other in (demo.TEAM_2_KEY, demo.ADMIN_TEAM_2_KEY):
        answer = get(other)
        assert answer.status_code == 404 and PATCH_HEADER in answer.headers
    assert get(demo.ADMIN_KEY).json()["value"] == demo.SECRET
    # LiteLLM's own auth refuses a key it does not know, and the team-3 key (no memory routes).
    assert get("sk-not-a-demo-key").status_code == 401
    assert get(demo.TEAM_3_KEY).status_code == 401

    process.process.send_signal(signal.SIGINT)
    assert process.finish() == 0, process.output
    assert_gone(pid, process.folder())


def test_sigterm_during_start_up_cleans_up(run_demo):
    process = run_demo("--once")
    process.wait_for("Importing LiteLLM")
    pid = process.postgres_pid()
    process.process.send_signal(signal.SIGTERM)
    assert process.finish() != 0
    assert_gone(pid, process.folder())
