"""The seam between the serving core and a client protocol: how one client gets its frames.

A protocol module hands the core a :class:`Reply` for each new stream or resume. The core does
everything that is the same for every protocol (admission, opening the upstream, the producer,
following the store, pings, timeouts, records); the reply says only what differs: how frames
become bytes (an :class:`Encoder`) or, for a protocol's non-streamed answer, one response at the
end (a :class:`Collector`), and what an error before the first frame looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from starlette.responses import Response

from ..errors import LLMSSEError
from ..events import Frame

__all__ = ["Collector", "CollectorFactory", "Encoder", "EncoderFactory", "ErrorResponder", "Reply"]


class Encoder(Protocol):
    """One response's encoder (may keep state across calls, e.g. "first delta carries role")."""

    def encode(self, frames: Sequence[Frame]) -> bytes:
        """Bytes for a batch of frames (``b""`` when none of them shows in this protocol)."""
        ...


EncoderFactory = Callable[[str, str], Encoder]
"""``(stream_id, model) -> Encoder``."""


class Collector(Protocol):
    """Folds a whole stream into one answer (OpenAI's ``stream: false`` and the like)."""

    def add(self, frames: Sequence[Frame]) -> None: ...

    def response(self) -> Response:
        """The answer once the stream is over: the result, or the error in the protocol's
        shape."""
        ...


CollectorFactory = Callable[[str, str], Collector]
"""``(stream_id, model) -> Collector``."""

ErrorResponder = Callable[[LLMSSEError], Response]
"""An error before the first frame, as the protocol's plain HTTP error response."""


@dataclass(frozen=True, slots=True)
class Reply:
    """How one client receives a stream: as SSE through ``encoder``, or as one response built
    by ``collector``. ``retry_ms``: a resumable protocol's first frame tells ``EventSource`` to
    reconnect this soon (``None``: the protocol offers no resume). ``protocol``: the client
    protocol's name for telemetry (a label value: keep it one of a few fixed names)."""

    error_response: ErrorResponder
    encoder: EncoderFactory | None = None
    collector: CollectorFactory | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_ms: int | None = None
    protocol: str = "other"

    def __post_init__(self) -> None:
        if (self.encoder is None) == (self.collector is None):
            raise ValueError("a Reply has either an encoder or a collector")
