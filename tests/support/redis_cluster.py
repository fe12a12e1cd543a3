"""A real three-master Redis Cluster on loopback, for the tests that must run on one.

``redis_cluster`` (session fixture, see ``tests/conftest.py``) yields a :class:`RedisClusterInfo`:
three ``redis-server --cluster-enabled yes`` processes on free 127.0.0.1 ports in a temporary
directory, joined by ``redis-cli --cluster create ... --cluster-replicas 0`` and waited for until
every node says ``cluster_state:ok``. Nothing is persisted (``--save ""``, no AOF); the
processes are killed and the directory removed at session end.

Each node also listens on ``port + 10000`` (the cluster bus), so ports are picked in pairs
that are both free. The whole start takes well under a second on an idle machine; the bound
here is generous for a loaded one.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterUnavailable", "RedisClusterInfo", "running_cluster"]

#: Seconds the cluster may take to form before the fixture gives up.
START_TIMEOUT = 15.0


class ClusterUnavailable(Exception):
    """redis-server or redis-cli is missing (the fixture turns this into a skip)."""


@dataclass(frozen=True)
class RedisClusterInfo:
    """A running cluster: its node ports and the URL ``RedisStore`` / ``from_env`` take."""

    ports: tuple[int, ...]
    started_in: float

    @property
    def url(self) -> str:
        """The cluster URL form the store accepts (any node seeds the client)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    @property
    def seed_url(self) -> str:
        """A plain ``redis://`` URL of the first node, for ``RedisCluster.from_url``."""
        return f"redis://127.0.0.1:{self.ports[0]}"


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 10000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # The bus port must exist (< 65536) and be free too.
        if port + 10000 < 65536 and port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


def _info_ok(cli: str, port: int) -> bool:
    out = subprocess.run(
        [cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=5
    ).stdout
    return "cluster_state:ok" in out


@contextlib.contextmanager
def running_cluster(masters: int = 3) -> Iterator[RedisClusterInfo]:
    """Start a cluster of ``masters`` nodes; stop it on exit. Raises
    :class:`ClusterUnavailable` when the Redis binaries are not installed."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise ClusterUnavailable("redis-server and redis-cli are needed for a Redis Cluster")
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="llm_sse_cluster_"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = _free_ports(masters)
        for port in ports:
            node_dir = tmp / str(port)
            node_dir.mkdir()
            args = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", "2000",
                "--dir", str(node_dir),
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = began + START_TIMEOUT
        for port in ports:
            while subprocess.run([cli, "-p", str(port), "ping"], capture_output=True).stdout != (
                b"PONG\n"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start")
                time.sleep(0.02)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        while not all(_info_ok(cli, p) for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield RedisClusterInfo(tuple(ports), time.monotonic() - began)
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
