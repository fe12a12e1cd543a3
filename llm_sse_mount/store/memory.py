"""In-process stream store: the default, for one worker process.

Readers wait on an ``anyio.Event`` that the producer replaces on every append, so one append
wakes every reader once; a reader that wakes late catches up in batches of at most ``batch``
frames (so a reader that stopped reading is never handed a whole long answer at once).
Expired streams are swept lazily on ``create`` (no background task to own or leak), at most
once per ``SWEEP_EVERY`` seconds: a sweep walks every stream, so sweeping on each create made a
burst of N new streams cost O(N x streams kept) (the benchmark's profile showed it at 512
streams). An expired stream is never served in between: every lookup checks expiry itself. A
finished stream expires ``retention`` seconds after its end; one that still has readers gets at
most ``reader_hold`` seconds more, so no reader that stopped reading keeps a stream (and its
memory) forever.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from ..errors import ConfigError, NotFound, StreamInterrupted
from ..events import Done, StreamEvent
from .base import Frame, StreamInfo

__all__ = ["MemoryStore"]

#: Seconds between two sweeps of expired streams (bounded by the retention itself).
SWEEP_EVERY = 1.0


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
    owner: str | None = None
    stopped: bool = False
    on_stop: list[Callable[[], object]] = field(default_factory=list)


class MemoryStore:
    """Frames in a dict of lists. ``retention``: seconds a finished stream stays readable;
    ``max_frames``: frames one stream may hold (an answer longer than that is cut with an
    error rather than growing without bound); ``batch``: the most frames one read yields."""

    def __init__(
        self,
        *,
        retention: float = 300.0,
        max_frames: int = 100_000,
        batch: int = 256,
        reader_hold: float = 60.0,
    ) -> None:
        if batch < 1 or max_frames < 1:
            raise ConfigError("max_frames and batch must be at least 1")
        self.retention = retention
        self.max_frames = max_frames
        self.batch = batch
        self.reader_hold = reader_hold
        self._streams: dict[str, _Stream] = {}
        self._swept_at = float("-inf")

    def __len__(self) -> int:
        return len(self._streams)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < min(SWEEP_EVERY, self.retention):
            return
        self._swept_at = now
        cutoff = now - self.retention
        expired = [sid for sid, s in self._streams.items() if self._expired(s, cutoff)]
        for sid in expired:
            del self._streams[sid]

    def _get(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or self._expired(stream, time.monotonic() - self.retention):
            raise NotFound("no such stream, or it has expired", code="stream_not_found")
        return stream

    def _expired(self, stream: _Stream, cutoff: float) -> bool:
        if not stream.done or stream.finished_at > cutoff:
            return False
        return stream.readers == 0 or stream.finished_at <= cutoff - self.reader_hold

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        self._sweep()
        if stream_id in self._streams:
            raise ValueError(f"stream {stream_id!r} exists already")
        self._streams[stream_id] = _Stream(owner=owner)

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        stream = self._streams[stream_id]
        if stream.stopped:
            raise StreamInterrupted("the stream was stopped", code="cancelled")
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

    async def stop(self, stream_id: str) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None or stream.done:
            return False
        await self.append(stream_id, [Done("cancelled")])
        stream.stopped = True
        for callback in list(stream.on_stop):
            callback()
        return True

    async def read(self, stream_id: str, after: int = -1) -> AsyncIterator[list[Frame]]:
        stream = self._get(stream_id)
        pos = max(after + 1, 0)
        frames = stream.frames
        while True:
            end = min(len(frames), pos + self.batch)
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

    @asynccontextmanager
    async def lease(
        self, stream_id: str, on_stop: Callable[[], object] | None = None
    ) -> AsyncIterator[None]:
        # Producer and readers share this process: if it dies, so do they. Nothing to lease,
        # only a stop to pass on.
        stream = self._streams[stream_id]
        if on_stop is not None:
            stream.on_stop.append(on_stop)
        try:
            yield
        finally:
            if on_stop is not None:
                stream.on_stop.remove(on_stop)

    async def info(self, stream_id: str) -> StreamInfo | None:
        try:
            stream = self._get(stream_id)
        except NotFound:
            return None
        return StreamInfo(len(stream.frames) - 1, stream.done, stream.owner, stream.readers)

    async def exists(self, stream_id: str) -> bool:
        try:
            self._get(stream_id)
        except NotFound:
            return False
        return True

    async def aclose(self) -> None:
        self._streams.clear()
