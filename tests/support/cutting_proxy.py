"""A TCP proxy that cuts one response mid-stream, like a proxy resetting a connection.

::

    with CuttingProxy(server_port, path=b"/llm/chat", cut_after=1500) as proxy:
        page.goto(proxy.url + "/")     # the browser talks to the server through the proxy
        ...
        proxy.cuts                      # 1 once it has cut

Every byte is forwarded unchanged, except that the first response to a request whose request
line contains ``path`` is closed (both directions) after ``cut_after`` bytes of it reached the
client. That happens once; later requests, reconnects included, pass untouched. It runs its
own asyncio loop in a daemon thread, so sync tests (and a browser) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forward 127.0.0.1:``port`` to ``target_port``, cutting one response (see the module)."""

    def __init__(self, target_port: int, *, path: bytes, cut_after: int) -> None:
        self.target_port = target_port
        self.path = path
        self.cut_after = cut_after
        self.port = 0
        self.cuts = 0
        self.connections = 0
        self._armed = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="CuttingProxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("CuttingProxy did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        # Set by the client→server pump when it forwards the request to cut; read by the other.
        watching = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self._armed and self.path in data:
                    self._armed = False
                    watching.set()
                server_w.write(data)
                await server_w.drain()
            server_w.write_eof()

        async def downstream() -> None:
            sent = 0
            while data := await server_r.read(65536):
                if watching.is_set():
                    room = self.cut_after - sent
                    if len(data) >= room:
                        client_w.write(data[:room])
                        await client_w.drain()
                        self.cuts += 1
                        return  # closing both sides below: the client sees the stream end
                    sent += len(data)
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
