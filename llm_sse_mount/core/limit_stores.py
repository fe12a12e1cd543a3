"""Where limit budgets live: :class:`MemoryLimitStore` (one process, the default) and
:class:`RedisLimitStore` (every worker shares one budget).

Two primitives serve every limit in :mod:`.limits`:

- ``gcra``: the generic cell rate algorithm. One number per key, the "theoretical arrival
  time": a budget of ``count`` per ``period`` may be spent in a burst and refills evenly, and
  the wait until the next unit fits is exact.
- slots: a set of leases per key (concurrency), each dropped when not refreshed for ``ttl``.

In Redis each operation is one Lua script: atomic on the server, timed by the server's clock
(workers' clocks do not matter), and every key it writes expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..errors import LLMSSEError, StreamInterrupted

if TYPE_CHECKING:
    from ..store.redis_client import AnyRedis

__all__ = ["GcraMode", "LimitStore", "MemoryLimitStore", "RedisLimitStore"]

logger = logging.getLogger("llm_sse_mount")

GcraMode = Literal["check", "hit", "force"]

#: Seconds of rounding error forgiven when a budget is exactly full.
_EPSILON = 1e-6


@runtime_checkable
class LimitStore(Protocol):
    """Where budgets live. Keys arrive already namespaced and hashed."""

    async def gcra(self, key: str, period: float, count: int, cost: int, mode: GcraMode) -> float:
        """Charge ``cost`` against ``count`` per ``period`` seconds; return the seconds to wait
        (0: allowed).

        ``check`` only looks, ``hit`` stores the charge when allowed, ``force`` always stores
        it (spent tokens cannot be refused)."""
        ...

    async def acquire(self, key: str, slot: str, limit: int, ttl: float) -> bool:
        """Take a slot if fewer than ``limit`` are held; slots unrefreshed for ``ttl`` lapse."""
        ...

    async def refresh(self, key: str, slot: str, ttl: float) -> None: ...

    async def release(self, key: str, slot: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryLimitStore:
    """Budgets in this process (the default): exact, and gone on restart."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._calls = 0

    async def gcra(self, key: str, period: float, count: int, cost: int, mode: GcraMode) -> float:
        now = self._clock()
        self._prune(now)
        debt = max(self._tat.get(key, now) - now, 0.0)
        after = debt + cost * period / count
        # Rounding must not refuse the last request of a full burst (60/7 * 7 > 60).
        wait = after - period
        if wait <= _EPSILON:
            wait = 0.0
        if mode == "force" or (mode == "hit" and wait == 0):
            self._tat[key] = now + after
        return wait

    async def acquire(self, key: str, slot: str, limit: int, ttl: float) -> bool:
        now = self._clock()
        held = self._slots.setdefault(key, {})
        for stale in [s for s, expiry in held.items() if expiry <= now]:
            del held[stale]
        if len(held) >= limit:
            return False
        held[slot] = now + ttl
        return True

    async def refresh(self, key: str, slot: str, ttl: float) -> None:
        held = self._slots.get(key)
        if held is not None and slot in held:
            held[slot] = self._clock() + ttl

    async def release(self, key: str, slot: str) -> None:
        held = self._slots.get(key)
        if held is not None:
            held.pop(slot, None)
            if not held:
                del self._slots[key]

    def _prune(self, now: float) -> None:
        # A budget whose arrival time has passed is full again: forgetting it changes nothing,
        # and keeps one-off clients (anonymous addresses) from growing the dict forever.
        self._calls += 1
        if self._calls % 1024 == 0:
            for key in [k for k, tat in self._tat.items() if tat <= now]:
                del self._tat[key]

    async def aclose(self) -> None:
        return None


# Times are the server's (TIME), so every worker agrees; milliseconds, as strings with three
# decimals, because Lua numbers turned into Redis replies lose their fraction.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period = tonumber(ARGV[1])
local interval = period / tonumber(ARGV[2])
local debt = (tonumber(redis.call('GET', KEYS[1])) or now) - now
if debt < 0 then debt = 0 end
local after = debt + tonumber(ARGV[3]) * interval
local wait = after - period
if wait <= 0.01 then wait = 0 end
local mode = ARGV[4]
if mode == 'force' or (mode == 'hit' and wait == 0) then
  local ttl = math.ceil(after)
  if ttl > 0 then
    redis.call('SET', KEYS[1], string.format('%.3f', now + after), 'PX', ttl)
  end
end
return string.format('%.3f', wait)
"""

_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

_REFRESH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""


class RedisLimitStore:
    """Budgets in Redis, shared by every worker that uses the same ``url`` and ``prefix``.

    ``url`` may be ``redis+cluster://`` for a Redis Cluster (every script touches one key);
    ``prefix`` namespaces the keys; ``timeout`` bounds every Redis call (seconds). Needs the
    ``redis`` extra (``redis.asyncio``). The connection opens on first use, in the event loop
    that serves requests. A Redis failure (or a Redis that does not answer within ``timeout``)
    refuses the request (503 ``limits_unavailable``): limits fail closed, since they guard
    a paid key.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "llm_sse:limits:",
        client: AnyRedis | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._client = client
        self._own_client = client is None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        # The URL may carry a password (redis://:pw@host): show the host part only.
        return f"RedisLimitStore({self.url.rpartition('@')[2]!r})"

    def _script(self, name: str, source: str) -> Any:
        if self._client is None:
            from ..store.redis_client import redis_client

            # Bounded waits: a Redis that hangs must refuse requests (503), not hang them.
            self._client = redis_client(
                self.url, socket_timeout=self.timeout, connect_timeout=self.timeout
            )
        if name not in self._scripts:
            self._scripts[name] = self._client.register_script(source)
        return self._scripts[name]

    async def _run(self, name: str, source: str, key: str, *args: Any) -> Any:
        try:
            script = self._script(name, source)
            return await script(keys=[self.prefix + key], args=list(args))
        except Exception as exc:
            if isinstance(exc, LLMSSEError):
                raise
            logger.warning("limits store failed: %s", type(exc).__name__)
            raise StreamInterrupted(
                "the rate limiter is unavailable; try again shortly",
                code="limits_unavailable",
                retry_after=1,
            ) from None

    async def gcra(self, key: str, period: float, count: int, cost: int, mode: GcraMode) -> float:
        wait = await self._run("gcra", _GCRA_LUA, key, period * 1000, count, cost, mode)
        return float(wait) / 1000

    async def acquire(self, key: str, slot: str, limit: int, ttl: float) -> bool:
        return bool(await self._run("acquire", _ACQUIRE_LUA, key, slot, limit, int(ttl * 1000)))

    async def refresh(self, key: str, slot: str, ttl: float) -> None:
        await self._run("refresh", _REFRESH_LUA, key, slot, int(ttl * 1000))

    async def release(self, key: str, slot: str) -> None:
        if self._client is None:
            return
        try:
            await self._client.zrem(self.prefix + key, slot)
        except Exception as exc:  # the slot lapses after slot_ttl anyway
            logger.warning("limits store: could not release a slot: %s", type(exc).__name__)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None and self._own_client:
            await client.aclose()
