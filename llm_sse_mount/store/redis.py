"""Redis stream store: streams shared by several worker processes, so a reconnect may land on
any worker and still continue exactly where it stopped.

Keys, all under ``prefix`` and every one with an expiry (a killed process leaves nothing behind
for longer than ``retention`` + two leases)::

    {prefix}{{id}}:f   Redis Stream of frames: entry id ``0-<seq+1>``, fields e=<event>, d=<json>
    {prefix}{{id}}:m   hash: last (seq of the last frame), done (0/1), end (unix time of done)
    {prefix}{{id}}:l   the producer's lease (PX lease_ttl), refreshed every lease_ttl/3
    {prefix}{{id}}:r   sorted set of readers: member = reader token, score = expiry (unix ms)
    ({id} in braces is a Redis Cluster hash tag: one stream's keys share a slot.)

Hot path: one ``EVALSHA`` per append (atomic, so Redis assigns the seq and no frame is written
twice). Readers ``XREAD BLOCK COUNT``: a reader that fell behind catches up in one round trip.

A producer that dies stops refreshing its lease. A reader whose ``XREAD`` times out checks the
lease; once it has lapsed, the reader appends ``error{stream_lost}`` + ``done`` itself, with
the same script guarded by "no lease and not done", so every reader (and every later
reconnect) sees the same frames with the same seqs, at most ``lease_ttl`` + ``block`` late.

Redis errors become ``store_unavailable`` (503 before the stream; an ``error`` + ``done``
pair for a reader that is already streaming).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import anyio

from ..codec import decode, encode
from ..errors import ConfigError, NotFound, StreamInterrupted
from ..events import Done, Error, Frame, StreamEvent
from ..redaction import log_id
from ..tasks import beside, every
from .base import StreamInfo
from .redis_client import AnyRedis, redis_client
from .redis_presence import STORE_ERRORS, ReaderPresence
from .redis_scripts import APPEND, CREATE, HEARTBEAT

__all__ = ["RedisStore"]

logger = logging.getLogger("llm_sse_mount")


def _unavailable(exc: BaseException) -> StreamInterrupted:
    return StreamInterrupted(
        f"the stream store is unavailable ({type(exc).__name__})", code="store_unavailable"
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(response: Any) -> list[tuple[Any, Any]]:
    """XREAD's answer for one key, in RESP2 (list) or RESP3 (dict) shape."""
    if not response:
        return []
    if isinstance(response, dict):
        (entries,) = response.values()
        return list(entries[0] if entries and isinstance(entries[0], list) else entries)
    return list(response[0][1])


class RedisStore:
    """Frames in Redis, for several worker processes (see the module docstring for the keys).

    ``url_or_client``: a ``redis://`` or ``redis+cluster://`` URL (:mod:`.redis_client`; the
    store owns that client and closes it in :meth:`aclose`), or a ``Redis`` / ``RedisCluster``
    of the host's (its ``socket_timeout`` longer than ``block``). ``prefix``: key prefix, so
    several apps can share one Redis. ``retention``: seconds a finished stream stays readable.
    ``max_frames``: frames one stream may hold (a longer answer is cut with
    ``error{stream_too_long}``). ``lease_ttl``: seconds after which a producer that stopped
    heartbeating (its process died) is declared lost. ``block``: the longest a reader waits in
    one ``XREAD`` before checking the lease.

    Example::

        store = RedisStore("redis://127.0.0.1:6379/0", prefix="myapp:llm:")
        app.mount("/llm", LLMMount(store=store, resume_grace=10))
    """

    def __init__(
        self,
        url_or_client: str | AnyRedis,
        *,
        prefix: str = "llm_sse:",
        retention: float = 300.0,
        max_frames: int = 100_000,
        lease_ttl: float = 4.0,
        block: float = 1.0,
        batch: int = 512,
    ) -> None:
        if lease_ttl <= 0 or block <= 0 or max_frames < 1 or batch < 1:
            raise ConfigError("lease_ttl and block must be positive, max_frames and batch >= 1")
        if isinstance(url_or_client, str):
            # Longer than one blocking XREAD, short enough that a dead network is noticed.
            timeout = block + 5.0
            self.client = redis_client(url_or_client, socket_timeout=timeout, connect_timeout=2.0)
            self._owns_client = True
        else:
            self.client = url_or_client
            self._owns_client = False
        self.prefix = prefix
        self.retention = retention
        self.max_frames = max_frames
        self.lease_ttl = lease_ttl
        self.block = block
        self.batch = batch
        self._lease_ms = max(1, int(lease_ttl * 1000))
        # Running streams outlive a dead producer long enough for readers to declare it lost.
        self._running_ms = int((2 * lease_ttl + retention) * 1000)
        # Keep finished streams physically a little longer than ``retention`` (which info()
        # enforces exactly): a reader blocked in XREAD must still find the done frame.
        self._done_ms = int((max(retention, 0.0) + 10.0) * 1000)
        self._presence = ReaderPresence(
            self.client, lambda sid: self._keys(sid)[3], lease_ttl, self._running_ms
        )
        self._stoppers: dict[str, list[Callable[[], object]]] = {}
        self._append_script = self.client.register_script(APPEND)
        self._create_script = self.client.register_script(CREATE)
        self._heartbeat_script = self.client.register_script(HEARTBEAT)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, retention={self.retention!r})"

    def _keys(self, stream_id: str) -> tuple[str, str, str, str]:
        # The {hash tag} puts a stream's keys in one Redis Cluster slot, as its scripts need.
        base = f"{self.prefix}{{{stream_id}}}"
        return f"{base}:f", f"{base}:m", f"{base}:l", f"{base}:r"

    # --- producer side ---------------------------------------------------------------------

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        _, meta, lease, _ = self._keys(stream_id)
        try:
            created = await self._create_script(
                keys=[meta, lease],
                args=[self._token(), self._lease_ms, self._running_ms, owner or ""],
            )
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if not created:
            raise ValueError(f"stream {stream_id!r} exists already")

    @staticmethod
    def _token() -> str:
        return secrets.token_hex(8)

    async def _run_append(
        self,
        stream_id: str,
        events: Sequence[StreamEvent],
        *,
        only_if_lost: bool = False,
        stop: bool = False,
    ) -> int:
        ends = isinstance(events[-1], Done)
        args: list[str | int | float] = [
            self._running_ms,
            self._done_ms,
            int(ends),
            self.max_frames,
            time.time(),
            int(only_if_lost),
            int(stop),
        ]
        for event in events:
            args.extend(encode(event))
        result = await self._append_script(keys=self._keys(stream_id), args=args)
        return int(result)

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        try:
            last = await self._run_append(stream_id, events)
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if last == -3:
            raise StreamInterrupted(
                "the answer exceeded the stream's frame limit", code="stream_too_long"
            )
        if last == -2:
            # A reader declared this producer lost (its lease lapsed, e.g. the event loop was
            # blocked for longer than lease_ttl); the stream has ended without us.
            raise StreamInterrupted("the stream was declared lost", code="stream_lost")
        if last == -1:
            raise StreamInterrupted("the stream expired from the store", code="stream_lost")
        if last == -5:
            raise StreamInterrupted("the stream was stopped", code="cancelled")
        return last

    async def stop(self, stream_id: str) -> bool:
        try:
            last = await self._run_append(stream_id, (Done("cancelled"),), stop=True)
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if last < 0:
            return False
        # A producer in this process hears it at once; one on another worker at its next
        # append (its next upstream token) or, if its upstream is silent, its next heartbeat.
        for callback in list(self._stoppers.get(stream_id, ())):
            callback()
        return True

    @asynccontextmanager
    async def lease(
        self, stream_id: str, on_stop: Callable[[], object] | None = None
    ) -> AsyncIterator[None]:
        token = self._token()
        keys = self._keys(stream_id)
        beat = self.lease_ttl / 3
        stoppers = self._stoppers.setdefault(stream_id, [])
        if on_stop is not None:
            stoppers.append(on_stop)

        async def refresh() -> None:
            running = await self._heartbeat_script(
                keys=[keys[1], keys[2], keys[0], keys[3]],
                args=[token, self._lease_ms, self._running_ms],
            )
            if not running and on_stop is not None:
                on_stop()  # ended without us: stopped (or declared lost) on another worker

        async def heartbeat() -> None:
            await every(beat, refresh, "lease heartbeat", errors=STORE_ERRORS)

        try:
            async with beside(heartbeat):
                yield
        finally:
            # Normally the done frame has removed the lease already. If the producer ended
            # without one, readers learn it at their next XREAD timeout instead of a lease later.
            if on_stop is not None:
                stoppers.remove(on_stop)
            if not stoppers:
                self._stoppers.pop(stream_id, None)
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(*STORE_ERRORS):
                await self.client.delete(keys[2])

    # --- readers ---------------------------------------------------------------------------

    def reader(self, stream_id: str) -> AbstractAsyncContextManager[None]:
        return self._presence.reader(stream_id)

    async def wait_abandoned(self, stream_id: str, grace: float) -> None:
        await self._presence.wait_abandoned(stream_id, grace)

    async def read(self, stream_id: str, after: int = -1) -> AsyncIterator[list[Frame]]:
        start = await self.info(stream_id)
        if start is None:
            raise NotFound("no such stream, or it has expired", code="stream_not_found")
        last = max(after, -1)
        if start.done and last >= start.last_seq:
            return
        frames_key = self._keys(stream_id)[0]
        block_ms = int(self.block * 1000)
        while True:
            try:
                response = await self.client.xread(
                    {frames_key: f"0-{last + 1}"}, count=self.batch, block=block_ms
                )
            except STORE_ERRORS as exc:
                logger.warning("stream %s: reading failed: %r", log_id(stream_id), exc)
                yield self._closing(last, "store_unavailable", "the stream store is unavailable")
                return
            entries = _entries(response)
            if entries:
                batch: list[Frame] = []
                for entry_id, fields in entries:
                    seq = int(_text(entry_id).partition("-")[2]) - 1
                    data = _text(fields[b"d"] if b"d" in fields else fields["d"])
                    name = _text(fields[b"e"] if b"e" in fields else fields["e"])
                    batch.append((seq, decode(name, data)))
                last = batch[-1][0]
                yield batch
                if isinstance(batch[-1][1], Done):
                    return
                continue
            # Nothing new for a whole block: is anyone still producing this stream?
            try:
                lost = await self._declare_lost(stream_id)
                if lost == -2:
                    # Finished, yet nothing came: this reader started past the done frame.
                    now = await self.info(stream_id)
                    if now is None or (now.done and last >= now.last_seq):
                        return
            except (*STORE_ERRORS, StreamInterrupted) as exc:
                logger.warning("stream %s: reading failed: %r", log_id(stream_id), exc)
                yield self._closing(last, "store_unavailable", "the stream store is unavailable")
                return
            if lost == -1:
                # Expired while we waited (a dead producer and nobody reading for a while).
                yield self._closing(last, "stream_lost", "the stream's producer was lost")
                return

    async def _declare_lost(self, stream_id: str) -> int:
        """If the producer's lease has lapsed, end the stream with error + done for everyone.
        Returns the script's answer (-4: still leased, -2: done already, -1: gone)."""
        if await self.client.exists(self._keys(stream_id)[2]):
            return -4
        lost = await self._run_append(
            stream_id,
            (Error("stream_lost", "the stream's producer was lost", True), Done("error")),
            only_if_lost=True,
        )
        if lost >= 0:
            logger.warning("stream %s: producer lease lapsed; declared lost", log_id(stream_id))
        return lost

    @staticmethod
    def _closing(last: int, code: str, message: str) -> list[Frame]:
        # Not stored (the store is what failed): ids continue from what this reader saw.
        return [(last + 1, Error(code, message, True)), (last + 2, Done("error"))]

    # --- lookups ---------------------------------------------------------------------------

    async def info(self, stream_id: str) -> StreamInfo | None:
        _, meta, _, readers = self._keys(stream_id)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(meta, ["last", "done", "end", "owner"])
                pipe.zcount(readers, int(time.time() * 1000), "+inf")
                (last, done, end, owner), count = await pipe.execute()
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if last is None:
            return None
        finished = done is not None and _text(done) == "1"
        if finished and end is not None and float(_text(end)) + self.retention < time.time():
            return None
        return StreamInfo(int(last), finished, _text(owner) if owner else None, int(count))

    async def exists(self, stream_id: str) -> bool:
        return await self.info(stream_id) is not None

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
