"""What clients that stop reading cost a worker: memory per stuck reader, sockets left open
after ``send_timeout``, and how long a SIGTERMed worker takes to exit with them attached.

    python -m bench.stuck_readers [--readers 100] [--answer-mb 6]

One uvicorn worker (a subprocess, 127.0.0.1 only) serves a finished answer of ``--answer-mb``
MB; ``--readers`` raw sockets resume it and never read (4 KiB receive buffers). Figures come
from the worker's own RSS and socket table (psutil).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil

from .procs import free_port

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def make_app() -> object:
    """uvicorn factory: the embedded provider answering ``BENCH_ANSWER_MB`` MB at once."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from llm_sse_mount import LLMMount, Scripted

    megabytes = float(os.environ.get("BENCH_ANSWER_MB", "6"))
    answer = " word" * int(megabytes * 1024 * 1024 / 5)
    provider = Scripted(answer=answer, reasoning="", pace=0, jitter=0)
    mount = LLMMount.from_env(provider=provider)  # LLM_SSE_SEND_TIMEOUT and friends apply
    return Starlette(routes=[Mount("/llm", app=mount)], lifespan=mount.lifespan)


def _connections(proc: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in proc.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _stuck_clients(port: int, stream_id: str, n: int) -> list[socket.socket]:
    request = f"GET /llm/chat/{stream_id} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
    out = []
    for _ in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        out.append(sock)
    return out


def run(readers: int, answer_mb: float, send_timeout: float) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_ANSWER_MB": str(answer_mb),
        "LLM_SSE_SEND_TIMEOUT": str(send_timeout),
        "LLM_SSE_SHUTDOWN_GRACE": "1",
        # Every stuck client is a reader (the default cap of 8 would answer the rest 429).
        "LLM_SSE_MAX_READERS": str(2 * readers + 1),
        "LLM_SSE_STORE_MAX_FRAMES": "2000000",
    }
    args = [sys.executable, "-m", "uvicorn", "bench.stuck_readers:make_app", "--factory"]
    args += ["--port", str(port), "--log-level", "error"]
    worker = subprocess.Popen(args, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/llm/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        proc = psutil.Process(worker.pid)
        body = httpx.post(f"http://127.0.0.1:{port}/llm/chat", json=CHAT, timeout=60).text
        stream_id = body.split('"stream_id":"')[1].split('"')[0]
        time.sleep(2.0)  # let the first response's buffers go
        before = proc.memory_info().rss
        clients = _stuck_clients(port, stream_id, readers)
        time.sleep(min(2.0, send_timeout / 2))
        peak = proc.memory_info().rss
        open_during = _connections(proc, port)
        dropped_at = time.monotonic() + 3 * send_timeout
        while _connections(proc, port) and time.monotonic() < dropped_at:
            time.sleep(0.2)
        open_after = _connections(proc, port)
        # Again, then stop the worker with them attached.
        more = _stuck_clients(port, stream_id, readers)
        time.sleep(1.0)
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
            exit_s = time.monotonic() - started
        except subprocess.TimeoutExpired:
            exit_s = float("inf")
        for sock in clients + more:
            sock.close()
        return {
            "readers": readers,
            "answer_mb": answer_mb,
            "rss_before_mib": before / 2**20,
            "rss_with_readers_mib": peak / 2**20,
            "kib_per_stuck_reader": (peak - before) / 1024 / readers,
            "open_with_readers": open_during,
            "open_3x_send_timeout_later": open_after,
            "sigterm_exit_s": exit_s,
        }
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--answer-mb", type=float, default=6.0)
    parser.add_argument("--send-timeout", type=float, default=5.0)
    ns = parser.parse_args()
    result = run(ns.readers, ns.answer_mb, ns.send_timeout)
    for key, value in result.items():
        print(f"{key:>26}: {value:.1f}" if isinstance(value, float) else f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
