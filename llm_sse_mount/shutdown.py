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
    def cancel(self, outcome: str) -> None: ...


class ShutdownSignal:
    """Quacks like the ``anyio.Event`` sse-starlette expects (``set``, ``is_set``, ``wait``)."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._live: set[Cancellable] = set()

    def set(self) -> None:
        if self._event.is_set():
            return
        self._event.set()
        for producer in list(self._live):
            producer.cancel("shutdown")

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def register(self, producer: Cancellable) -> None:
        """Track a live producer (cancelled at once if the server is already stopping)."""
        if self._event.is_set():
            producer.cancel("shutdown")
        else:
            self._live.add(producer)

    def unregister(self, producer: Cancellable) -> None:
        self._live.discard(producer)
