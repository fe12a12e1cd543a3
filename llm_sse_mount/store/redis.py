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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..codec import decode, encode
from ..errors import ConfigError, NotFound, StreamInterrupted
from ..events import Done, Error, Frame, StreamEvent
from ..tasks import beside, every
from .base import StreamInfo
from .redis_scripts import APPEND, CREATE, HEARTBEAT

__all__ = ["RedisStore"]

logger = logging.getLogger("llm_sse_mount")

_STORE_ERRORS = (RedisError, OSError)


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


@dataclass(eq=False)
class _Local:
    """Readers of one stream in this process, so the producer's ``wait_abandoned`` wakes at
    once when the reader beside it leaves (the common case) without polling Redis."""

    count: int = 0
    waiters: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def notify(self) -> None:
        event, self.changed = self.changed, anyio.Event()
        event.set()


class RedisStore:
    """Frames in Redis, for several worker processes (see the module docstring for the keys).

    ``url_or_client``: a ``redis://`` URL (the store then owns its client and closes it in
    :meth:`aclose`) or a ``redis.asyncio.Redis`` of the host's (its ``socket_timeout`` must
    be longer than ``block``). ``prefix``: key prefix, so several apps can share one Redis.
    ``retention``: seconds a finished stream stays readable. ``max_frames``: frames one
    stream may hold (a longer answer is cut with ``error{stream_too_long}``). ``lease_ttl``:
    seconds after which a producer that stopped heartbeating (its process died) is declared
    lost. ``block``: the longest a reader waits in one ``XREAD`` before checking the lease.

    Example::

        store = RedisStore("redis://127.0.0.1:6379/0", prefix="myapp:llm:")
        app.mount("/llm", LLMMount(store=store, resume_grace=10))
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
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
            self.client = aioredis.Redis.from_url(
                url_or_client,
                socket_connect_timeout=2.0,
                # Longer than one blocking XREAD, short enough that a dead network is noticed.
                socket_timeout=block + 5.0,
            )
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
        self._poll = min(0.5, lease_ttl / 4)
        self._local: dict[str, _Local] = {}
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

    async def create(self, stream_id: str) -> None:
        _, meta, lease, _ = self._keys(stream_id)
        try:
            created = await self._create_script(
                keys=[meta, lease], args=[self._token(), self._lease_ms, self._running_ms]
            )
        except _STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if not created:
            raise ValueError(f"stream {stream_id!r} exists already")

    @staticmethod
    def _token() -> str:
        return secrets.token_hex(8)

    async def _run_append(
        self, stream_id: str, events: Sequence[StreamEvent], *, only_if_lost: bool = False
    ) -> int:
        ends = isinstance(events[-1], Done)
        args: list[str | int | float] = [
            self._running_ms,
            self._done_ms,
            int(ends),
            self.max_frames,
            time.time(),
            int(only_if_lost),
        ]
        for event in events:
            args.extend(encode(event))
        result = await self._append_script(keys=self._keys(stream_id), args=args)
        return int(result)

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        try:
            last = await self._run_append(stream_id, events)
        except _STORE_ERRORS as exc:
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
        return last

    @asynccontextmanager
    async def lease(self, stream_id: str) -> AsyncIterator[None]:
        token = self._token()
        keys = self._keys(stream_id)
        beat = self.lease_ttl / 3

        async def refresh() -> None:
            await self._heartbeat_script(
                keys=[keys[1], keys[2], keys[0], keys[3]],
                args=[token, self._lease_ms, self._running_ms],
            )

        async def heartbeat() -> None:
            await every(beat, refresh, "lease heartbeat", errors=_STORE_ERRORS)

        try:
            async with beside(heartbeat):
                yield
        finally:
            # Normally the done frame has removed the lease already. If the producer ended
            # without one, readers learn it at their next XREAD timeout instead of a lease later.
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(*_STORE_ERRORS):
                await self.client.delete(keys[2])

    # --- readers ---------------------------------------------------------------------------

    def _local_state(self, stream_id: str) -> _Local:
        local = self._local.get(stream_id)
        if local is None:
            local = self._local[stream_id] = _Local()
        return local

    def _release_local(self, stream_id: str, local: _Local) -> None:
        if local.count == 0 and local.waiters == 0:
            self._local.pop(stream_id, None)

    @asynccontextmanager
    async def reader(self, stream_id: str) -> AsyncIterator[None]:
        # Never raises for Redis trouble: presence is best effort, and read() reports the
        # outage to the client as an error frame.
        token = self._token()
        _, _, _, readers = self._keys(stream_id)
        local = self._local_state(stream_id)
        local.count += 1
        local.notify()

        async def present() -> None:
            expires = int((time.time() + self.lease_ttl) * 1000)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(readers, {token: expires})
                pipe.pexpire(readers, self._running_ms)
                await pipe.execute()

        async def heartbeat() -> None:
            await every(
                self.lease_ttl / 3, present, "reader heartbeat", first=True, errors=_STORE_ERRORS
            )

        try:
            async with beside(heartbeat):
                yield
        finally:
            # Leave Redis first: a producer woken by notify() must not count us there.
            # On a Redis error the entry still expires by its score.
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(*_STORE_ERRORS):
                await self.client.zrem(readers, token)
            local.count -= 1
            local.notify()
            self._release_local(stream_id, local)

    async def _readers(self, stream_id: str, local: _Local) -> int:
        if local.count:
            return local.count
        try:
            now_ms = int(time.time() * 1000)
            count = await self.client.zcount(self._keys(stream_id)[3], now_ms, "+inf")
        except _STORE_ERRORS as exc:
            logger.warning("stream %s: cannot count remote readers: %r", stream_id, exc)
            return 0
        return int(count)

    async def wait_abandoned(self, stream_id: str, grace: float) -> None:
        local = self._local_state(stream_id)
        local.waiters += 1
        try:
            empty_since: float | None = None
            while True:
                changed = local.changed
                count = await self._readers(stream_id, local)
                now = anyio.current_time()
                if count:
                    empty_since = None
                    # Local readers wake us when they leave; remote ones are polled.
                    timeout = self._poll if not local.count else float("inf")
                else:
                    if empty_since is None:
                        empty_since = now
                    left = grace - (now - empty_since)
                    if left <= 0:
                        return
                    timeout = min(self._poll, left)
                with anyio.move_on_after(timeout):
                    await changed.wait()
        finally:
            local.waiters -= 1
            self._release_local(stream_id, local)

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
            except _STORE_ERRORS as exc:
                logger.warning("stream %s: reading failed: %r", stream_id, exc)
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
            except (*_STORE_ERRORS, StreamInterrupted) as exc:
                logger.warning("stream %s: reading failed: %r", stream_id, exc)
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
            logger.warning("stream %s: producer lease lapsed; declared lost", stream_id)
        return lost

    @staticmethod
    def _closing(last: int, code: str, message: str) -> list[Frame]:
        # Not stored (the store is what failed): ids continue from what this reader saw.
        return [(last + 1, Error(code, message, True)), (last + 2, Done("error"))]

    # --- lookups ---------------------------------------------------------------------------

    async def info(self, stream_id: str) -> StreamInfo | None:
        try:
            last, done, end = await self.client.hmget(
                self._keys(stream_id)[1], ["last", "done", "end"]
            )
        except _STORE_ERRORS as exc:
            raise _unavailable(exc) from exc
        if last is None:
            return None
        finished = done is not None and _text(done) == "1"
        if finished and end is not None and float(_text(end)) + self.retention < time.time():
            return None
        return StreamInfo(int(last), finished)

    async def exists(self, stream_id: str) -> bool:
        return await self.info(stream_id) is not None

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
