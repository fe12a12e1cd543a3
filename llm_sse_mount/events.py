"""Normalized stream events: what every provider produces and every format consumes.

A provider turns its upstream's wire format into these; the relay adds the stream-level
``Start``, ``Error`` and ``Done``; encoders under ``formats/`` turn them into client frames.
``event`` is the native ``event:`` field and ``data()`` the native JSON payload (see DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]
FINISH_REASONS: frozenset[str] = frozenset(
    ("stop", "length", "tool_calls", "content_filter", "error", "cancelled")
)


@dataclass(frozen=True, slots=True)
class Start:
    """First frame of every stream."""

    stream_id: str
    model: str
    event: ClassVar[str] = "start"

    def data(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "model": self.model}


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text, exactly as the upstream sent it."""

    text: str
    event: ClassVar[str] = "delta"

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking (``reasoning_content``, Anthropic ``thinking``)."""

    text: str
    event: ClassVar[str] = "reasoning"

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. Only the first fragment of a call carries ``id`` and ``name``."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    event: ClassVar[str] = "tool_call"

    def data(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, as reported by the upstream (cumulative: the last one wins)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    event: ClassVar[str] = "usage"

    def data(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Finish:
    """The upstream said why it stopped. Providers emit it; the relay turns the last one into
    the stream's ``Done`` once the upstream stream has really ended."""

    reason: FinishReason
    event: ClassVar[str] = "finish"

    def data(self) -> dict[str, Any]:
        return {"finish_reason": self.reason}


@dataclass(frozen=True, slots=True)
class Error:
    """A failure after the stream began. Always followed by ``Done``."""

    code: str
    message: str
    retryable: bool = False
    event: ClassVar[str] = "error"

    def data(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class Done:
    """Last frame of every stream, exactly once."""

    finish_reason: FinishReason
    event: ClassVar[str] = "done"

    def data(self) -> dict[str, Any]:
        return {"finish_reason": self.finish_reason}


#: What a provider yields.
ProviderEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish
#: What a stream carries to its readers.
StreamEvent = Start | TextDelta | ReasoningDelta | ToolCallDelta | Usage | Error | Done

_BY_NAME: dict[str, type[StreamEvent]] = {
    cls.event: cls for cls in (Start, TextDelta, ReasoningDelta, ToolCallDelta, Usage, Error, Done)
}


def event_from_data(name: str, data: dict[str, Any]) -> StreamEvent:
    """Rebuild a stream event from its native ``event`` name and JSON ``data`` (used by stores
    that serialize frames, e.g. Redis)."""
    if name == "tool_call":
        return ToolCallDelta(data["index"], data.get("id"), data.get("name"), data["arguments"])
    cls = _BY_NAME[name]
    return cls(**data)
