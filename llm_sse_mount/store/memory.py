"""In-process stream store: the default, for one worker process.

Readers wait on an ``anyio.Event`` that the producer replaces on every append, so one append
wakes every reader once and a reader that wakes late drains everything it missed in one batch.
Expired streams are swept lazily on ``create`` (no background task to own or leak).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import anyio

from ..errors import NotFound, StreamInterrupted
from ..events import Done, StreamEvent
from .base import Frame, StreamInfo

__all__ = ["MemoryStore"]


@dataclass(eq=False)
class _Stream:
    frames: list[StreamEvent] = field(default_factory=list)
    # Created by the first reader that has to wait, set and dropped by the next append: a
    # stream whose readers keep up allocates no event per frame.
    changed: anyio.Event | None = None
    done: bool = False
    finished_at: float = 0.0
    readers: int = 0
    readers_changed: anyio.Event | None = None


class MemoryStore:
    """Frames in a dict of lists. ``retention``: seconds a finished stream stays readable;
    ``max_frames``: frames one stream may hold (an answer longer than that is cut with an
    error rather than growing without bound)."""

    def __init__(self, *, retention: float = 300.0, max_frames: int = 100_000) -> None:
        self.retention = retention
        self.max_frames = max_frames
        self._streams: dict[str, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self.retention
        expired = [
            sid
            for sid, s in self._streams.items()
            if s.done and s.readers == 0 and s.finished_at <= cutoff
        ]
        for sid in expired:
            del self._streams[sid]

    def _get(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or (
            stream.done
            and stream.readers == 0
            and stream.finished_at <= time.monotonic() - self.retention
        ):
            raise NotFound("no such stream, or it has expired", code="stream_not_found")
        return stream

    async def create(self, stream_id: str) -> None:
        self._sweep()
        if stream_id in self._streams:
            raise ValueError(f"stream {stream_id!r} exists already")
        self._streams[stream_id] = _Stream()

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        stream = self._streams[stream_id]
        if stream.done:
            raise RuntimeError("append after done")
        frames = stream.frames
        ends = isinstance(events[-1], Done)
        # The closing error + done may pass the limit: a stream cut for length must still end.
        if not ends and len(frames) + len(events) > self.max_frames:
            raise StreamInterrupted(
                "the answer exceeded the stream's frame limit", code="stream_too_long"
            )
        frames.extend(events)
        if ends:
            stream.done = True
            stream.finished_at = time.monotonic()
        changed = stream.changed
        if changed is not None:
            stream.changed = None
            changed.set()
        return len(frames) - 1

    async def read(self, stream_id: str, after: int = -1) -> AsyncIterator[list[Frame]]:
        stream = self._get(stream_id)
        pos = max(after + 1, 0)
        frames = stream.frames
        while True:
            end = len(frames)
            if pos < end:
                batch = list(enumerate(frames[pos:end], pos))
                pos = end
                yield batch
                continue
            if stream.done:
                return
            if stream.changed is None:
                stream.changed = anyio.Event()
            await stream.changed.wait()

    @asynccontextmanager
    async def reader(self, stream_id: str) -> AsyncIterator[None]:
        stream = self._get(stream_id)
        stream.readers += 1
        self._notify_readers(stream)
        try:
            yield
        finally:
            stream.readers -= 1
            self._notify_readers(stream)

    @staticmethod
    def _notify_readers(stream: _Stream) -> None:
        event = stream.readers_changed
        if event is not None:
            stream.readers_changed = None
            event.set()

    @staticmethod
    async def _readers_change(stream: _Stream) -> None:
        if stream.readers_changed is None:
            stream.readers_changed = anyio.Event()
        await stream.readers_changed.wait()

    async def wait_abandoned(self, stream_id: str, grace: float) -> None:
        stream = self._streams[stream_id]
        while True:
            while stream.readers > 0:
                await self._readers_change(stream)
            if grace <= 0:
                return
            with anyio.move_on_after(grace):
                await self._readers_change(stream)
                continue
            if stream.readers == 0:
                return

    def lease(self, stream_id: str) -> AbstractAsyncContextManager[None]:
        # Producer and readers share this process: if it dies, so do they. Nothing to lease.
        return nullcontext()

    async def info(self, stream_id: str) -> StreamInfo | None:
        try:
            stream = self._get(stream_id)
        except NotFound:
            return None
        return StreamInfo(len(stream.frames) - 1, stream.done)

    async def exists(self, stream_id: str) -> bool:
        try:
            self._get(stream_id)
        except NotFound:
            return False
        return True

    async def aclose(self) -> None:
        self._streams.clear()
