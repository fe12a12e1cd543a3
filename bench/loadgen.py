"""Load generator: its own process, driven by the runner over JSON lines on stdin/stdout.

Each stream is a raw asyncio ``Protocol`` on its own connection (``Connection: close``), not an
httpx client: at 256+ streams httpx's per-chunk overhead would put the load generator on the
critical path of a 2-core machine. It parses just enough: HTTP/1.1 status and framing (chunked,
content-length or read-to-close), SSE events split on blank lines, and a token is either a
``data:`` chunk whose ``choices[0].delta.content`` is non-empty (``kind="openai"``) or an
``event: delta`` frame (``kind="native"``) or a ``response.output_text.delta`` event
(``kind="responses"``). Every token gets the arrival time of the socket read
that completed it, so tokens coalesced into one TCP read share a timestamp (a 0 ms gap).

Commands (one JSON object per line); every reply is one JSON line:

- ``{"cmd": "run", host, port, path, body, kind, n, batches, timeout}``: ``batches`` rounds of
  ``n`` concurrent streams; replies per-stream TTFT (ms from before ``connect``), inter-token
  gaps (ms), token count, status and error, plus this process's CPU seconds and wall time.
- ``{"cmd": "hold", host, port, path, body, kind, n, hold_s, timeout}``: opens ``n`` streams,
  replies ``{"event": "ready", "open": k}`` once each has a token (or failed, or the timeout),
  holds them ``hold_s`` seconds (the runner reads the relay's RSS meanwhile), closes them all and
  replies with the summary.
- ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from typing import Any

_SEP = b"\n\n"
#: kind → (the event name of a token, the event name of the end)
_NAMED = {
    "native": (b"delta", b"done"),
    "responses": (b"response.output_text.delta", b"response.completed"),
}


class _Stream(asyncio.Protocol):
    def __init__(self, request: bytes, kind: str, t0: float) -> None:
        self.request = request
        # Named SSE events (native, Responses): which event is a token and which ends it.
        self.named = _NAMED.get(kind)
        self.t0 = t0
        self.times: list[float] = []
        self.status = 0
        self.error: str | None = None
        self.done = False  # saw [DONE] / event: done
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.first_token = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._framing = ""  # "chunked" | "length" | "close"
        self._remaining = 0  # chunked: bytes left in chunk (-1 size line, -2 CRLF); length: left
        self._raw = bytearray()  # undecoded chunked bytes
        self._sse = bytearray()  # decoded body not yet split into events
        self._body_head = bytearray()  # first bytes of a non-200 body, for the error message

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self._framing:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = bytes(self._head[end + 4 :])
            self._parse_head(bytes(self._head[:end]))
        if self._framing == "chunked":
            body = self._dechunk(data)
        elif self._framing == "length":
            body = data[: self._remaining]
            self._remaining -= len(body)
            if self._remaining <= 0:
                self._finish()
        else:
            body = data
        if body:
            self._feed(body, now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done() and self.error is None and self._framing != "close":
            self.error = f"connection lost mid-body ({exc or 'eof'})"
        self._finish()

    # parsing -----------------------------------------------------------------------------
    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            self._framing, self._remaining = "chunked", -1
        elif b"content-length" in headers:
            self._framing, self._remaining = "length", int(headers[b"content-length"])
            if self._remaining == 0:
                self._finish()
        else:
            self._framing = "close"

    def _dechunk(self, data: bytes) -> bytes:
        buf = self._raw
        buf += data
        out = bytearray()
        while buf:
            if self._remaining == -1:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                size = int(bytes(buf[:eol]).split(b";")[0], 16)
                del buf[: eol + 2]
                if size == 0:
                    self._finish()
                    break
                self._remaining = size
            elif self._remaining == -2:
                if len(buf) < 2:
                    break
                del buf[:2]
                self._remaining = -1
            else:
                take = buf[: self._remaining]
                out += take
                del buf[: len(take)]
                self._remaining -= len(take)
                if self._remaining == 0:
                    self._remaining = -2
        return bytes(out)

    def _feed(self, body: bytes, now: float) -> None:
        if self.status != 200:
            if len(self._body_head) < 200:
                self._body_head += body[:200]
            return
        sse = self._sse
        sse += body
        if b"\r" in sse:  # sse-starlette ends lines with CRLF; a lone trailing CR waits for LF
            sse[:] = sse.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = sse.find(_SEP, start)
            if end < 0:
                break
            self._event(bytes(sse[start:end]), now)
            start = end + 2
        del sse[:start]

    def _event(self, event: bytes, now: float) -> None:
        if self.named is not None:
            token, end = self.named
            for line in event.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip()
                    if name == token:
                        self._token(now)
                    elif name == end:
                        self.done = True
            return
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
            elif b'"content"' in payload:
                choices = json.loads(payload).get("choices") or ()
                if choices and (choices[0].get("delta") or {}).get("content"):
                    self._token(now)

    def _token(self, now: float) -> None:
        self.times.append(now)
        self.first_token.set()

    def _finish(self) -> None:
        if self.status and self.status != 200 and self.error is None:
            self.error = f"HTTP {self.status}: {self._body_head[:120].decode(errors='replace')}"
        if not self.finished.done():
            self.finished.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def result(self) -> dict[str, Any]:
        ms = [round((t - self.t0) * 1000, 3) for t in self.times]
        return {
            "ttft": ms[0] if ms else None,
            "gaps": [round(b - a, 3) for a, b in itertools.pairwise(ms)],
            "tokens": len(ms),
            "done": self.done,
            "status": self.status,
            "error": self.error,
        }


def _request(cmd: dict[str, Any]) -> bytes:
    body = json.dumps(cmd["body"]).encode()
    head = (
        f"POST {cmd['path']} HTTP/1.1\r\nhost: {cmd['host']}:{cmd['port']}\r\n"
        "content-type: application/json\r\naccept: text/event-stream\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _open(cmd: dict[str, Any], request: bytes) -> _Stream:
    loop = asyncio.get_running_loop()
    stream = _Stream(request, cmd["kind"], time.perf_counter())
    try:
        await asyncio.wait_for(
            loop.create_connection(lambda: stream, cmd["host"], cmd["port"]), cmd["timeout"]
        )
    except (OSError, asyncio.TimeoutError) as exc:
        stream.error = f"connect: {exc!r}"
        stream.finished.set_result(None)
    return stream


async def _complete(stream: _Stream, timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(stream.finished), timeout)
    except asyncio.TimeoutError:
        stream.error = stream.error or f"timeout after {timeout:.0f} s"
        stream._finish()


async def _run(cmd: dict[str, Any]) -> list[dict[str, Any]]:
    request = _request(cmd)
    results: list[dict[str, Any]] = []

    async def one() -> None:
        stream = await _open(cmd, request)
        await _complete(stream, cmd["timeout"])
        results.append(stream.result())

    for _ in range(cmd.get("batches", 1)):
        await asyncio.gather(*(one() for _ in range(cmd["n"])))
    return results


async def _hold(cmd: dict[str, Any]) -> dict[str, Any]:
    request = _request(cmd)
    streams = await asyncio.gather(*(_open(cmd, request) for _ in range(cmd["n"])))

    async def first_or_end(stream: _Stream) -> None:
        waits = [asyncio.ensure_future(stream.first_token.wait()), stream.finished]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(first_or_end(s) for s in streams)), cmd["timeout"])
    open_now = sum(1 for s in streams if s.times and not s.finished.done())
    _reply({"event": "ready", "open": open_now, "n": cmd["n"]})
    await asyncio.sleep(cmd["hold_s"])
    still_open = sum(1 for s in streams if not s.finished.done())
    for stream in streams:
        stream._finish()
    errors = [s.error for s in streams if s.error]
    return {"open": open_now, "still_open_after_hold": still_open, "errors": errors[:5]}


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            return
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if cmd["cmd"] == "run":
            reply: dict[str, Any] = {"streams": asyncio.run(_run(cmd))}
        elif cmd["cmd"] == "hold":
            reply = asyncio.run(_hold(cmd))
        else:
            reply = {"error": f"unknown command {cmd['cmd']!r}"}
        reply["cpu_s"] = time.process_time() - cpu0
        reply["wall_s"] = time.perf_counter() - wall0
        _reply(reply)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
