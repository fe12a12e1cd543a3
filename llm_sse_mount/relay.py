"""The relay: open the upstream (retries, fallbacks), then pump its events into the store.

Nothing here knows a vendor or a client protocol: providers give :class:`ProviderEvent`
objects, the store takes :class:`StreamEvent` frames.

How a stream ends (exactly one ``done``, always)::

    upstream finished           → done{finish_reason from the upstream}
    upstream failed mid-stream  → error{upstream code} + done{error}
    no first token / idle gap / total time exceeded
                                → error{upstream_timeout, retryable} + done{error}
    every reader left (after the resume grace)
                                → done{cancelled}          upstream response closed
    server shutting down        → error{server_shutdown, retryable} + done{error}
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import anyio
import httpx

from .errors import LLMSSEError, UpstreamTimeout
from .events import (
    Done,
    Error,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .http_client import ClientPool
from .providers.base import Provider, UpstreamStream
from .providers.capabilities import require_capabilities
from .request import ChatRequest
from .shutdown import ShutdownSignal
from .store.base import StreamStore

__all__ = [
    "CompletionRecord",
    "OnComplete",
    "Producer",
    "Relay",
    "RetryPolicy",
    "Timeouts",
    "report",
]

logger = logging.getLogger("llm_sse_mount")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; ``None`` disables one. ``first_token`` also bounds waiting for the upstream's
    status line, ``idle`` is the longest gap between two upstream events."""

    connect: float | None = 10.0
    first_token: float | None = 60.0
    idle: float | None = 60.0
    total: float | None = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries per provider on retryable failures (connection errors, 429, 5xx) while nothing
    has been committed to the client; then the next fallback provider is tried."""

    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        # Full jitter: spreads a burst of retries from many streams.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


@dataclass(frozen=True, slots=True)
class CompletionRecord:
    """What happened to one stream; handed to ``on_complete`` exactly once."""

    stream_id: str
    model: str
    provider: str
    finish_reason: FinishReason
    usage: Usage | None
    time_to_first_token: float | None
    duration: float
    error_code: str | None
    client_disconnected: bool
    frames: int


@dataclass(frozen=True, slots=True)
class Opened:
    upstream: UpstreamStream
    provider: Provider
    model: str
    started: float


def _clock() -> Callable[[], float]:
    """The clock cancel-scope deadlines are measured on. ``anyio.current_time()`` looks the
    async backend up on every call, and the pump asks once per event: on asyncio, take the
    loop's own clock (the one anyio's deadlines use) once per stream."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # another backend (trio): ask anyio each time
        return anyio.current_time


def capable(provider: Provider, request: ChatRequest) -> bool:
    """Whether ``provider`` can honour everything ``request`` asks for."""
    try:
        require_capabilities(provider, request)
    except LLMSSEError:
        return False
    return True


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Relay:
    """Opens upstream streams for one mount."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        pool: ClientPool,
        client: httpx.AsyncClient | None,
        timeouts: Timeouts,
        retry: RetryPolicy,
    ) -> None:
        self.providers = tuple(providers)
        self.pool = pool
        self.client = client
        self.timeouts = timeouts
        self.retry = retry

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for p in self.providers for s in p.secrets())

    async def open(self, request: ChatRequest, client: httpx.AsyncClient | None) -> Opened:
        """Open the first provider that answers, retrying retryable failures with backoff.
        Raises the last error when every attempt failed (the route turns it into HTTP)."""
        last: LLMSSEError | None = None
        started = time.monotonic()
        deadline = None if self.timeouts.total is None else started + self.timeouts.total
        for index, provider in enumerate(self.providers):
            req = request
            if index > 0 and provider.default_model:
                req = replace(request, model=provider.default_model)
            if index > 0 and not capable(provider, req):
                continue  # a fallback must not answer without the images or the schema
            http = provider.client or self.client or client
            assert http is not None, "the route leases a client before opening"
            for attempt in range(self.retry.retries + 1):
                try:
                    with anyio.fail_after(self.timeouts.first_token):
                        upstream = await provider.open(req, http)
                    return Opened(upstream, provider, req.model, started)
                except TimeoutError:
                    last = UpstreamTimeout("the upstream did not answer in time")
                except LLMSSEError as exc:
                    last = exc
                    last.message = redact(last.message, provider.secrets())
                logger.warning(
                    "upstream %s attempt %d failed: %s (%s)",
                    provider.name,
                    attempt + 1,
                    last.code,
                    last.message,
                )
                if not last.retryable or attempt == self.retry.retries:
                    break
                wait = self.retry.delay(attempt, last.retry_after)
                if wait > self.retry.max_backoff or (
                    deadline is not None and time.monotonic() + wait > deadline
                ):
                    break  # Retry-After longer than we are willing to hold the client
                await anyio.sleep(wait)
            if last is not None and not last.retryable:
                break  # a refused request (400, auth) would be refused by a fallback too
        assert last is not None
        raise last


class Producer:
    """Pumps one upstream stream into the store until it ends, fails, or is cancelled: by the
    route when every reader has left (``"abandoned"``), or by the mount's shutdown signal
    (``"shutdown"``). It runs as one task and keeps no helper tasks of its own."""

    def __init__(
        self,
        *,
        stream_id: str,
        opened: Opened,
        store: StreamStore,
        timeouts: Timeouts,
        shutdown: ShutdownSignal,
        on_complete: OnComplete | None = None,
        secrets: Sequence[str] = (),
        on_usage: Callable[[Usage], Awaitable[None]] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.opened = opened
        self.store = store
        self.timeouts = timeouts
        self.shutdown = shutdown
        self.on_complete = on_complete
        self.secrets = tuple(secrets)
        # Access control's hook (tokens per minute): sees each usage report as it streams.
        self.on_usage = on_usage
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._first_token_at: float | None = None
        self._frames = 1  # the start frame, appended by the route
        self._outcome: str = "finished"
        self._scope: anyio.CancelScope | None = None
        self._settled = False  # the outcome can no longer change
        self._ended = False
        self._on_end: list[Callable[[], object]] = []

    def cancel(self, outcome: str) -> None:
        """Stop the upstream and end the stream with ``outcome`` (first reason wins)."""
        if self._settled or self._outcome != "finished":
            return
        self._outcome = outcome
        if self._scope is not None:
            self._scope.cancel()

    def when_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the stream has ended (at once if it has)."""
        if self._ended:
            callback()
        else:
            self._on_end.append(callback)

    async def run(self) -> None:
        error: Error | None = None
        self.shutdown.register(self)
        try:
            with anyio.CancelScope() as self._scope:
                if self._outcome != "finished":
                    self._scope.cancel()  # cancelled before it started
                try:
                    await self._pump()
                except LLMSSEError as exc:
                    error = Error(exc.code, redact(exc.message, self.secrets), exc.retryable)
                except Exception as exc:  # a provider bug must still end the stream cleanly
                    logger.exception("stream %s: provider failed", self.stream_id)
                    error = Error("internal_error", f"the relay failed ({type(exc).__name__})")
        finally:
            self._settled = True
            self.shutdown.unregister(self)
            with anyio.CancelScope(shield=True):
                # Readers get their last frames first; closing the upstream may take a moment
                # (it drains a finished body so the connection can be reused).
                await self._finish_stream(error)
                await self.opened.upstream.aclose()
            self._ended = True
            for callback in self._on_end:
                callback()

    async def _pump(self) -> None:
        t = self.timeouts
        now = _clock()
        start = now()
        total_deadline = float("inf") if t.total is None else start + t.total
        first = float("inf") if t.first_token is None else start + t.first_token
        idle = float("inf") if t.idle is None else t.idle
        # Moving a deadline reschedules a timer, a measurable cost when done per event. So the
        # idle deadline is re-armed at most every tenth of the timeout, with that tenth as
        # slack: a gap is cut after between idle and 1.1 x idle, never earlier.
        rearm_every = idle / 10
        slack = idle + rearm_every
        armed_at: float | None = None  # the first event always replaces the first-token one
        store, sid = self.store, self.stream_id
        with anyio.CancelScope(deadline=min(first, total_deadline)) as scope:
            async for event in self.opened.upstream.events():
                if isinstance(event, Finish):
                    self._finish = event.reason  # GLM repeats it; the last one wins
                    continue
                if self._first_token_at is None and isinstance(
                    event, (TextDelta, ReasoningDelta, ToolCallDelta)
                ):
                    self._first_token_at = time.monotonic()
                if type(event) is Usage:
                    self._usage = event
                    if self.on_usage is not None:
                        await self.on_usage(event)
                moment = now()
                if armed_at is None or moment - armed_at > rearm_every:
                    scope.deadline = min(moment + slack, total_deadline)
                    armed_at = moment
                await store.append(sid, (event,))
                self._frames += 1
        if scope.cancelled_caught:
            what = "first token" if self._first_token_at is None else "next event"
            if scope.deadline >= total_deadline:
                what = "end of the stream"
            raise UpstreamTimeout(f"timed out waiting for the upstream's {what}")

    async def _finish_stream(self, error: Error | None) -> None:
        tail: list[StreamEvent] = []
        if self._outcome == "abandoned":
            reason: FinishReason = "cancelled"
        elif self._outcome == "shutdown":
            tail.append(Error("server_shutdown", "the server is shutting down", True))
            reason = "error"
        elif error is not None:
            tail.append(error)
            reason = "error"
        else:
            reason = self._finish or "stop"
        tail.append(Done(reason))
        try:
            with anyio.fail_after(5):
                await self.store.append(self.stream_id, tail)
            self._frames += len(tail)
        except Exception:
            logger.exception("stream %s: could not store its last frames", self.stream_id)
        error_code = next((e.code for e in tail if isinstance(e, Error)), None)
        record = CompletionRecord(
            stream_id=self.stream_id,
            model=self.opened.model,
            provider=self.opened.provider.name,
            finish_reason=reason,
            usage=self._usage,
            time_to_first_token=(
                None if self._first_token_at is None else self._first_token_at - self.opened.started
            ),
            duration=time.monotonic() - self.opened.started,
            error_code=error_code,
            client_disconnected=self._outcome == "abandoned",
            frames=self._frames,
        )
        logger.info(
            "stream %s done: %s provider=%s model=%s error=%s ttft=%s duration=%.3fs",
            self.stream_id,
            reason,
            record.provider,
            record.model,
            error_code,
            None if record.time_to_first_token is None else f"{record.time_to_first_token:.3f}s",
            record.duration,
        )
        await report(self.on_complete, record)


OnComplete = Callable[[CompletionRecord], "Awaitable[None] | None"]


async def report(on_complete: OnComplete | None, record: CompletionRecord) -> None:
    """Hand ``record`` to the host's hook; a failing hook is logged, never raised."""
    if on_complete is None:
        return
    try:
        result = on_complete(record)
        if result is not None:
            await result
    except Exception:
        logger.exception("stream %s: on_complete hook failed", record.stream_id)
