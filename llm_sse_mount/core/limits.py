"""Limits per principal: requests per period, concurrent streams, tokens per minute.

::

    Limiter(Limits(requests="60/minute", concurrent=2, tokens_per_minute=20_000))
      .admit(key)  →  LimitLease      (or RateLimited, 429 with Retry-After)
          tokens check   refused while the principal is over its token budget
          concurrency    a slot taken, refused when every slot is busy (nothing spent)
          requests hit   one request counted, refused past the rate (the slot handed back)
      lease.record_usage(usage)      tokens counted as the upstream reports them
      lease.release()                the slot freed when the stream ends or its client leaves

Requests and tokens use GCRA (the generic cell rate algorithm): one timestamp per key (the
"theoretical arrival time"), so a full budget may be spent in a burst and then refills evenly,
with an exact ``Retry-After``. Tokens are only known after the upstream spent them, so they
are always counted (the budget can go into debt) and the next request waits until it is paid
back.

Budgets live in a store (:mod:`.limit_stores`): :class:`MemoryLimitStore` (one process, the
default) or :class:`RedisLimitStore` (several workers share one budget). Concurrency slots are
leases that the holder refreshes, so a worker that dies cannot hold slots for longer than
``slot_ttl``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from ..errors import ConfigError, RateLimited
from ..events import Usage
from ..tasks import beside, every

# Re-exported: a host picks a store where it picks its limits.
from .limit_stores import LimitStore, MemoryLimitStore, RedisLimitStore

__all__ = [
    "LimitLease",
    "LimitStore",
    "Limiter",
    "Limits",
    "MemoryLimitStore",
    "Rate",
    "RedisLimitStore",
]

logger = logging.getLogger("llm_sse_mount")

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+\s*)?([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` events per ``period`` seconds. ``Rate.parse("60/minute")``."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.period > 0:
            raise ConfigError("a rate needs a count of at least 1 and a positive period")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"60/minute"``, ``"10/second"``, ``"1000/hour"``, ``"5/10s"``, ``"100 per day"``."""
        match = _RATE.match(text.lower())
        unit = _PERIODS.get(match.group(3)) if match else None
        if match is None or unit is None:
            raise ConfigError(
                f"a rate looks like '60/minute' (second, minute, hour, day), got {text!r}"
            )
        return cls(int(match.group(1)), unit * int(match.group(2) or 1))

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one principal may spend. ``None`` switches a limit off.

    - ``requests``: streams started per period (a :class:`Rate` or ``"60/minute"``);
    - ``concurrent``: streams open at the same time;
    - ``tokens_per_minute``: upstream tokens (prompt + completion, as the upstream reports
      them) per minute; a request is refused while the budget is spent.
    """

    requests: Rate | str | None = None
    concurrent: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.requests, str):
            object.__setattr__(self, "requests", Rate.parse(self.requests))
        if self.concurrent is not None and self.concurrent < 1:
            raise ConfigError("concurrent must be at least 1 (or None for no limit)")
        if self.tokens_per_minute is not None and self.tokens_per_minute < 1:
            raise ConfigError("tokens_per_minute must be at least 1 (or None for no limit)")

    @property
    def rate(self) -> Rate | None:
        """``requests`` as a :class:`Rate` (strings are parsed on construction)."""
        return self.requests if isinstance(self.requests, Rate) else None


#: Tokens are budgeted per minute.
_MINUTE = 60.0


def _digest(text: str) -> str:
    # Principal ids are the host's (maybe an e-mail address): keys carry a hash, not the id.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(eq=False)
class LimitLease:
    """What an admitted stream holds: its concurrency slot and its token account."""

    limiter: Limiter
    key: str
    limits: Limits
    slot: str | None = None
    _counted: int = field(default=0, init=False)
    _released: bool = field(default=False, init=False)

    async def record_usage(self, usage: Usage) -> None:
        """Count the tokens of a usage report (reports are cumulative per stream: only the
        growth since the last one is charged). Never raises: the stream goes on."""
        tpm = self.limits.tokens_per_minute
        grown = usage.total_tokens - self._counted
        if tpm is None or grown <= 0:
            return
        self._counted = usage.total_tokens
        try:
            key = self.limiter.key("tokens", self.key)
            await self.limiter.store.gcra(key, _MINUTE, tpm, grown, "force")
        except Exception:
            logger.warning("could not count %d tokens against a budget", grown, exc_info=True)

    async def release(self) -> None:
        """Free the concurrency slot (idempotent; shielded, bounded in time)."""
        if self._released or self.slot is None:
            self._released = True
            return
        self._released = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await self.limiter.store.release(self.limiter.key("slots", self.key), self.slot)

    async def hold(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` (the whole stream) while keeping the slot alive; release it the moment
        ``body`` returns, fails or is cancelled (the client went away)."""
        if self.slot is None:  # nothing to keep alive: no task group needed
            await body()
            return
        try:
            async with beside(self._keep_alive):
                await body()
        finally:
            await self.release()

    async def _keep_alive(self) -> None:
        """Refresh the slot's lease until cancelled (the Redis store lets unrefreshed slots
        lapse, so a dead worker's slots come back)."""
        slot, ttl = self.slot, self.limiter.slot_ttl
        if slot is None:
            return

        async def refresh() -> None:
            await self.limiter.store.refresh(self.limiter.key("slots", self.key), slot, ttl)

        await every(ttl / 3, refresh, "refreshing a concurrency slot")


class Limiter:
    """Applies :class:`Limits` per key (a principal's id, or the client's address).

    ``store`` defaults to :class:`MemoryLimitStore`; pass a :class:`RedisLimitStore` so that
    several workers share one budget.
    """

    def __init__(
        self,
        limits: Limits,
        store: LimitStore | None = None,
        *,
        slot_ttl: float = 30.0,
    ) -> None:
        self.limits = limits
        self.store: LimitStore = store if store is not None else MemoryLimitStore()
        self.slot_ttl = slot_ttl

    def __repr__(self) -> str:
        return f"Limiter({self.limits!r}, store={self.store!r})"

    def key(self, kind: str, who: str) -> str:
        return f"{kind}:{_digest(who)}"

    async def admit(
        self, who: str, limits: Limits | None = None, *, prompt_tokens: int = 0
    ) -> LimitLease:
        """Admit one stream for ``who`` or raise :class:`RateLimited` (or a 503 when the store
        is down). ``limits`` overrides the limiter's own for this principal.

        ``prompt_tokens`` (an estimate) is charged at once: the upstream bills the prompt even
        if the client leaves before any usage report, which would otherwise cost nothing."""
        lim = limits if limits is not None else self.limits
        if lim.tokens_per_minute is not None:
            wait = await self.store.gcra(
                self.key("tokens", who), _MINUTE, lim.tokens_per_minute, 1, "check"
            )
            if wait > 0:
                raise RateLimited(
                    f"token budget spent ({lim.tokens_per_minute} per minute)",
                    retry_after=wait,
                )
        lease = LimitLease(self, who, lim)
        # The slot before the request budget: a request refused for concurrency must not
        # spend the budget (the client retries in a second and would pay twice). The slot is
        # handed back if the budget then refuses.
        if lim.concurrent is not None:
            slot = secrets.token_hex(8)
            if not await self.store.acquire(
                self.key("slots", who), slot, lim.concurrent, self.slot_ttl
            ):
                # Nobody knows when a stream ends; a second is short enough to feel prompt.
                raise RateLimited(
                    f"too many streams at once (at most {lim.concurrent})", retry_after=1
                )
            lease.slot = slot
        if lim.rate is not None:
            rate = lim.rate
            try:
                wait = await self.store.gcra(
                    self.key("requests", who), rate.period, rate.count, 1, "hit"
                )
            except BaseException:
                await lease.release()
                raise
            if wait > 0:
                await lease.release()
                raise RateLimited(
                    f"too many requests (at most {rate.count} per {rate.period:g} s)",
                    retry_after=wait,
                )
        if lim.tokens_per_minute is not None and prompt_tokens > 0:
            key = self.key("tokens", who)
            await self.store.gcra(key, _MINUTE, lim.tokens_per_minute, prompt_tokens, "force")
            lease._counted = prompt_tokens  # usage reports are charged beyond this
        return lease

    async def aclose(self) -> None:
        await self.store.aclose()
