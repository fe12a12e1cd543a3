"""The producer: pumps one upstream stream into the store until it ends.

How a stream ends (exactly one ``done``, always)::

    upstream finished           → done{finish_reason from the upstream}
    upstream failed mid-stream  → error{upstream code} + done{error}
    no first token / idle gap / total time exceeded
                                → error{upstream_timeout, retryable} + done{error}
    every reader left (after the resume grace)
                                → done{cancelled}          upstream response closed
    the owner stopped it        → done{cancelled}          upstream response closed
    server shutting down        → error{server_shutdown, retryable} + done{error}

Every ending carries usage: when the upstream reported none (the client left, a timeout, an
error, a server that does not count), the producer appends its own estimate, marked
``Usage(estimated=True)``, before the closing frames; it is what the token budget charges and
what ``on_complete`` records. The upstream's figure always wins: no estimate follows it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio

from ..errors import LLMSSEError, UpstreamTimeout
from ..events import (
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
from ..redaction import redact
from ..settings import Timeouts
from ..store.base import StreamStore
from ..usage_estimate import UsageTally
from .observe import NOOP_OBSERVATION, Observation
from .records import CompletionRecord, OnComplete, report
from .relay import Opened
from .shutdown import ShutdownSignal

__all__ = ["Outcome", "Producer"]

logger = logging.getLogger("llm_sse_mount")


class Outcome(enum.Enum):
    """Why a stream ended, as far as the mount is concerned."""

    FINISHED = "finished"  # the upstream ended it (well or not)
    ABANDONED = "abandoned"  # every reader left and the resume grace ran out
    STOPPED = "stopped"  # its owner asked for a stop
    SHUTDOWN = "shutdown"  # the server is stopping


def _clock() -> Callable[[], float]:
    """The clock cancel-scope deadlines are measured on. ``anyio.current_time()`` looks the
    async backend up on every call, and the pump asks once per event: on asyncio, take the
    loop's own clock (the one anyio's deadlines use) once per stream."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # another backend (trio): ask anyio each time
        return anyio.current_time


class Producer:
    """Pumps one upstream stream into the store until it ends, fails, or is cancelled (by the
    serving core when every reader left or the owner stopped it, or by the mount's shutdown
    signal). It runs as one task and keeps no helper tasks of its own."""

    def __init__(
        self,
        *,
        stream_id: str,
        opened: Opened,
        started: float,
        store: StreamStore,
        timeouts: Timeouts,
        shutdown: ShutdownSignal,
        on_complete: OnComplete | None = None,
        secrets: Sequence[str] = (),
        on_usage: Callable[[Usage], Awaitable[None]] | None = None,
        prompt_tokens: int = 0,
        observation: Observation = NOOP_OBSERVATION,
    ) -> None:
        self.stream_id = stream_id
        self.opened = opened
        self.started = started
        self.store = store
        self.timeouts = timeouts
        self.shutdown = shutdown
        self.on_complete = on_complete
        self.secrets = tuple(secrets)
        # Access control's hook (tokens per minute): sees each usage report as it streams.
        self.on_usage = on_usage
        # For the estimate when the upstream never reports usage (see the module docstring).
        self.prompt_tokens = prompt_tokens
        self._tally = UsageTally()
        # Telemetry (see observe.py): told of the first chunk, each chunk if it asks, the end.
        self.observation = observation
        self.outcome = Outcome.FINISHED
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._first_token_at: float | None = None
        self._frames = 1  # the start frame, appended by the serving core
        self._scope: anyio.CancelScope | None = None
        self._settled = False  # the outcome can no longer change
        self._ended = False
        self._on_end: list[Callable[[], object]] = []

    def cancel(self, outcome: Outcome) -> None:
        """Stop the upstream and end the stream with ``outcome`` (the first reason wins)."""
        if self._settled or self.outcome is not Outcome.FINISHED:
            return
        self.outcome = outcome
        if self._scope is not None:
            self._scope.cancel()

    def shut_down(self) -> None:
        """The server is stopping (called by the mount's :class:`ShutdownSignal`)."""
        self.cancel(Outcome.SHUTDOWN)

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
                if self.outcome is not Outcome.FINISHED:
                    self._scope.cancel()  # cancelled before it started
                try:
                    await self._pump()
                except LLMSSEError as exc:
                    if exc.code == "cancelled":
                        # Stopped on another worker: the store already holds done{cancelled}.
                        self.outcome = Outcome.STOPPED
                    else:
                        error = Error(exc.code, redact(exc.message, self.secrets), exc.retryable)
                except Exception as exc:  # a provider bug must still end the stream cleanly
                    logger.exception("stream: the provider failed")
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
        inf = float("inf")
        total_deadline = inf if t.total_timeout is None else start + t.total_timeout
        first = inf if t.first_token_timeout is None else start + t.first_token_timeout
        idle = inf if t.idle_timeout is None else t.idle_timeout
        # Moving a deadline reschedules a timer, a measurable cost when done per event. So the
        # idle deadline is re-armed at most every tenth of the timeout, with that tenth as
        # slack: a gap is cut after between idle and 1.1 x idle, never earlier.
        rearm_every = idle / 10
        slack = idle + rearm_every
        armed_at: float | None = None  # the first event always replaces the first-token one
        store, sid = self.store, self.stream_id
        obs = self.observation
        # Read once per stream: per-event telemetry only when an observer asked for it.
        chunk = obs.chunk if obs.wants_chunks else None
        with anyio.CancelScope(deadline=min(first, total_deadline)) as scope:
            async for event in self.opened.upstream.events():
                if isinstance(event, Finish):
                    self._finish = event.reason  # GLM repeats it; the last one wins
                    continue
                if isinstance(event, (TextDelta, ReasoningDelta, ToolCallDelta)):
                    if self._first_token_at is None:
                        self._first_token_at = time.monotonic()
                        obs.first_chunk()
                    if chunk is not None:
                        chunk(event)
                    self._tally.observe(event)
                elif type(event) is Usage:
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

    def _tail(self, error: Error | None) -> list[StreamEvent]:
        if self.outcome is Outcome.STOPPED:
            return []  # the stop wrote done{cancelled} itself, for every reader at once
        if self.outcome is Outcome.ABANDONED:
            return [Done("cancelled")]
        if self.outcome is Outcome.SHUTDOWN:
            return [Error("server_shutdown", "the server is shutting down", True), Done("error")]
        if error is not None:
            return [error, Done("error")]
        return [Done(self._finish or "stop")]

    async def _estimate_usage(self) -> list[StreamEvent]:
        """The estimated usage frame, if the upstream reported none; charged to the budget."""
        if self._usage is not None:
            return []
        completion = self._tally.completion_tokens
        prompt = self.prompt_tokens
        self._usage = Usage(prompt, completion, prompt + completion, estimated=True)
        if self.on_usage is not None:
            with anyio.move_on_after(2):  # a budget store that hangs must not hold the end
                await self.on_usage(self._usage)
        return [self._usage]

    async def _finish_stream(self, error: Error | None) -> None:
        # Estimated usage (charged to the budget) whenever the upstream reported none; after a
        # stop the store already ends with done, so the estimate goes to the record only.
        estimate = await self._estimate_usage()
        tail = self._tail(error)
        reason: FinishReason = "cancelled"
        if tail:
            tail = [*estimate, *tail]
            last = tail[-1]
            reason = last.finish_reason if isinstance(last, Done) else "error"
            try:
                with anyio.fail_after(5):
                    await self.store.append(self.stream_id, tail)
                self._frames += len(tail)
            except Exception:
                logger.exception("stream: could not store its last frames")
        error_code = next((e.code for e in tail if isinstance(e, Error)), None)
        ttft = self._first_token_at
        record = CompletionRecord(
            stream_id=self.stream_id,
            model=self.opened.model,
            provider=self.opened.provider.name,
            finish_reason=reason,
            usage=self._usage,
            time_to_first_token=None if ttft is None else ttft - self.started,
            duration=time.monotonic() - self.started,
            error_code=error_code,
            client_disconnected=self.outcome is Outcome.ABANDONED,
            frames=self._frames,
        )
        logger.info(
            "stream done: %s provider=%s model=%s error=%s ttft=%s duration=%.3fs",
            reason,
            record.provider,
            record.model,
            error_code,
            None if record.time_to_first_token is None else f"{record.time_to_first_token:.3f}s",
            record.duration,
        )
        self.observation.ended(record)
        await report(self.on_complete, record)
