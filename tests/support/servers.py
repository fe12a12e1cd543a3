"""Run an ASGI app on a real socket, in a thread or in a child process.

In a thread (fast; the app shares the test's process)::

    with serve(app, timeout_graceful_shutdown=1) as server:   # extra kwargs go to uvicorn.Config
        httpx.get(server.url + "/llm/health")
        took = server.stop(timeout=3.0)                       # optional: assert shutdown time

In a child process (real signals, several workers)::

    with serve_subprocess("tests.apps:make_app", env={"X": "1"}, factory=True, workers=2) as proc:
        httpx.get(proc.url + "/health")
        took = proc.terminate(timeout=5.0)                    # SIGTERM; seconds until exit

``serve_subprocess`` picks a free port by binding port 0, closing that socket and handing the
number to uvicorn. uvicorn cannot report the real port of ``--port 0`` to us, and ``--fd``
assumes a Unix socket. Another process could take the port in between; if uvicorn then exits
during startup, it is retried on a new port (3 attempts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

__all__ = ["ServerProcess", "ServerThread", "free_port", "serve", "serve_subprocess"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ServerThread:
    """``uvicorn.Server`` on 127.0.0.1, port 0, in a daemon thread.

    ``uvicorn.Config`` gets ``host="127.0.0.1"``, ``port=0``, ``log_level="warning"`` and
    ``log_config=None`` (uvicorn's logs propagate to pytest's capture instead of uvicorn
    reconfiguring logging in the test process) unless overridden by ``config``. uvicorn
    installs no signal handlers outside the main thread, so this does not steal Ctrl-C.
    Streams still open at ``stop()`` keep uvicorn waiting unless ``timeout_graceful_shutdown``
    is set: that wait is what shutdown tests measure.
    """

    def __init__(self, app: Any, **config: Any) -> None:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "log_level": "warning",
            "log_config": None,
        }
        settings.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **settings))
        self.host: str = settings["host"]
        self.port = 0
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self, timeout: float = 5.0) -> None:
        """Start serving; return once the socket listens. Raises if startup failed."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited during startup (see the captured log)")
            if time.monotonic() > deadline:
                self.server.should_exit = True
                raise RuntimeError(f"uvicorn did not start within {timeout} s")
            time.sleep(0.005)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self, timeout: float = 5.0) -> float:
        """Ask uvicorn to exit and join; return the seconds it took.

        Raises ``RuntimeError`` if the thread is still alive after ``timeout`` (after forcing
        the exit, so the test run is not left with a live server).
        """
        started = time.monotonic()
        self.server.should_exit = True
        self._thread.join(timeout)
        took = time.monotonic() - started
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(2.0)
            raise RuntimeError(f"uvicorn did not stop within {timeout} s")
        return took


@contextlib.contextmanager
def serve(app: Any, *, stop_timeout: float = 5.0, **config: Any) -> Iterator[ServerThread]:
    """Serve ``app`` on a real socket for the ``with`` block; see ``ServerThread``.

    On exit the server is stopped (unless the test already did) and must finish within
    ``stop_timeout`` seconds, or ``RuntimeError`` is raised.
    """
    server = ServerThread(app, **config)
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop(stop_timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0, read the number, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A ``python -m uvicorn`` child process; stdout and stderr go to ``log_path``."""

    def __init__(self, proc: subprocess.Popen[bytes], host: str, port: int, log: IO[bytes]):
        self.proc = proc
        self.host = host
        self.port = port
        self._log = log

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> str:
        return self._log.name

    def output(self) -> str:
        """Everything the process printed so far."""
        return Path(self._log.name).read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> float:
        """SIGTERM; wait for the exit and return the seconds it took.

        If it has not exited within ``timeout``, SIGKILL it and raise ``RuntimeError``.
        """
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"uvicorn (pid {self.pid}) ignored SIGTERM for {timeout} s:\n{self.output()}"
            ) from None
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def _wait_ready(
    server: ServerProcess, ready_path: str | None, timeout: float
) -> bool:  # False: the process died (port race?)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        try:
            with socket.create_connection((server.host, server.port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.02)
            continue
        if ready_path is None:
            return True
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + ready_path, timeout=1.0).status_code < 500:
                return True
        time.sleep(0.02)
    raise RuntimeError(f"uvicorn not ready within {timeout} s:\n{server.output()}")


@contextlib.contextmanager
def serve_subprocess(
    app_ref: str,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    *,
    factory: bool = False,
    ready_path: str | None = None,
    cwd: str | os.PathLike[str] = PROJECT_ROOT,
    startup_timeout: float = 15.0,
    stop_timeout: float = 10.0,
) -> Iterator[ServerProcess]:
    """Run ``sys.executable -m uvicorn app_ref`` on a free port for the ``with`` block.

    ``env`` is laid over ``os.environ``; ``cwd`` (default: the project root) is also the
    ``--app-dir``. Ready means: a TCP connect succeeds, and if ``ready_path`` is given, a GET
    on it answers below 500 (with ``workers > 1`` the parent listens before the workers are
    up, so pass ``ready_path`` there). On exit: SIGTERM, then SIGKILL after ``stop_timeout``.
    """
    child_env = {**os.environ, **(env or {})}
    for _attempt in range(3):
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", app_ref, "--host", "127.0.0.1"]
        args += ["--port", str(port), "--workers", str(workers), "--app-dir", str(cwd)]
        args += ["--log-level", "warning", *(["--factory"] if factory else []), *extra_args]
        log = tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False)  # noqa: SIM115
        proc = subprocess.Popen(args, env=child_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        server = ServerProcess(proc, "127.0.0.1", port, log)
        try:
            ready = _wait_ready(server, ready_path, startup_timeout)
        except BaseException:
            server.close()
            raise
        if ready:
            break
        text = server.output()
        server.close()
        if "address already in use" not in text.lower():
            raise RuntimeError(f"uvicorn exited during startup:\n{text}")
    else:
        raise RuntimeError("uvicorn could not bind a free port in 3 attempts")
    try:
        yield server
    finally:
        try:
            if server.proc.poll() is None:
                server.terminate(stop_timeout)
        finally:
            server.close()
