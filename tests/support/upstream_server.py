"""The fake upstream's server: raw asyncio HTTP/1.1 on a real socket (see ``fake_upstream``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json as jsonlib
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Literal

from .upstream_steps import (
    Body,
    ConnectionRecord,
    Drop,
    End,
    Hang,
    RecordedRequest,
    Respond,
    Script,
    Send,
    Sleep,
    Step,
)

_MAX_HEAD = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _ClientGone(Exception):
    """The client closed or reset the connection."""


class _Malformed(Exception):
    """The request could not be parsed."""


class _Input:
    """The read side of a connection, with bytes the close watcher read ahead put back first."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.pending = bytearray()

    async def _more(self) -> None:
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc
        if not data:
            raise _ClientGone
        self.pending += data

    async def read_until(self, sep: bytes, limit: int) -> bytes:
        while (i := self.pending.find(sep)) < 0:
            if len(self.pending) > limit:
                raise _Malformed("head too large")
            await self._more()
        out = bytes(self.pending[: i + len(sep)])
        del self.pending[: i + len(sep)]
        return out

    async def read_exactly(self, n: int) -> bytes:
        while len(self.pending) < n:
            await self._more()
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    async def watch(self) -> None:
        """Return when the client closes; bytes read meanwhile (pipelining) are kept."""
        while True:
            await self._more()


class _Exchange:
    """The state of one response while its script runs."""

    def __init__(self, writer: asyncio.StreamWriter, conn: ConnectionRecord) -> None:
        self.writer = writer
        self.conn = conn
        self.started = False
        self.chunked = True
        self.finished = False
        self.keep_alive = True

    async def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise _ClientGone
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc
        self.conn.last_write_at = time.monotonic()

    async def respond(self, step: Respond) -> None:
        if self.started:
            raise RuntimeError("Respond after the response already started")
        self.started = True
        self.chunked = step.chunked
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        if step.chunked:
            headers["transfer-encoding"] = "chunked"
        else:
            headers["connection"] = "close"
            self.keep_alive = False
        await self.write(_head(step.status, headers, step.headers))

    async def send(self, data: bytes) -> None:
        if not self.started:
            await self.respond(Respond())
        if self.finished:
            raise RuntimeError("Send after the response was finished")
        if not data:
            return
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        await self.write(data)

    async def end(self) -> None:
        if self.finished:
            return
        if not self.started:
            await self.respond(Respond())
        self.finished = True
        if self.chunked:
            await self.write(b"0\r\n\r\n")

    async def body(self, step: Body) -> None:
        if self.started:
            raise RuntimeError("Body after the response already started")
        self.started = self.finished = True
        headers = {"content-type": "application/json", "content-length": str(len(step.body))}
        user = {k: v for k, v in step.headers.items() if k.lower() != "content-length"}
        await self.write(_head(step.status, headers, user) + step.body)


def _head(status: int, defaults: dict[str, str], extra: Mapping[str, str]) -> bytes:
    merged = dict(defaults)
    for name, value in extra.items():
        merged.pop(name.lower(), None)
        merged[name] = value
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class FakeUpstream:
    """A scriptable HTTP/1.1 server on a real socket; see the module docstring.

    ``push(script)`` queues a script (FIFO, one per request); ``default`` answers when the queue
    is empty (``None``: a 500 saying no script was queued, also noted in ``errors``).
    ``requests`` and ``connections`` are appended live from the server thread; read them, don't
    mutate them. ``errors`` collects scripts that failed (for example ``Send`` after ``Body``).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.default: Sequence[Step] | None = None
        self.requests: list[RecordedRequest] = []
        self.connections: list[ConnectionRecord] = []
        self.errors: list[str] = []
        self._scripts: collections.deque[Script] = collections.deque()
        self._matched: dict[str, collections.deque[Script]] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        """Start the loop thread and the listener; return once it accepts connections."""
        self._thread = threading.Thread(target=self._run, name="FakeUpstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("FakeUpstream did not start")
        if self._startup_error is not None:
            raise RuntimeError("FakeUpstream failed to start") from self._startup_error

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (recorded as closed by the server), stop the loop, join."""
        if self._loop is None or self._thread is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"FakeUpstream did not stop within {timeout} s")

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting and inspection ------------------------------------------------------------

    def push(self, *scripts: Script, match: str | None = None) -> None:
        """Queue scripts; each incoming request takes the next one. With ``match``, the
        scripts answer only requests whose body contains that text (before any unmatched
        script), so a script left over by an earlier burst can never answer this request."""
        with self._cond:
            if match is None:
                self._scripts.extend(scripts)
            else:
                self._matched.setdefault(match, collections.deque()).extend(scripts)

    def open_connections(self) -> int:
        """How many connections are open right now."""
        with self._cond:
            return sum(1 for c in self.connections if c.closed_at is None)

    def wait_requests(self, n: int, timeout: float = 2.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests arrived; return them. Raises ``TimeoutError``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"{len(self.requests)} of {n} requests after {timeout} s")
            return list(self.requests)

    def wait_closed(self, connection_id: int | None = None, timeout: float = 2.0) -> float:
        """Wait until the client closes a connection (default: the latest one opened).

        Returns the seconds between the server's last write (or the start of a ``Hang``) and
        the close. Raises ``TimeoutError`` if it stays open, ``AssertionError`` if the server
        closed it (the client never had to).
        """

        def find() -> ConnectionRecord | None:
            if connection_id is None:
                return self.connections[-1] if self.connections else None
            return next((c for c in self.connections if c.id == connection_id), None)

        with self._cond:
            done = self._cond.wait_for(
                lambda: (c := find()) is not None and c.closed_at is not None, timeout
            )
            conn = find()
            if not done or conn is None or conn.closed_at is None:
                which = "no connection" if conn is None else f"connection {conn.id}"
                raise TimeoutError(f"{which} still open after {timeout} s")
            if conn.closed_by != "client":
                raise AssertionError(f"connection {conn.id} was closed by the server")
            return conn.closed_at - conn.last_write_at

    # -- server thread -----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(self._on_connect, self.host, 0)
        except BaseException as exc:  # surface bind errors in start()
            self._startup_error = exc
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2.0)
        # Aborted transports close their sockets in a call_soon callback: let those run before
        # the loop closes, or the sockets leak (ResourceWarning, an error under pytest here).
        for _ in range(3):
            await asyncio.sleep(0)

    def _mark(self, conn: ConnectionRecord, by: Literal["client", "server"]) -> None:
        with self._cond:
            if conn.closed_at is None:
                conn.closed_at = time.monotonic()
                conn.closed_by = by
            self._cond.notify_all()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        now = time.monotonic()
        conn = ConnectionRecord(id=next(self._ids), opened_at=now, last_write_at=now)
        with self._cond:
            self.connections.append(conn)
            self._cond.notify_all()
        inp = _Input(reader)
        closed_by: Literal["client", "server"] = "server"
        graceful = False
        try:
            while await self._exchange(inp, writer, conn):
                pass
            graceful = True
        except _ClientGone:
            closed_by = "client"
        except _Malformed as exc:
            self.errors.append(f"connection {conn.id}: malformed request: {exc}")
            graceful = True
        except asyncio.CancelledError:
            pass  # shutdown: abort below
        finally:
            self._mark(conn, closed_by)
            self._tasks.discard(task)
        if graceful and not writer.is_closing():
            # close() flushes what is buffered, so a close-delimited body arrives whole.
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
        writer.transport.abort()

    async def _exchange(
        self, inp: _Input, writer: asyncio.StreamWriter, conn: ConnectionRecord
    ) -> bool:
        """Serve one request; return whether the connection stays open for the next."""
        request, keep_alive = await self._read_request(inp, conn)
        script = self._next_script(request)
        ex = _Exchange(writer, conn)
        ex.keep_alive = keep_alive
        runner = asyncio.ensure_future(self._run_script(script, ex))
        watcher = asyncio.ensure_future(inp.watch())
        try:
            await asyncio.wait({runner, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelling a StreamReader.read() loses no data, so the watcher is safe to stop.
            for task in (runner, watcher):
                task.cancel()
            results = await asyncio.gather(runner, watcher, return_exceptions=True)
        outcome = results[0]
        if isinstance(outcome, bool):
            # The script finished first (a Drop also wakes the watcher: that is not the client).
            return outcome
        if isinstance(outcome, _ClientGone) or isinstance(results[1], _ClientGone):
            raise _ClientGone
        self.errors.append(f"{request.method} {request.path}: script failed: {outcome!r}")
        return False

    async def _read_request(
        self, inp: _Input, conn: ConnectionRecord
    ) -> tuple[RecordedRequest, bool]:
        head = await inp.read_until(b"\r\n\r\n", _MAX_HEAD)
        try:
            lines = head[:-4].decode("latin-1").split("\r\n")
            method, path, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name.strip():
                    raise ValueError(line)
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise _Malformed(repr(head[:200])) from exc
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(inp)
        else:
            body = await inp.read_exactly(length)
        try:
            parsed = jsonlib.loads(body) if body else None
        except ValueError:
            parsed = None
        conn.requests += 1
        request = RecordedRequest(
            method, path, headers, body, parsed, conn.id, received_at=time.monotonic()
        )
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and version != "HTTP/1.0"
        return request, keep_alive

    async def _read_chunked(self, inp: _Input) -> bytes:
        body = bytearray()
        while True:
            size_line = await inp.read_until(b"\r\n", 1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise _Malformed(repr(size_line)) from exc
            if size == 0:
                await inp.read_until(b"\r\n", _MAX_HEAD)  # no trailers expected
                return bytes(body)
            body += await inp.read_exactly(size)
            await inp.read_exactly(2)

    def _next_script(self, request: RecordedRequest) -> Script:
        with self._cond:
            body = request.body.decode("utf-8", "replace")
            for marker, queue in self._matched.items():
                if queue and marker in body:
                    return queue.popleft()
            if self._scripts:
                return self._scripts.popleft()
        if self.default is not None:
            return self.default
        self.errors.append(f"no script for {request.method} {request.path}")
        msg = f"FakeUpstream: no script queued for {request.method} {request.path}"
        return [Body(500, msg.encode(), {"content-type": "text/plain"})]

    async def _run_script(self, script: Script, ex: _Exchange) -> bool:
        """Run the steps; return keep-alive. Raises ``_ClientGone`` if a write hit a closed peer."""
        for step in script:
            if isinstance(step, Respond):
                await ex.respond(step)
            elif isinstance(step, Send):
                await ex.send(step.data)
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Hang):
                ex.conn.last_write_at = time.monotonic()
                await asyncio.Event().wait()  # until the watcher sees the client leave
            elif isinstance(step, Drop):
                sock = ex.writer.get_extra_info("socket")
                if step.reset and sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._mark(ex.conn, "server")  # before the client can see it, so tests don't race
                ex.writer.transport.abort()
                return False
            elif isinstance(step, End):
                await ex.end()
            elif isinstance(step, Body):
                await ex.body(step)
            else:
                raise TypeError(f"not a step: {step!r}")
        await ex.end()
        return ex.keep_alive
