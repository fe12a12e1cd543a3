"""The observer seam: what the core tells telemetry about each stream, and nothing more.

The core owns the seam (like ``on_complete``); the observers behind it live above the core, in
:mod:`llm_sse_mount.telemetry` (OpenTelemetry, Prometheus, the log line), or are the host's.
The core calls one :class:`StreamObserver` per mount (``StreamContext.observer``). For every
request that asks for a stream it calls :meth:`StreamObserver.start` and then, on the
returned :class:`Observation`::

    start(info)                              the request arrived (before admission)
    ├── refused(error)                       admission said no (401, 403, 429, ...): the end
    └── admitted(principal)
        ├── ended(record)                    the upstream refused, or the client left, before
        │                                    the first frame (record.frames == 0)
        └── opened(provider, model, ...)     the upstream answered; the stream begins
            ├── first_chunk()                the first answer/reasoning/tool-call event
            ├── chunk(event)                 every content event, only if ``wants_chunks``
            └── ended(record)                exactly once, with the CompletionRecord

Everything is synchronous and must not block: it runs on the relay's hot path. Cost when
telemetry is off is one call to :data:`NOOP` per step; per-chunk work happens only when an
observation sets ``wants_chunks`` (the core reads the flag once per stream, not per event).

A failing observer never breaks a stream: :func:`combine` wraps each one so an exception is
logged and swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from ..errors import LLMSSEError
from ..events import StreamEvent
from ..request import ChatRequest

if TYPE_CHECKING:
    from .records import CompletionRecord

__all__ = [
    "NOOP",
    "NOOP_OBSERVATION",
    "NoopObservation",
    "NoopObserver",
    "Observation",
    "StreamObserver",
    "StreamStart",
    "combine",
]

logger = logging.getLogger("llm_sse_mount.telemetry")


@dataclass(frozen=True, slots=True)
class StreamStart:
    """What is known when a request for a stream arrives.

    ``headers`` are the incoming request's headers with lower-case names (telemetry reads
    ``traceparent``/``tracestate`` from them, nothing else). ``protocol`` names the client
    protocol (``"native"``, ``"text"``, ``"openai"``, ``"ai-sdk"``, ...; ``"other"`` when a
    protocol names none);
    ``provider`` the mount's first provider (the one tried first; ``opened`` says which served).
    ``trace_id`` is filled in by :func:`combine` once an earlier observer (OpenTelemetry)
    has one, so later observers (logs) can print it.
    """

    request: ChatRequest
    protocol: str
    provider: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    trace_id: str | None = None


class Observation(Protocol):
    """One stream as seen by one observer."""

    #: Headers to add to the upstream request (W3C trace context); empty when none.
    upstream_headers: Mapping[str, str]
    #: The trace id (32 hex digits) this stream is recorded under, when there is one.
    trace_id: str | None
    #: Ask the core to call :meth:`chunk` for every content event (costs per token).
    wants_chunks: bool

    def refused(self, error: LLMSSEError) -> None:
        """Admission refused the request; nothing else will be called."""

    def admitted(self, principal: str | None) -> None:
        """Admission let the request through; ``principal`` is the caller's id, if any."""

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        """The upstream answered: ``provider`` and ``model`` actually used, after ``retries``
        failed attempts in total and ``fallbacks`` providers skipped."""

    def first_chunk(self) -> None:
        """The first content event arrived from the upstream."""

    def chunk(self, event: StreamEvent) -> None:
        """A content event (only when ``wants_chunks``)."""

    def ended(self, record: CompletionRecord) -> None:
        """The stream is over (also for one that never began); called exactly once."""


class StreamObserver(Protocol):
    """Something that watches streams: OpenTelemetry, Prometheus, logs, or a host's own."""

    def start(self, info: StreamStart) -> Observation:
        """A request for a stream arrived; return what watches this one."""
        ...


class NoopObservation:
    """Watches nothing. One shared instance: it has no state."""

    __slots__ = ()
    upstream_headers: Mapping[str, str] = MappingProxyType({})
    trace_id: str | None = None
    wants_chunks = False

    def refused(self, error: LLMSSEError) -> None:
        pass

    def admitted(self, principal: str | None) -> None:
        pass

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        pass

    def first_chunk(self) -> None:
        pass

    def chunk(self, event: StreamEvent) -> None:
        pass

    def ended(self, record: CompletionRecord) -> None:
        pass


#: The observation of a stream nobody watches.
NOOP_OBSERVATION = NoopObservation()


class NoopObserver:
    """The default: telemetry off."""

    __slots__ = ()

    def start(self, info: StreamStart) -> Observation:
        return NOOP_OBSERVATION


#: The observer a mount without telemetry uses.
NOOP = NoopObserver()


class _Guarded:
    """One observation whose exceptions are logged, never raised into the stream."""

    __slots__ = ("_inner", "_name", "trace_id", "upstream_headers", "wants_chunks")

    upstream_headers: Mapping[str, str]
    trace_id: str | None
    wants_chunks: bool

    def __init__(self, inner: Observation, name: str) -> None:
        self._inner = inner
        self._name = name
        self.upstream_headers = inner.upstream_headers
        self.trace_id = inner.trace_id
        self.wants_chunks = inner.wants_chunks

    def _failed(self, step: str) -> None:
        logger.exception("telemetry observer %s failed in %s", self._name, step)

    def refused(self, error: LLMSSEError) -> None:
        try:
            self._inner.refused(error)
        except Exception:
            self._failed("refused")

    def admitted(self, principal: str | None) -> None:
        try:
            self._inner.admitted(principal)
        except Exception:
            self._failed("admitted")

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        try:
            self._inner.opened(provider, model, retries=retries, fallbacks=fallbacks)
        except Exception:
            self._failed("opened")

    def first_chunk(self) -> None:
        try:
            self._inner.first_chunk()
        except Exception:
            self._failed("first_chunk")

    def chunk(self, event: StreamEvent) -> None:
        try:
            self._inner.chunk(event)
        except Exception:
            self._failed("chunk")

    def ended(self, record: CompletionRecord) -> None:
        try:
            self._inner.ended(record)
        except Exception:
            self._failed("ended")


class _FanOut:
    """Several observations of one stream, called in order."""

    __slots__ = ("_chunked", "_parts", "trace_id", "upstream_headers", "wants_chunks")

    upstream_headers: Mapping[str, str]
    trace_id: str | None
    wants_chunks: bool

    def __init__(self, parts: Sequence[Observation]) -> None:
        self._parts = tuple(parts)
        self._chunked = tuple(p for p in parts if p.wants_chunks)
        self.wants_chunks = bool(self._chunked)
        headers: dict[str, str] = {}
        for part in parts:
            headers.update(part.upstream_headers)
        self.upstream_headers = headers
        self.trace_id = next((p.trace_id for p in parts if p.trace_id), None)

    def refused(self, error: LLMSSEError) -> None:
        for part in self._parts:
            part.refused(error)

    def admitted(self, principal: str | None) -> None:
        for part in self._parts:
            part.admitted(principal)

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        for part in self._parts:
            part.opened(provider, model, retries=retries, fallbacks=fallbacks)

    def first_chunk(self) -> None:
        for part in self._parts:
            part.first_chunk()

    def chunk(self, event: StreamEvent) -> None:
        for part in self._chunked:  # only those that asked
            part.chunk(event)

    def ended(self, record: CompletionRecord) -> None:
        for part in self._parts:
            part.ended(record)


class _Combined:
    """Fan-out over several observers; each one guarded."""

    __slots__ = ("_observers",)

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self._observers = tuple(observers)

    def start(self, info: StreamStart) -> Observation:
        parts: list[Observation] = []
        for observer in self._observers:
            try:
                part = observer.start(info)
            except Exception:
                logger.exception("telemetry observer %s failed in start", _name(observer))
                continue
            if part is NOOP_OBSERVATION:
                continue
            if part.trace_id and info.trace_id is None:
                # Later observers (the log line) learn the trace id of earlier ones (OTel).
                info = replace(info, trace_id=part.trace_id)
            parts.append(_Guarded(part, _name(observer)))
        if not parts:
            return NOOP_OBSERVATION
        if len(parts) == 1:
            return parts[0]
        return _FanOut(parts)


def _name(observer: object) -> str:
    return type(observer).__name__


def combine(observers: Sequence[StreamObserver]) -> StreamObserver:
    """One observer for the core: :data:`NOOP` for none, else a guarded fan-out in order
    (put OpenTelemetry first so the others see its trace id)."""
    real = [o for o in observers if not isinstance(o, NoopObserver)]
    if not real:
        return NOOP
    return _Combined(real)
