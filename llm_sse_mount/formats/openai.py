"""OpenAI's chat completion wire format, for clients built on the official ``openai`` SDK.

Streamed (``stream: true``): ``chat.completion.chunk`` objects as ``data:`` lines, one ``id``
(``chatcmpl-<stream_id>``) and ``created`` for the whole stream, ending with ``data: [DONE]``::

    start            → {"delta": {"role": "assistant", "content": ""}}
    delta            → {"delta": {"content": "..."}}
    reasoning        → {"delta": {"reasoning_content": "..."}}
    tool_call        → {"delta": {"tool_calls": [{"index", "id", "type", "function"}]}}
    done (finished)  → {"delta": {}, "finish_reason": "..."}, then the usage chunk
                       (``choices: []``) if ``stream_options.include_usage``, then [DONE]
    error            → {"error": {"message", "type", "param", "code"}}, then [DONE]

Deliberate divergence from our native stream: no ``id:`` lines. The SDK's decoder keeps the
last event id and then turns the blank line after a keep-alive comment into an empty event,
which it fails to parse as JSON; without ids a comment block is no event at all, so pings
are safe. (Resume is therefore not offered in this format; OpenAI has none either.)

Not streamed (``stream: false``): :class:`CompletionBuilder` folds the same frames into one
``chat.completion`` object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import (
    Done,
    Error,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ..store.base import Frame
from .base import Encoder, dumps

__all__ = [
    "CompletionBuilder",
    "OpenAIEncoder",
    "error_body",
    "error_status",
    "error_type",
    "openai_encoder",
]

_DONE = b"data: [DONE]\n\n"


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status (the SDK picks its exception by status;
    ``type`` is what humans and logs read)."""
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "invalid_request_error",
        413: "invalid_request_error",
        415: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error")


#: The status a failure reported mid-stream would have had before the stream (used when a
#: ``stream: false`` request fails and becomes a plain HTTP error after all).
_STATUS_BY_CODE: dict[str, int] = {
    "upstream_timeout": 504,
    "upstream_rate_limited": 429,
    "upstream_overloaded": 503,
    "server_shutdown": 503,
    "stream_lost": 503,
    "stream_interrupted": 503,
    "cancelled": 499,
    "internal_error": 500,
}


def error_status(code: str) -> int:
    """HTTP status for a stream ``error`` code; upstream failures default to 502."""
    return _STATUS_BY_CODE.get(code, 502)


def error_body(message: str, code: str, status: int, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


class OpenAIEncoder:
    """Frames → ``chat.completion.chunk`` SSE lines. One instance per response (it tracks
    whether the stream finished and holds usage back until after the finish chunk, where
    OpenAI puts it)."""

    headers: Mapping[str, str] = {}

    def __init__(self, stream_id: str, model: str = "", *, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self._usage: Usage | None = None
        self._failed = False
        # One id and one timestamp for every chunk, as OpenAI sends them.
        self._prefix = (
            '{"id":'
            + dumps(f"chatcmpl-{stream_id}")
            + ',"object":"chat.completion.chunk","created":'
            + str(int(time.time()))
            + ',"model":'
        )
        self._model = dumps(model)

    def _chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return f'data: {self._prefix}{self._model},"choices":[{dumps(choice)}]}}\n\n'

    def encode(self, frames: list[Frame]) -> bytes:
        out: list[str] = []
        for _seq, event in frames:
            if type(event) is TextDelta:
                out.append(self._chunk({"content": event.text}))
            elif isinstance(event, ReasoningDelta):
                out.append(self._chunk({"reasoning_content": event.text}))
            elif isinstance(event, ToolCallDelta):
                out.append(self._chunk({"tool_calls": [tool_call_delta(event)]}))
            elif isinstance(event, Start):
                if event.model:
                    self._model = dumps(event.model)
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif isinstance(event, Usage):
                self._usage = event
            elif isinstance(event, Error):
                self._failed = True
                body = error_body(event.message, event.code, error_status(event.code))
                out.append(f"data: {dumps(body)}\n\n")
            elif isinstance(event, Done):
                out.append(self._finish(event))
        return "".join(out).encode()

    def _finish(self, done: Done) -> str:
        if self._failed:
            return "data: [DONE]\n\n"
        if done.finish_reason in ("error", "cancelled"):
            # Ended without an error frame (every reader left): still say so, not "stop".
            body = error_body("the stream was cancelled", "cancelled", 499)
            return f"data: {dumps(body)}\n\ndata: [DONE]\n\n"
        out = self._chunk({}, done.finish_reason)
        if self.include_usage and self._usage is not None:
            out += (
                f'data: {self._prefix}{self._model},"choices":[],'
                f'"usage":{dumps(self._usage.data())}}}\n\n'
            )
        return out + "data: [DONE]\n\n"


def openai_encoder(*, include_usage: bool = False) -> Callable[[str, str], Encoder]:
    """An encoder factory for :meth:`LLMMount.stream` (``stream_options.include_usage``)."""

    def factory(stream_id: str, model: str) -> Encoder:
        return OpenAIEncoder(stream_id, model, include_usage=include_usage)

    return factory


def tool_call_delta(event: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool call fragment: ``id``, ``type`` and ``name`` only on the first."""
    out: dict[str, Any] = {"index": event.index}
    fn: dict[str, Any] = {}
    if event.id is not None:
        out["id"] = event.id
        out["type"] = "function"
    if event.name is not None:
        fn["name"] = event.name
    fn["arguments"] = event.arguments
    out["function"] = fn
    return out


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class CompletionBuilder:
    """Folds a stream's frames into one ``chat.completion`` object (``stream: false``)."""

    def __init__(self, stream_id: str, model: str) -> None:
        self.id = f"chatcmpl-{stream_id}"
        self.created = int(time.time())
        self.model = model
        self.error: Error | None = None
        self.finish_reason: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, _ToolCall] = {}
        self._usage: Usage | None = None

    def add(self, frames: list[Frame]) -> None:
        for _seq, event in frames:
            if isinstance(event, TextDelta):
                self._text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                self._reasoning.append(event.text)
            elif isinstance(event, ToolCallDelta):
                call = self._tools.setdefault(event.index, _ToolCall())
                call.id = call.id or event.id or ""
                call.name = call.name or event.name or ""
                call.arguments.append(event.arguments)
            elif isinstance(event, Start):
                self.model = event.model or self.model
            elif isinstance(event, Usage):
                self._usage = event
            elif isinstance(event, Error):
                self.error = event
            elif isinstance(event, Done):
                self.finish_reason = event.finish_reason

    def completion(self) -> dict[str, Any]:
        text = "".join(self._text)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._tools:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.arguments)},
                }
                for _index, call in sorted(self._tools.items())
            ]
            if not text:
                message["content"] = None  # as OpenAI answers a turn that only calls tools
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason or "stop",
                }
            ],
        }
        if self._usage is not None:
            out["usage"] = self._usage.data()
        return out
