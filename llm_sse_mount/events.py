"""Normalized stream events: what every provider produces and every client protocol consumes.

A provider turns its upstream's wire format into these; the producer adds the stream-level
``Start``, ``Error`` and ``Done``; encoders under ``protocols/`` turn them into client frames.
They carry no wire format of their own: the native one lives in :mod:`.codec`, shared by the
native encoder and the Redis store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]
FINISH_REASONS: frozenset[str] = frozenset(
    ("stop", "length", "tool_calls", "content_filter", "error", "cancelled")
)


@dataclass(frozen=True, slots=True)
class Start:
    """First frame of every stream."""

    stream_id: str
    model: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text, exactly as the upstream sent it."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking (``reasoning_content``, Anthropic ``thinking``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. Only the first fragment of a call carries ``id`` and ``name``."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts (cumulative: the last one wins). ``estimated`` marks the mount's own
    estimate, made when a stream ended without the upstream's figure; a reported usage is
    never marked, and always replaces an estimate."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Finish:
    """The upstream said why it stopped. Providers emit it; the relay turns the last one into
    the stream's ``Done`` once the upstream stream has really ended."""

    reason: FinishReason


@dataclass(frozen=True, slots=True)
class Error:
    """A failure after the stream began. Always followed by ``Done``."""

    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """Last frame of every stream, exactly once."""

    finish_reason: FinishReason


#: What a provider yields.
ProviderEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish
#: What a stream carries to its readers.
StreamEvent = Start | TextDelta | ReasoningDelta | ToolCallDelta | Usage | Error | Done
#: One frame of a stream: ``(seq, event)``, seq from 0 with no gaps.
Frame = tuple[int, StreamEvent]
