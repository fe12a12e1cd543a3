"""Clients that stop reading cannot pin a worker: a dropped client's socket really closes, and
a stopping worker exits within ``shutdown_grace`` plus a small bound whatever its clients do."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, Scripted

from .support.fake_upstream import FakeUpstream, openai_stream
from .support.servers import ServerThread, serve_subprocess

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def non_reading_client(port: int, request: bytes) -> socket.socket:
    """A client that sends its request and then never reads (a small receive buffer, so the
    server's writes back up quickly)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


#: Both ways uvicorn serves: the pure-Python one, and uvicorn[standard]'s (what production
#: installs; its uvloop transports are not asyncio's classes).
SERVERS = [
    pytest.param({"http": "h11", "loop": "asyncio"}, id="h11-asyncio"),
    pytest.param({"http": "auto", "loop": "auto"}, id="standard-if-installed"),
]


@pytest.mark.parametrize("server_config", SERVERS)
def test_send_timeout_really_closes_the_socket_of_a_client_that_stopped_reading(
    serve_app, server_config: dict[str, str]
) -> None:
    answer = " word" * 60_000  # about 300 KB of frames, more than the socket buffers hold
    provider = Scripted(answer=answer, reasoning="", pace=0, jitter=0)
    mount = LLMMount(provider=provider, send_timeout=0.5)
    server: ServerThread = serve_app(Starlette(routes=[Mount("/llm", app=mount)]), **server_config)
    first = httpx.post(server.url + "/llm/chat", json=CHAT, timeout=30)
    stream_id = first.text.split('"stream_id":"')[1].split('"')[0]
    request = f"GET /llm/chat/{stream_id} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    clients = [non_reading_client(server.port, request) for _ in range(5)]
    try:
        deadline = time.monotonic() + 5
        while server.server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.server.server_state.connections) == 0
        assert server.stop(5.0) < 1.0
    finally:
        for client in clients:
            client.close()


def test_a_stopping_worker_exits_within_the_grace_whatever_its_clients_do(
    fake_upstream: FakeUpstream,
) -> None:
    # A finished 6 MB answer, resumed by five clients that never read.
    fake_upstream.push(openai_stream(["x" * 60_000] * 100, split=None))
    env = {
        "LLM_SSE_PROVIDER": "openai",
        "LLM_SSE_BASE_URL": fake_upstream.url + "/v1",
        "LLM_SSE_API_KEY": "sk-test",
        "LLM_SSE_MODEL": "m",
        "LLM_SSE_SHUTDOWN_GRACE": "1",
        "LLM_SSE_SEND_TIMEOUT": "60",  # so only the shutdown can end these responses
    }
    with serve_subprocess("tests.support.env_app:app", env=env, ready_path="/llm/health") as proc:
        first = httpx.post(proc.url + "/llm/chat", json=CHAT, timeout=30)
        stream_id = first.text.split('"stream_id":"')[1].split('"')[0]
        request = f"GET /llm/chat/{stream_id} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        clients = [non_reading_client(proc.port, request) for _ in range(5)]
        try:
            time.sleep(1.0)  # their buffers are full now
            took = proc.terminate(10)
        finally:
            for client in clients:
                client.close()
    assert took < 1 + 3  # shutdown_grace plus a small bound
