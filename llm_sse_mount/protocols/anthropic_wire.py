"""Anthropic's Messages API on the wire: the event stream, the ``message`` object, the errors.

Streamed (``stream: true``), as the ``anthropic`` SDK's ``MessageStream`` accumulates it::

    Start            → message_start (an empty ``message``, usage 0/0), then one ``ping``
    TextDelta        → content_block_start {text} once per run, content_block_delta text_delta
    ReasoningDelta   → content_block_start {thinking, signature ""}, thinking_delta
    ToolCallDelta    → content_block_start {tool_use id name input {}}, input_json_delta
                       (a new kind of block closes the open one with content_block_stop)
    Usage            → held for message_delta (``usage.input_tokens`` and ``output_tokens``)
    Done             → content_block_stop, message_delta {stop_reason}, message_stop
    Error            → ``event: error`` {"type": "error", "error": {"type", "message", "code"}}
                       and the stream ends there, as Anthropic's does

Deliberate divergences: no ``id:`` lines (Anthropic sends none and this stream is not
resumable); keep-alives are SSE comments (the SDK's decoder skips them), beyond the one
``ping`` event after ``message_start``; thinking blocks carry an empty ``signature`` (we have
no signature to give, and no upstream here checks one); input token counts arrive in
``message_delta``, where the API puts its corrections too, because OpenAI-compatible upstreams
report usage only at the end. A tool call's fragments go to its own block index, even in the
rare case an upstream interleaves two calls.

Not streamed: :class:`MessageBuilder` folds the same frames into one ``message``. Message ids
are fresh (``msg_...``), never the stream id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse, Response

from ..codec import dumps
from ..errors import LLMSSEError, UpstreamError, error_kind
from ..events import Done, Error, Frame, ReasoningDelta, Start, TextDelta, ToolCallDelta, Usage
from .http import collected_error, error_headers
from .tool_calls import ToolCalls

__all__ = [
    "AnthropicEncoder",
    "MessageBuilder",
    "anthropic_error_response",
    "error_payload",
    "message_id",
    "stop_reason",
]

#: Our finish reasons → Anthropic's ``stop_reason``.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: str | None) -> str:
    """Anthropic's ``stop_reason`` for one of our finish reasons."""
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def error_payload(message: str, code: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message", "code"}}``: Anthropic's shape, plus our
    stable ``code`` (clients that do not know it ignore it)."""
    kind = error_kind(code).anthropic_type
    return {"type": "error", "error": {"type": kind, "message": message, "code": code}}


def anthropic_error_response(exc: LLMSSEError) -> JSONResponse:
    """An error before the stream, in Anthropic's shape, with our status and stable code."""
    return JSONResponse(
        error_payload(exc.message, exc.code), status_code=exc.status, headers=error_headers(exc)
    )


def message_id() -> str:
    """A fresh ``msg_`` id. Never the stream id: that is the capability to read the stream,
    and a message id travels into client logs and traces."""
    return "msg_" + secrets.token_urlsafe(18)


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {dumps(data)}\n\n"


class AnthropicEncoder:
    """Frames → Anthropic stream events. One instance per response: it tracks the open content
    block, the block index of each tool call, and the usage to report at the end."""

    def __init__(self, stream_id: str, model: str = "") -> None:
        self._id = message_id()
        self._model = model
        self._usage: Usage | None = None
        self._open: tuple[str, int] | None = None  # (kind, block index) of the open block
        self._blocks = 0
        self._tools: dict[int, int] = {}  # our tool call index → block index
        self._ended = False

    def encode(self, frames: Sequence[Frame]) -> bytes:
        out: list[str] = []
        for _seq, event in frames:
            if self._ended:
                break
            if type(event) is TextDelta:
                if event.text:
                    index = self._block(out, "text", {"type": "text", "text": ""})
                    out.append(_delta(index, {"type": "text_delta", "text": event.text}))
            elif isinstance(event, ReasoningDelta):
                if event.text:
                    start = {"type": "thinking", "thinking": "", "signature": ""}
                    index = self._block(out, "thinking", start)
                    out.append(_delta(index, {"type": "thinking_delta", "thinking": event.text}))
            elif isinstance(event, ToolCallDelta):
                self._tool(out, event)
            elif isinstance(event, Start):
                self._model = event.model or self._model
                out.append(self._message_start())
                out.append(_event("ping", {"type": "ping"}))
            elif isinstance(event, Usage):
                self._usage = event
            elif isinstance(event, Error):
                self._ended = True
                out.append(_event("error", error_payload(event.message, event.code)))
            elif isinstance(event, Done):
                out.append(self._finish(event))
        return "".join(out).encode()

    def _message_start(self) -> str:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _block(self, out: list[str], kind: str, start: Mapping[str, Any]) -> int:
        """The index of the open block of ``kind``, opening one (and closing the last) if not."""
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._close(out)
        index = self._blocks
        self._blocks += 1
        self._open = (kind, index)
        start_event = {"type": "content_block_start", "index": index, "content_block": start}
        out.append(_event("content_block_start", start_event))
        return index

    def _close(self, out: list[str]) -> None:
        if self._open is not None:
            stop = {"type": "content_block_stop", "index": self._open[1]}
            out.append(_event("content_block_stop", stop))
            self._open = None

    def _tool(self, out: list[str], event: ToolCallDelta) -> None:
        index = self._tools.get(event.index)
        if index is None:
            # The first fragment of a call (an id-less one still gets a block and an id).
            call_id = event.id or f"toolu_{self._id[4:]}_{event.index}"
            start = {"type": "tool_use", "id": call_id, "name": event.name or "", "input": {}}
            index = self._block(out, f"tool_use:{event.index}", start)
            self._tools[event.index] = index
        if event.arguments:
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            out.append(_delta(index, delta))

    def _finish(self, done: Done) -> str:
        self._ended = True
        out: list[str] = []
        if done.finish_reason in ("error", "cancelled"):
            # Ended without an error frame (every reader left): still say so, not end_turn.
            return _event("error", error_payload("the stream was cancelled", "cancelled"))
        self._close(out)
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            usage = {
                "input_tokens": self._usage.prompt_tokens,
                "output_tokens": self._usage.completion_tokens,
            }
        delta = {"stop_reason": stop_reason(done.finish_reason), "stop_sequence": None}
        out.append(
            _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        out.append(_event("message_stop", {"type": "message_stop"}))
        return "".join(out)


def _delta(index: int, delta: Mapping[str, Any]) -> str:
    return _event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


class MessageBuilder:
    """Folds a stream's frames into one Messages API ``message`` (``stream: false``): the
    :class:`~..core.delivery.Collector` of this protocol.

    Blocks follow the order the stream opened them, with the encoder's rules: consecutive text
    is one block, consecutive thinking one block, each tool call one ``tool_use`` block whose
    ``input`` is its arguments parsed. A call whose arguments are not a JSON object cannot be
    put in Anthropic's shape: the answer is then a 502 ``upstream_bad_response``.
    """

    def __init__(self, stream_id: str, model: str) -> None:
        self.id = message_id()
        self.model = model
        self.error: Error | None = None
        self.finish_reason: str | None = None
        self._blocks: list[dict[str, Any]] = []
        self._tools = ToolCalls()
        self._usage: Usage | None = None

    def add(self, frames: Sequence[Frame]) -> None:
        for _seq, event in frames:
            if isinstance(event, TextDelta):
                self._append("text", event.text)
            elif isinstance(event, ReasoningDelta):
                self._append("thinking", event.text)
            elif isinstance(event, ToolCallDelta):
                _call, new = self._tools.add(event)
                if new:  # its place among the blocks; its content is assembled at the end
                    self._blocks.append({"type": "tool_use", "index": event.index})
            elif isinstance(event, Start):
                self.model = event.model or self.model
            elif isinstance(event, Usage):
                self._usage = event
            elif isinstance(event, Error):
                self.error = event
            elif isinstance(event, Done):
                self.finish_reason = event.finish_reason

    def _append(self, kind: str, text: str) -> None:
        if not text:
            return
        if self._blocks and self._blocks[-1]["type"] == kind:
            # Pieces, joined in message(): += on a string held in a dict copies it whole.
            self._blocks[-1]["pieces"].append(text)
        else:
            block: dict[str, Any] = {"type": kind, "pieces": [text]}
            if kind == "thinking":
                block["signature"] = ""
            self._blocks.append(block)

    def response(self) -> Response:
        if self.error is not None:
            return collected_error(self.error, error_payload(self.error.message, self.error.code))
        try:
            message = self.message()
        except UpstreamError as exc:
            return anthropic_error_response(exc)
        return JSONResponse(message, headers={"Cache-Control": "no-store"})

    def message(self) -> dict[str, Any]:
        """The ``message`` object (raises :class:`UpstreamError` for a tool call whose
        arguments are not a JSON object)."""
        calls = {call.index: call for call in self._tools}
        content = []
        for block in self._blocks:
            if block["type"] != "tool_use":
                pieces = block["pieces"]
                out = {k: v for k, v in block.items() if k != "pieces"}
                content.append({**out, block["type"]: "".join(pieces)})
                continue
            call = calls[block["index"]]
            raw = call.arguments
            try:
                value = json.loads(raw) if raw.strip() else {}
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise UpstreamError(
                    f"the upstream's arguments for the tool call {call.name!r} are not a JSON "
                    "object",
                    code="upstream_bad_response",
                )
            call_id = call.id or f"toolu_{self.id[4:]}_{call.index}"
            content.append(
                {"type": "tool_use", "id": call_id, "name": call.name or "", "input": value}
            )
        usage = {"input_tokens": 0, "output_tokens": 0}
        if self._usage is not None:
            usage = {
                "input_tokens": self._usage.prompt_tokens,
                "output_tokens": self._usage.completion_tokens,
            }
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason(self.finish_reason),
            "stop_sequence": None,
            "usage": usage,
        }
