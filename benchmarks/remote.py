"""The database over TCP: the embedded server on 127.0.0.1, and a relay that adds latency.

Production databases are not on a Unix socket. The benchmark's server is restarted to listen on
127.0.0.1 as well as on its socket (loopback only). Where the kernel offers no ``netem``
queueing discipline to delay loopback packets, :class:`Relay` does it in user space: a separate
process on 127.0.0.1 that forwards each connection to the server and holds every chunk it
forwards, either way, for a fixed delay. Its own cost is measured by a relay with no delay.

Run as a script, this module is the relay: ``remote.py relay TARGET_PORT DELAY_US``.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MAX_CONNECTIONS = 1000  # the relay stops accepting after this many; a run opens a few dozen


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server_on_loopback(folder: Path):
    """The embedded server, listening on its socket and on 127.0.0.1: yields the superuser's
    URLs of both (database ``postgres``) and the server's log file; stopped afterwards."""
    from pgserver._commands import pg_ctl

    from litellm_memory_patch import embedded

    server = embedded.start_server(folder)
    socket_dir = server.get_postmaster_info().socket_dir
    port = _free_port()
    run = dict(pgdata=server.pgdata, user=server.system_user, timeout=60)
    options = f"-h 127.0.0.1 -p {port} -k {socket_dir}"
    pg_ctl(["-w", "-m", "fast", "-o", options, "-l", str(server.log), "restart"], **run)
    try:
        yield (
            f"postgresql://postgres@/postgres?host={socket_dir}&port={port}",
            f"postgresql://postgres@127.0.0.1:{port}/postgres",
            Path(server.log),
        )
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], **run)


class Relay:
    """A relay process to ``target_url``'s port on 127.0.0.1, delaying each way by ``delay_us``."""

    def __init__(self, target_url: str, *, delay_us: int) -> None:
        self._target = target_url
        self._delay_us = delay_us
        self._process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "Relay":
        target_port = self._target.rsplit(":", 1)[1].split("/", 1)[0]
        self._process = subprocess.Popen(
            [sys.executable, __file__, "relay", target_port, str(self._delay_us)],
            stdout=subprocess.PIPE, text=True,
        )
        self.port = int(self._process.stdout.readline())
        return self

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.wait(10)


def _forward(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copy ``source`` to ``target`` until end of stream, each chunk ``delay`` s after it came."""
    held: queue.Queue = queue.Queue()

    def release() -> None:
        while (chunk := held.get())[1]:
            due, data = chunk
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            try:
                target.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    threading.Thread(target=release, daemon=True).start()
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        held.put((time.perf_counter() + delay, data))
        if not data:
            return


def relay(target_port: int, delay_us: int) -> None:
    delay = delay_us / 1e6
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(listener.getsockname()[1], flush=True)
        for _ in range(MAX_CONNECTIONS):
            client, _ = listener.accept()
            server = socket.create_connection(("127.0.0.1", target_port))
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_forward, args=(source, target, delay), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1:2] == ["relay"]:
        relay(int(sys.argv[2]), int(sys.argv[3]))
