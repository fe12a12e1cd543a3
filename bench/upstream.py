"""A lean fake OpenAI-compatible upstream: raw asyncio, no framework, so it is not the bottleneck.

``POST /v1/chat/completions`` answers with a ``chat.completion.chunk`` stream: a role chunk, then
``--tokens`` content chunks ``--interval-ms`` apart (mixed English and Chinese, raw UTF-8 on the
wire as real vendors send it), a finish chunk, a usage chunk and ``data: [DONE]``.

``POST /hold/v1/chat/completions`` is the same with the long, slow "hold" profile; the memory
phase points a relay's ``base_url`` at ``/hold/v1`` so every stream stays open mid-answer.

The chunks carry no timestamp: the relay under test must not be helped, so all timing is taken
at the client. Tokens follow an absolute schedule (``t0 + i * interval``), so a busy moment in
this process does not add drift to every later token.

Run: ``python -m bench.upstream --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from dataclasses import dataclass

# Cycled to the requested length. Multi-byte characters make a relay's UTF-8 handling do work.
WORDS = (
    "Hello",
    ",",
    " 世界",
    "！",
    " The",
    " quick",
    " brown",
    " 狐狸",
    " jumps",
    " over",
    " 懒狗",
    "。",
    " 流式",
    "传输",
    " keeps",
    " every",
    " token",
    " 按顺序",
    " in",
    " order",
    " 🚀",
    " 数据",
    " arrives",
    " 及时",
    ".",
)

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
_NOT_FOUND_BODY = b'{"error":{"code":"not_found","message":"no such route"}}'
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_NOT_FOUND_BODY), _NOT_FOUND_BODY)
)


@dataclass(frozen=True)
class Profile:
    tokens: int
    interval: float  # seconds


def _chunk(payload: dict[str, object]) -> bytes:
    """One SSE event wrapped as one HTTP/1.1 chunk (prebuilt once per profile)."""
    data = b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def build_frames(tokens: int) -> tuple[bytes, list[bytes], bytes]:
    """(role chunk, one chunk per content token, tail: finish + usage + [DONE] + terminator)."""
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
    }

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _chunk({**base, "choices": [choice]})

    role = chunk({"role": "assistant", "content": ""})
    content = [chunk({"content": WORDS[i % len(WORDS)]}) for i in range(tokens)]
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
    done = b"data: [DONE]\n\n"
    tail = (
        chunk({}, "stop")
        + _chunk({**base, "choices": [], "usage": usage})
        + b"%x\r\n%s\r\n" % (len(done), done)
        + b"0\r\n\r\n"
    )
    return role, content, tail


class Upstream:
    def __init__(self, normal: Profile, hold: Profile) -> None:
        self.routes = {
            b"/v1/chat/completions": (normal, build_frames(normal.tokens)),
            b"/hold/v1/chat/completions": (hold, build_frames(hold.tokens)),
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # only at shutdown: end quietly, the process is exiting
        finally:
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return whether the connection may be reused."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, path, _ = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        await self._discard_body(reader, headers)
        keep_alive = headers.get(b"connection") != b"close"
        route = self.routes.get(path.split(b"?", 1)[0]) if method == b"POST" else None
        if route is None:
            writer.write(_NOT_FOUND)
            await writer.drain()
            return keep_alive
        profile, (role, content, tail) = route
        transport = writer.transport
        writer.write(_HEAD + role)
        t0 = time.monotonic()
        for i, frame in enumerate(content):
            delay = t0 + i * profile.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if transport.is_closing():  # the client (or relay) went away: stop generating
                return False
            writer.write(frame)
        writer.write(tail)
        await writer.drain()
        return keep_alive

    @staticmethod
    async def _discard_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> None:
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    return
        length = int(headers.get(b"content-length", b"0"))
        if length:
            await reader.readexactly(length)


async def serve(host: str, port: int, normal: Profile, hold: Profile) -> None:
    upstream = Upstream(normal, hold)
    server = await asyncio.start_server(upstream.handle, host, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--hold-tokens", type=int, default=600)
    parser.add_argument("--hold-interval-ms", type=float, default=50.0)
    args = parser.parse_args()
    normal = Profile(args.tokens, args.interval_ms / 1000)
    hold = Profile(args.hold_tokens, args.hold_interval_ms / 1000)
    asyncio.run(serve(args.host, args.port, normal, hold))


if __name__ == "__main__":
    main()
