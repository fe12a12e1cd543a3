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

Reasoning goes out as ``reasoning_content`` only: the AI SDK's openai-compatible provider reads
``reasoning_content ?? reasoning``, langchain-deepseek ``reasoning_content`` then ``reasoning``,
LiteLLM maps ``reasoning`` onto ``reasoning_content``; a second copy under ``reasoning`` would
help none of them and double the text for a client that reads both.

Not streamed (``stream: false``): :class:`CompletionBuilder` folds the same frames into one
``chat.completion`` object.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse, Response

from ..codec import dumps, usage_data
from ..core.delivery import Encoder, EncoderFactory
from ..errors import LLMSSEError, error_kind
from ..events import (
    Done,
    Error,
    Frame,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .http import collected_error, error_headers
from .tool_calls import ToolCalls

__all__ = [
    "CompletionBuilder",
    "OpenAIEncoder",
    "completion_id",
    "error_body",
    "openai_encoder",
    "openai_error_response",
]

_DONE = b"data: [DONE]\n\n"


def error_body(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers."""
    kind = error_kind(code)
    return {"error": {"message": message, "type": kind.openai_type, "param": param, "code": code}}


def openai_error_response(exc: LLMSSEError) -> JSONResponse:
    """An error before the stream, in OpenAI's shape, with our status and stable code."""
    return JSONResponse(
        error_body(exc.message, exc.code, exc.param),
        status_code=exc.status,
        headers=error_headers(exc),
    )


class OpenAIEncoder:
    """Frames → ``chat.completion.chunk`` SSE lines. One instance per response (it tracks
    whether the stream finished and holds usage back until after the finish chunk, where
    OpenAI puts it)."""

    def __init__(self, stream_id: str, model: str = "", *, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self._usage: Usage | None = None
        self._failed = False
        # One id and one timestamp for every chunk, as OpenAI sends them.
        self._prefix = (
            '{"id":'
            + dumps(completion_id())
            + ',"object":"chat.completion.chunk","created":'
            + str(int(time.time()))
            + ',"model":'
        )
        self._model = dumps(model)

    def _chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return f'data: {self._prefix}{self._model},"choices":[{dumps(choice)}]}}\n\n'

    def encode(self, frames: Sequence[Frame]) -> bytes:
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
                body = error_body(event.message, event.code)
                out.append(f"data: {dumps(body)}\n\n")
            elif isinstance(event, Done):
                out.append(self._finish(event))
        return "".join(out).encode()

    def _finish(self, done: Done) -> str:
        if self._failed:
            return "data: [DONE]\n\n"
        if done.finish_reason in ("error", "cancelled"):
            # Ended without an error frame (every reader left): still say so, not "stop".
            body = error_body("the stream was cancelled", "cancelled")
            return f"data: {dumps(body)}\n\ndata: [DONE]\n\n"
        out = self._chunk({}, done.finish_reason)
        if self.include_usage and self._usage is not None:
            out += (
                f'data: {self._prefix}{self._model},"choices":[],'
                f'"usage":{dumps(usage_data(self._usage))}}}\n\n'
            )
        return out + "data: [DONE]\n\n"


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id. Never the stream id: that is the capability to read the
    stream, and a completion id travels into client logs and traces."""
    return "chatcmpl-" + secrets.token_urlsafe(18)


def openai_encoder(*, include_usage: bool = False) -> EncoderFactory:
    """An encoder factory (``stream_options.include_usage``)."""

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


class CompletionBuilder:
    """Folds a stream's frames into one ``chat.completion`` object (``stream: false``)."""

    def __init__(self, stream_id: str, model: str) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.error: Error | None = None
        self.finish_reason: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools = ToolCalls()
        self._usage: Usage | None = None

    def add(self, frames: Sequence[Frame]) -> None:
        for _seq, event in frames:
            if isinstance(event, TextDelta):
                self._text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                self._reasoning.append(event.text)
            elif isinstance(event, ToolCallDelta):
                self._tools.add(event)
            elif isinstance(event, Start):
                self.model = event.model or self.model
            elif isinstance(event, Usage):
                self._usage = event
            elif isinstance(event, Error):
                self.error = event
            elif isinstance(event, Done):
                self.finish_reason = event.finish_reason

    def response(self) -> Response:
        if self.error is not None:
            return collected_error(self.error, error_body(self.error.message, self.error.code))
        return JSONResponse(self.completion(), headers={"Cache-Control": "no-store"})

    def completion(self) -> dict[str, Any]:
        text = "".join(self._text)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._tools:
            message["tool_calls"] = [
                {
                    "id": call.id or "",
                    "type": "function",
                    "function": {"name": call.name or "", "arguments": call.arguments},
                }
                for call in self._tools
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
            out["usage"] = usage_data(self._usage)
        return out
