"""The mount's shutdown signal: set once when the server starts to stop.

sse-starlette detects the server stopping (uvicorn's exit flag) and calls ``set()`` on the
event each response was given; a mount hands every response this one object, so the first
response to notice tells every live producer of the mount at once. Producers are cancelled
directly rather than each keeping a task that waits on an event (a task per stream is
memory per stream).
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["Cancellable", "ShutdownSignal"]


class Cancellable(Protocol):
    def shut_down(self) -> None: ...


class ShutdownSignal:
    """Quacks like the ``anyio.Event`` sse-starlette expects (``set``, ``is_set``, ``wait``).

    Built with the mount, outside any event loop: the ``anyio.Event`` it waits on is made on
    first use, inside the loop."""

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None
        self._live: set[Cancellable] = set()

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        if self._event is not None:
            self._event.set()
        for producer in list(self._live):
            producer.shut_down()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    def register(self, producer: Cancellable) -> None:
        """Track a live producer (cancelled at once if the server is already stopping)."""
        if self._set:
            producer.shut_down()
        else:
            self._live.add(producer)

    def unregister(self, producer: Cancellable) -> None:
        self._live.discard(producer)
