"""Who reads a Redis-stored stream: readers on every worker, so its producer knows when the
last one has left (and the resume grace starts).

Each reader keeps an entry in the stream's sorted set of readers (score: its expiry),
refreshed every ``lease_ttl / 3``; a dead worker's readers expire by their score. Readers in
this process are also counted locally, so the producer's ``wait_abandoned`` wakes at once when
the reader beside it leaves (the common case) instead of polling Redis.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
from redis.exceptions import RedisError

from ..redaction import log_id
from ..tasks import beside, every
from .redis_client import AnyRedis

__all__ = ["STORE_ERRORS", "ReaderPresence"]

#: What a Redis call raises when Redis is away (the store turns it into store_unavailable).
STORE_ERRORS = (RedisError, OSError)

logger = logging.getLogger("llm_sse_mount")


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


class ReaderPresence:
    """Reader counting for :class:`~.redis.RedisStore` (one per store)."""

    def __init__(
        self,
        client: AnyRedis,
        readers_key: Callable[[str], str],
        lease_ttl: float,
        running_ms: int,
    ) -> None:
        self.client = client
        self._readers_key = readers_key
        self.lease_ttl = lease_ttl
        self._running_ms = running_ms
        self._poll = min(0.5, lease_ttl / 4)
        self._local: dict[str, _Local] = {}

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
        token = secrets.token_hex(8)
        readers = self._readers_key(stream_id)
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
                self.lease_ttl / 3, present, "reader heartbeat", first=True, errors=STORE_ERRORS
            )

        try:
            async with beside(heartbeat):
                yield
        finally:
            # Leave Redis first: a producer woken by notify() must not count us there.
            # On a Redis error the entry still expires by its score.
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(*STORE_ERRORS):
                await self.client.zrem(readers, token)
            local.count -= 1
            local.notify()
            self._release_local(stream_id, local)

    async def _readers(self, stream_id: str, local: _Local) -> int:
        if local.count:
            return local.count
        try:
            now_ms = int(time.time() * 1000)
            count = await self.client.zcount(self._readers_key(stream_id), now_ms, "+inf")
        except STORE_ERRORS as exc:
            logger.warning("stream %s: cannot count remote readers: %r", log_id(stream_id), exc)
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
