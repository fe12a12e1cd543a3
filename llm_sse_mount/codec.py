"""The native wire format of a stream event: its ``event:`` name and compact JSON ``data``.

One codec, used both ways: the native encoder writes it to clients, the Redis store writes it to
Redis and reads it back. See DESIGN.md ("Native event stream") for the table it implements.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .events import (
    Done,
    Error,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["decode", "dumps", "encode", "event_data", "event_name", "usage_data"]

_encode: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode
#: NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR: SSE does not end lines there, but Python's
#: ``str.splitlines()`` and some hand-rolled clients do, and would cut a data line in two.
_SPLITLINES_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def dumps(value: object) -> str:
    """Compact JSON that keeps non-ASCII text as is (half the bytes of \\uXXXX escapes for
    CJK), but escapes the three characters that line splitters other than SSE's break on."""
    out = _encode(value)
    if "\x85" in out or "\u2028" in out or "\u2029" in out:  # rare: three C-speed scans
        out = out.translate(_SPLITLINES_BREAKS)
    return out


_NAMES: dict[type[StreamEvent], str] = {
    Start: "start",
    TextDelta: "delta",
    ReasoningDelta: "reasoning",
    ToolCallDelta: "tool_call",
    Usage: "usage",
    Error: "error",
    Done: "done",
}


def event_name(event: StreamEvent) -> str:
    """The native ``event:`` field of ``event``."""
    return _NAMES[type(event)]


def usage_data(usage: Usage) -> dict[str, Any]:
    """``{"prompt_tokens", "completion_tokens", "total_tokens"}``, plus ``"estimated": true``
    for the mount's own estimate (never on the upstream's figure)."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.estimated:
        out["estimated"] = True
    return out


def event_data(event: StreamEvent) -> dict[str, Any]:
    """The native JSON payload of ``event``."""
    if isinstance(event, TextDelta | ReasoningDelta):
        return {"text": event.text}
    if isinstance(event, ToolCallDelta):
        return {
            "index": event.index,
            "id": event.id,
            "name": event.name,
            "arguments": event.arguments,
        }
    if isinstance(event, Usage):
        return usage_data(event)
    if isinstance(event, Error):
        return {"code": event.code, "message": event.message, "retryable": event.retryable}
    if isinstance(event, Done):
        return {"finish_reason": event.finish_reason}
    return {"stream_id": event.stream_id, "model": event.model}


def encode(event: StreamEvent) -> tuple[str, str]:
    """``(event name, data JSON)`` for one event."""
    if type(event) is TextDelta:  # nearly every frame: skip building a dict
        return "delta", '{"text":' + dumps(event.text) + "}"
    return _NAMES[type(event)], dumps(event_data(event))


def decode(name: str, data: str) -> StreamEvent:
    """The event :func:`encode` gave ``(name, data)`` for."""
    d = json.loads(data)
    if name == "delta":
        return TextDelta(d["text"])
    if name == "reasoning":
        return ReasoningDelta(d["text"])
    if name == "tool_call":
        return ToolCallDelta(d["index"], d.get("id"), d.get("name"), d["arguments"])
    if name == "usage":
        return Usage(
            d["prompt_tokens"], d["completion_tokens"], d["total_tokens"], bool(d.get("estimated"))
        )
    if name == "error":
        return Error(d["code"], d["message"], bool(d.get("retryable")))
    if name == "done":
        return Done(d["finish_reason"])
    if name == "start":
        return Start(d["stream_id"], d["model"])
    raise ValueError(f"unknown event name {name!r}")
