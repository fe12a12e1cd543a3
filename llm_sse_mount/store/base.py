"""The stream store seam: a producer appends frames, any number of readers follow them.

A frame is ``(seq, event)``: seq starts at 0 and grows by one per frame with no gaps, so
``Last-Event-ID: <stream_id>:<seq>`` names exactly where a reader stopped. Stores keep finished
streams for ``retention`` seconds so late reconnects still get their tail.

Who calls what::

    route (NewStream)   create → append(Start) → lease(...) + reader(...) around the producer
    Producer            append(...) per upstream event, append([..., Done]) once at the end
                        wait_abandoned(grace) → cancel the upstream
    route (resume)      info → 404 / 204 / reader(...) + read(after)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..events import Frame, StreamEvent

__all__ = ["Frame", "StreamInfo", "StreamStore"]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """Where a stream stands: the seq of its last frame (-1 when empty), whether that frame
    is its ``Done``, who owns it (a digest of the principal; ``None``: whoever holds the id)
    and how many readers follow it now."""

    last_seq: int
    done: bool
    owner: str | None = None
    readers: int = 0


@runtime_checkable
class StreamStore(Protocol):
    """Where frames live between the producer and the readers."""

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        """Register a new, empty stream owned by ``owner`` (its producer is this process)."""
        ...

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        """Append events as the next frames; returns the seq of the last one. Appending a
        ``Done`` finishes the stream (nothing may follow it). Raises
        :class:`~llm_sse_mount.errors.StreamInterrupted` when the stream cannot take them
        (``stream_too_long``, ``store_unavailable``, ``stream_lost``); a batch that ends with
        ``Done`` is always accepted past the length limit, so every stream can end."""
        ...

    def read(self, stream_id: str, after: int = -1) -> AsyncIterator[list[Frame]]:
        """Batches of frames with ``seq > after``, live until the ``Done`` frame has been
        yielded. Raises :class:`~llm_sse_mount.errors.NotFound` for an unknown or expired
        stream, and yields an ``error``/``done`` pair of its own if the producer is lost."""
        ...

    def reader(self, stream_id: str) -> AbstractAsyncContextManager[None]:
        """Count a reader for as long as the context is open (producers stop when abandoned)."""
        ...

    def lease(
        self, stream_id: str, on_stop: Callable[[], object] | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Held by the producer for its whole run: tells readers (on any worker) that the
        stream is still being produced. A stream whose lease lapses before its ``Done`` is
        lost, and its readers get ``error{stream_lost}`` and ``done``. ``on_stop`` is called
        when the stream is stopped (:meth:`stop`, from any worker)."""
        ...

    async def stop(self, stream_id: str) -> bool:
        """End a running stream with ``done{cancelled}`` now, for every reader, and tell its
        producer (wherever it runs) to close the upstream. ``False`` if it was not running.
        The producer's next ``append`` then raises ``StreamInterrupted(code="cancelled")``."""
        ...

    async def wait_abandoned(self, stream_id: str, grace: float) -> None:
        """Return once the stream has had no reader for ``grace`` seconds in a row."""
        ...

    async def info(self, stream_id: str) -> StreamInfo | None:
        """The stream's position, or ``None`` if it is unknown or expired."""
        ...

    async def exists(self, stream_id: str) -> bool: ...

    async def aclose(self) -> None:
        """Release connections (the Redis store); the memory store has nothing to release."""
        ...
