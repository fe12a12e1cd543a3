"""OpenAI's Responses API: ``POST /v1/responses``, streamed and not, for
``client.responses.create(...)``, ``openai-agents``' default model and the AI SDK's
``createOpenAI(...)(model)``. The request is parsed in :mod:`.responses_input`.

Streamed, every frame is ``event: <type>`` + ``data: {..., "sequence_number": n}``, ``n`` from 0
with no gap, in this order (shapes from openai-python's ``types/responses/``)::

    start        → response.created, response.in_progress (status in_progress, output [])
    reasoning    → its own item: output_item.added {type: reasoning}, then
                   reasoning_summary_part.added and reasoning_summary_text.delta
                   (a summary part, the form every client shows; our text is the upstream's
                   thinking as it streamed)
    delta        → a message item: output_item.added {type: message}, content_part.added
                   {output_text}, then output_text.delta
    tool_call    → a function_call item per call: output_item.added, then
                   function_call_arguments.delta
    (the next item, or the end, closes the open one: reasoning_summary_text.done +
    reasoning_summary_part.done / output_text.done + content_part.done /
    function_call_arguments.done, then output_item.done with the whole item)
    done         → exactly one terminal event with the whole response:
                   response.completed (stop, tool_calls; with usage),
                   response.incomplete (length → max_output_tokens, content_filter),
                   response.failed (an error frame, or the stream cancelled)

As on the chat route there are no ``id:`` lines (the SDK's decoder turns a keep-alive comment
after an id into an empty event); resume is not offered in this protocol. Not streamed,
:class:`ResponseCollector` runs the same state machine over the frames and answers with the
final ``response`` object, or an OpenAI-shaped HTTP error when the stream failed.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..codec import dumps
from ..core.context import StreamContext
from ..core.delivery import Collector, Encoder, Reply
from ..core.policy import build_request
from ..core.serving import NewStream
from ..errors import LLMSSEError
from ..events import Done, Error, Frame, ReasoningDelta, Start, TextDelta, ToolCallDelta, Usage
from ..request import ChatRequest
from .base import ClientProtocol
from .http import collected_error, read_json_body
from .openai_chat import error_body, openai_error_response
from .responses_input import parse_responses_body

__all__ = ["OPENAI_RESPONSES", "ResponseCollector", "ResponsesEncoder"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def echo_of(body: Mapping[str, Any], chat: ChatRequest) -> dict[str, Any]:
    """The request fields a ``response`` object repeats back (validated by then)."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    reasoning: Mapping[str, Any] = body.get("reasoning") or {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": chat.max_tokens,
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "temperature": chat.temperature,
        "text": {"format": fmt or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters) if t.parameters is not None else None,
                "strict": None,
            }
            for t in chat.tools
        ],
        "top_p": chat.top_p,
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
    }


class ResponsesEncoder:
    """Frames → the Responses API's typed events. One instance per response: it numbers the
    events and keeps the output items, which the terminal event repeats whole."""

    def __init__(self, stream_id: str, model: str, echo: Mapping[str, Any]) -> None:
        # Not the stream id itself: that is the capability to read the stream, and response
        # and item ids travel into client logs and traces. A one-way digest of it keeps them
        # the same for every encoder of one stream.
        self.id_base = hashlib.sha256(b"responses ids\0" + stream_id.encode()).hexdigest()[:24]
        self.model = model
        self.echo = echo
        self.created_at = int(time.time())
        self.status = "in_progress"
        self.error: Error | None = None
        self.usage: Usage | None = None
        self.incomplete_reason: str | None = None
        self.output: list[dict[str, Any]] = []
        self._seq = 0
        self._out: list[str] = []
        #: The open message or reasoning item (its output index), and open function calls.
        self._open: int | None = None
        self._calls: dict[int, int] = {}  # tool index → output index
        # The growing text of each open item (answer, summary or arguments), as pieces: a
        # string held in a dict is copied whole by every +=, which is quadratic in the answer.
        self._pieces: dict[int, list[str]] = {}

    # --- the response object -----------------------------------------------------------------

    def response(self) -> dict[str, Any]:
        """The ``response`` object as it stands (what the terminal event carries)."""
        error = None
        if self.error is not None:
            error = {"code": self.error.code, "message": self.error.message}
        return {
            "id": f"resp_{self.id_base}",
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": False,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "error": error,
            "incomplete_details": (
                {"reason": self.incomplete_reason} if self.incomplete_reason else None
            ),
            "max_tool_calls": None,
            "model": self.model,
            "output": copy.deepcopy(self.output),
            "previous_response_id": None,
            "service_tier": "default",
            "store": False,
            "top_logprobs": 0,
            "truncation": "disabled",
            "usage": None if self.usage is None else _usage(self.usage),
            **self.echo,
        }

    # --- frames in, events out -----------------------------------------------------------------

    def encode(self, frames: Sequence[Frame]) -> bytes:
        for _seq, event in frames:
            if type(event) is TextDelta:
                self._text(event.text)
            elif isinstance(event, ReasoningDelta):
                self._reasoning(event.text)
            elif isinstance(event, ToolCallDelta):
                self._tool_call(event)
            elif isinstance(event, Start):
                self.model = event.model or self.model
                self._emit("response.created", response=self.response())
                self._emit("response.in_progress", response=self.response())
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, Error):
                self.error = event
            elif isinstance(event, Done):
                self._done(event)
        data = "".join(self._out).encode()
        self._out.clear()
        return data

    def _emit(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        self._out.append(f"event: {kind}\ndata: {dumps(payload)}\n\n")

    def _add_item(self, item: dict[str, Any]) -> int:
        index = len(self.output)
        self.output.append(item)
        self._emit("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        return index

    def _current(self, kind: str) -> int | None:
        if self._open is not None and self.output[self._open]["type"] == kind:
            return self._open
        return None

    def _text(self, text: str) -> None:
        index = self._current("message")
        if index is None:
            self._close_all("completed")
            item_id = f"msg_{self.id_base}_{len(self.output)}"
            head = {"id": item_id, "type": "message", "status": "in_progress"}
            index = self._add_item({**head, "content": [], "role": "assistant"})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            self.output[index]["content"].append(dict(part))
            self._emit(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=part,
            )
            self._open = index
        item = self.output[index]
        self._pieces.setdefault(index, []).append(text)
        self._emit(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _reasoning(self, text: str) -> None:
        index = self._current("reasoning")
        if index is None:
            self._close_all("completed")
            item_id = f"rs_{self.id_base}_{len(self.output)}"
            index = self._add_item({"id": item_id, "type": "reasoning", "summary": []})
            self.output[index]["summary"].append({"type": "summary_text", "text": ""})
            self._emit(
                "response.reasoning_summary_part.added",
                item_id=item_id,
                output_index=index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
            self._open = index
        item = self.output[index]
        self._pieces.setdefault(index, []).append(text)
        self._emit(
            "response.reasoning_summary_text.delta",
            item_id=item["id"],
            output_index=index,
            summary_index=0,
            delta=text,
        )

    def _tool_call(self, event: ToolCallDelta) -> None:
        index = self._calls.get(event.index)
        if index is None:
            if self._open is not None:
                self._close(self._open, "completed")
            item_id = f"fc_{self.id_base}_{len(self.output)}"
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": event.id or f"call_{self.id_base}_{event.index}",
                "name": event.name or "",
            }
            index = self._calls[event.index] = self._add_item(item)
        item = self.output[index]
        if event.name and not item["name"]:
            item["name"] = event.name
        if event.arguments:
            self._pieces.setdefault(index, []).append(event.arguments)
            self._emit(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=event.arguments,
            )

    def _close_all(self, status: str) -> None:
        opened = {*self._calls.values(), *(() if self._open is None else (self._open,))}
        for index in sorted(opened):
            self._close(index, status)

    def _close(self, index: int, status: str) -> None:
        item = self.output[index]
        text = "".join(self._pieces.pop(index, ()))
        if item["type"] == "message":
            item["content"][0]["text"] = text
        elif item["type"] == "reasoning":
            item["summary"][0]["text"] = text
        else:
            item["arguments"] = text
        if index == self._open:
            self._open = None
        self._calls = {k: v for k, v in self._calls.items() if v != index}
        base = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            self._emit(
                "response.output_text.done",
                **base,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            self._emit("response.content_part.done", **base, content_index=0, part=dict(part))
        elif item["type"] == "reasoning":
            part = item["summary"][0]
            self._emit(
                "response.reasoning_summary_text.done", **base, summary_index=0, text=part["text"]
            )
            self._emit(
                "response.reasoning_summary_part.done", **base, summary_index=0, part=dict(part)
            )
        else:
            self._emit(
                "response.function_call_arguments.done",
                **base,
                name=item["name"],
                arguments=item["arguments"],
            )
        if item["type"] != "reasoning":
            item["status"] = status
        self._emit("response.output_item.done", output_index=index, item=copy.deepcopy(item))

    def _done(self, done: Done) -> None:
        reason = done.finish_reason
        failed = self.error is not None or reason in ("error", "cancelled")
        self._close_all("incomplete" if failed or reason in _INCOMPLETE else "completed")
        if failed:
            if self.error is None:  # every reader left, or the mount stopped it
                self.error = Error("cancelled", "the stream was cancelled")
            self.status = "failed"
            self._emit("response.failed", response=self.response())
        elif reason in _INCOMPLETE:
            self.status = "incomplete"
            self.incomplete_reason = _INCOMPLETE[reason]
            self._emit("response.incomplete", response=self.response())
        else:
            self.status = "completed"
            self._emit("response.completed", response=self.response())


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


class ResponseCollector:
    """``stream: false``: the same state machine, answering with the final ``response``, or
    with an OpenAI-shaped HTTP error when the stream failed."""

    def __init__(self, stream_id: str, model: str, echo: Mapping[str, Any]) -> None:
        self.encoder = ResponsesEncoder(stream_id, model, echo)

    def add(self, frames: Sequence[Frame]) -> None:
        self.encoder.encode(frames)

    def response(self) -> Response:
        err = self.encoder.error
        if err is not None:
            return collected_error(err, error_body(err.message, err.code))
        return JSONResponse(self.encoder.response(), headers={"Cache-Control": "no-store"})


def _reply(echo: Mapping[str, Any], stream: bool) -> Reply:
    if stream:

        def encoder(stream_id: str, model: str) -> Encoder:
            return ResponsesEncoder(stream_id, model, echo)

        return Reply(openai_error_response, encoder=encoder, protocol="responses")

    def collector(stream_id: str, model: str) -> Collector:
        return ResponseCollector(stream_id, model, echo)

    return Reply(openai_error_response, collector=collector, protocol="responses")


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    async def create(request: Request) -> Response:
        try:
            body = await read_json_body(request, policy.max_body_bytes)
            fields, stream = parse_responses_body(body)
            chat = build_request(policy, fields)
        except LLMSSEError as exc:
            return openai_error_response(exc)
        return NewStream(ctx, chat, _reply(echo_of(body, chat), stream))

    return [Route("/v1/responses", create, methods=["POST"])]


#: ``POST /v1/responses``.
OPENAI_RESPONSES = ClientProtocol("openai_responses", _routes)
