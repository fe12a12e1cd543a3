"""What an open stream costs before any code of ours: resident memory per open stream of a bare
Starlette ``StreamingResponse``, a bare sse-starlette ``EventSourceResponse``, and the mount on
its embedded provider (no upstream connection in any of the three).

``python -m bench.memory_floor [N]``: each app in its own uvicorn process on 127.0.0.1; one
stream to warm up, then N (default 256) streams held open; (RSS with N open - RSS with one) / N.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psutil
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llm_sse_mount import LLMMount, Scripted
from llm_sse_mount.providers.scripted import Hang, Text

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"messages":[{"role":"user","content":"x"}]}'


async def _one_frame_then_wait() -> AsyncIterator[bytes]:
    yield b"data: x\n\n"
    await anyio.sleep(3600)


async def _plain(request: Request) -> Response:
    return StreamingResponse(_one_frame_then_wait(), media_type="text/event-stream")


async def _sse(request: Request) -> Response:
    return EventSourceResponse(_one_frame_then_wait(), ping=15)


plain_app = Starlette(routes=[Route("/chat", _plain, methods=["POST"])])
sse_app = Starlette(routes=[Route("/chat", _sse, methods=["POST"])])
mount_app = LLMMount(provider=Scripted(script=[Text("a"), Hang()]))

APPS = {
    "starlette StreamingResponse": "plain_app",
    "sse-starlette EventSourceResponse": "sse_app",
    "llm_sse_mount (no upstream)": "mount_app",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _open(port: int, n: int) -> list[asyncio.StreamWriter]:
    request = (
        b"POST /chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )

    async def one() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await asyncio.wait_for(reader.readuntil(b"data:"), 30)
        return writer

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def _measure(pid: int, port: int, n: int) -> float:
    proc = psutil.Process(pid)
    warm = await _open(port, 1)
    await asyncio.sleep(0.3)
    idle = proc.memory_info().rss
    held = await _open(port, n)
    await asyncio.sleep(0.5)
    per_stream = (proc.memory_info().rss - idle) / n / 1024
    for writer in warm + held:
        writer.close()
    return per_stream


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    print(f"resident memory per open stream, {n} held open:")
    for label, attr in APPS.items():
        port = _free_port()
        argv = [sys.executable, "-m", "uvicorn", f"bench.memory_floor:{attr}", "--port", str(port)]
        child = subprocess.Popen([*argv, "--log-level", "warning"], cwd=ROOT)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            print(f"  {label:36} {asyncio.run(_measure(child.pid, port, n)):6.1f} KiB")
        finally:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
