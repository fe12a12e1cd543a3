"""Child processes for the bench: start, wait until listening, and always clean up.

Children run in their own session, so a Ctrl-C in the terminal reaches only the runner, which
then stops them in order (terminate, wait, kill) from a ``finally``; nothing is left behind.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Procs:
    """Owns every child process; ``with Procs(logdir) as procs:`` guarantees cleanup."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def __enter__(self) -> Procs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for child in reversed(self.children):
            self.stop(child)

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        log = self.logdir / f"{name}.log"
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        with log.open("ab") as stderr:
            child = subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else stderr,
                stderr=stderr,
                start_new_session=True,
            )
        self.children.append(child)
        self.logs[child.pid] = log
        return child

    def stop(self, child: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(grace)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        if child in self.children:
            self.children.remove(child)

    def log_tail(self, child: subprocess.Popen[bytes], lines: int = 3) -> str:
        text = self.logs[child.pid].read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def wait_listening(
        self, child: subprocess.Popen[bytes], port: int, timeout: float = 20.0
    ) -> str | None:
        """None once ``port`` accepts connections; else why not (the child's last log lines)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                return f"exited with {child.returncode}: {self.log_tail(child)}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return None
            except OSError:
                time.sleep(0.05)
        return f"not listening after {timeout:.0f} s: {self.log_tail(child)}"


class LoadGen:
    """The load generator child, driven over JSON lines (see ``bench.loadgen``)."""

    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.child = procs.start("loadgen", ["-m", "bench.loadgen"], pipes=True)
        self._buf = b""

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write((json.dumps(cmd) + "\n").encode())
        self.child.stdin.flush()

    def read(self, timeout: float) -> dict[str, Any]:
        # Our own line buffer over os.read: select() on a buffered file object misses a second
        # line that readline() already pulled into Python's buffer (e.g. "ready" + the summary).
        assert self.child.stdout is not None
        fd = self.child.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                raise RuntimeError(f"load generator gave no answer within {timeout:.0f} s")
            data = os.read(fd, 1 << 16)
            if not data:
                code = self.child.wait()
                raise RuntimeError(
                    f"load generator exited ({code}): {self.procs.log_tail(self.child)}"
                )
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(cmd)
        return self.read(timeout)
