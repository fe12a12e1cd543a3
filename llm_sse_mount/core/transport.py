"""Dropping a client that stopped reading, which ASGI itself cannot do.

When a response ends, uvicorn closes its transport gracefully: asyncio then keeps the socket
open until the unsent bytes are flushed, which never happens if the client stopped reading. Such
sockets pile up, and a stopping worker waits for them forever. So when the mount gives up on a
client (``send_timeout``, or shutdown with bytes still unsent) it aborts the connection.

ASGI has no abort message. The server's transport is found by following the ``send`` callable
back to the server (through the closures and bound methods that middleware wraps it in); this
works with uvicorn's h11 and httptools protocols, on asyncio and on uvloop. Where no transport
is found (another server) nothing happens, and the server's own timeouts apply
(``--timeout-graceful-shutdown``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast

import anyio
from starlette.types import Send

__all__ = ["abort_connection", "drained", "server_transport"]

#: How many wrappers deep the search goes (middleware stacks are a handful deep).
_MAX_DEPTH = 12


def _next_objects(obj: Any) -> list[Any]:
    out: list[Any] = []
    owner = getattr(obj, "__self__", None)  # a bound method: the server's cycle, a responder
    if owner is not None:
        out.append(owner)
    for cell in getattr(obj, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            out.append(cell.cell_contents)
    for name in ("send", "_send", "app"):  # responders that keep the next send as an attribute
        inner = getattr(obj, name, None) if not isinstance(obj, type) else None
        if callable(inner):
            out.append(inner)
    wrapped = getattr(obj, "__wrapped__", None) or getattr(obj, "func", None)  # functools
    if callable(wrapped):
        out.append(wrapped)
    return out


def _is_transport(obj: object) -> bool:
    # By what it can do, not by class: uvloop's transports (uvicorn[standard], what production
    # installs) are not asyncio.WriteTransport subclasses, and matching the class left every
    # stuck client on uvloop unaborted (the benchmark's uvicorn[standard] runs found it).
    if isinstance(obj, asyncio.WriteTransport):
        return True
    return all(
        callable(getattr(obj, name, None))
        for name in ("abort", "is_closing", "get_write_buffer_size")
    )


def server_transport(send: Send) -> asyncio.WriteTransport | None:
    """The server's transport behind ``send``, if it can be found."""
    frontier: list[Any] = [send]
    seen: set[int] = set()
    for _ in range(_MAX_DEPTH):
        following: list[Any] = []
        for obj in frontier:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            transport = getattr(obj, "transport", None)
            if _is_transport(transport):
                return cast(asyncio.WriteTransport, transport)
            following.extend(_next_objects(obj))
        if not following:
            return None
        frontier = following
    return None


def abort_connection(send: Send, *, only_if_unsent: bool = False) -> bool:
    """Abort the client's connection now (unsent bytes are dropped). With ``only_if_unsent``,
    only when bytes are still waiting to be sent. Returns whether it aborted."""
    transport = server_transport(send)
    if transport is None or (transport.is_closing() and not _has_unsent(transport)):
        return False
    if only_if_unsent and not _has_unsent(transport):
        return False
    transport.abort()
    return True


def _has_unsent(transport: asyncio.WriteTransport) -> bool:
    size: Callable[[], int] | None = getattr(transport, "get_write_buffer_size", None)
    return size is not None and size() > 0


async def drained(send: Send, within: float) -> None:
    """Wait up to ``within`` seconds for the client to take the bytes already sent."""
    transport = server_transport(send)
    with anyio.move_on_after(within):
        # The transport has no "drained" event of its own to wait on; poll its buffer.
        while transport is not None and _has_unsent(transport):  # noqa: ASYNC110
            await anyio.sleep(0.05)
