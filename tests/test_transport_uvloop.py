"""The abort path finds the server's transport on uvloop too (uvicorn[standard]): its
transports are not ``asyncio.WriteTransport`` subclasses, so matching by class missed them and
left clients that stopped reading unaborted."""

from __future__ import annotations

import asyncio

import pytest

from llm_sse_mount.core.transport import abort_connection, server_transport

uvloop = pytest.importorskip("uvloop")


class _Cycle:
    """Stands in for uvicorn's request cycle: the transport is an attribute of ``send``'s
    owner, as in uvicorn's h11 and httptools protocols."""

    def __init__(self, transport: object) -> None:
        self.transport = transport

    async def send(self, message: object) -> None:  # the bound method the search starts from
        pass


def test_a_uvloop_transport_is_found_and_aborted_behind_a_wrapped_send() -> None:
    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        assert not isinstance(transport, asyncio.WriteTransport)  # why the class test failed
        cycle = _Cycle(transport)

        async def middleware_send(message: object) -> None:  # a closure over the next send
            await cycle.send(message)

        try:
            found = server_transport(middleware_send) is transport
            aborted = abort_connection(middleware_send)
            closing = transport.is_closing()
        finally:
            transport.abort()  # idempotent; without the fix nothing else closes it
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        return found, aborted, closing

    assert uvloop.run(main()) == (True, True, True)
