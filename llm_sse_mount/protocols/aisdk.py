"""The Vercel AI SDK UI message stream, protocol v1: what ``useChat`` (AI SDK 5+) reads.

``POST /ai-sdk/chat`` takes the body of ``DefaultChatTransport`` (see
:mod:`.aisdk_messages`) and answers with the header ``x-vercel-ai-ui-message-stream: v1`` and
one ``data: {json}`` SSE event per chunk, ending with ``data: [DONE]``::

    start{messageId} start-step
      (text-start text-delta* text-end | reasoning-start reasoning-delta* reasoning-end
       | tool-input-start tool-input-delta*)*
      tool-input-available*  [error{errorText}]
    finish-step finish{messageMetadata?} [DONE]

Deliberate choices, each checked against the SDK's own parser (``tests/js/aisdk``):

- Only keys of the SDK's chunk schema are sent. AI SDK 5.0.x and early 6.0.x validate with
  ``strictObject``, so one extra key (``finishReason`` in ``finish``, which 5.0.0 does not know)
  makes the client reject the whole response. No ``id:`` lines either: the SDK ignores them, and
  this route has no resume.
- A text or reasoning block is closed before the other kind (or a tool call) starts, and before
  an error or the finish, so every part ends in state ``done``.
- Tool calls become available (``tool-input-available``, with the arguments parsed as JSON) when
  the step ends, because only then are their arguments known to be complete. Arguments that are
  not valid JSON are passed as the raw string rather than dropped (``tool-input-error`` would
  say it better, but AI SDK 5.0.0 rejects that chunk). After an error the unfinished calls stay
  in ``input-streaming``.
- ``errorText`` is ``"<code>: <message>"``: the chunk has no field for our stable code.
- Usage goes in ``finish.messageMetadata`` as ``{"usage": {inputTokens, outputTokens,
  totalTokens}}`` (the schema allows any metadata; the names are the SDK's ``LanguageModelUsage``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..codec import dumps
from ..core.context import StreamContext
from ..core.delivery import Reply
from ..core.policy import build_request
from ..core.serving import NewStream
from ..errors import LLMSSEError
from ..events import (
    Done,
    Error,
    Frame,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .aisdk_messages import parse_ui_body
from .base import ClientProtocol
from .http import error_response, read_json_body
from .tool_calls import ToolCalls

__all__ = ["AI_SDK", "UI_MESSAGE_STREAM_HEADERS", "AISDKEncoder"]

#: The header the AI SDK's own server helpers send with a UI message stream.
UI_MESSAGE_STREAM_HEADERS: Mapping[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}

_DONE = b"data: [DONE]\n\n"


def _parse_arguments(text: str) -> Any:
    """The tool input as JSON; ``{}`` for no arguments; the raw string if it is not JSON."""
    if not text.strip():
        return {}

    def reject(constant: str) -> Any:
        # NaN and Infinity parse in Python but cannot be sent back out as JSON.
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=reject)
    except ValueError:
        return text


class AISDKEncoder:
    """Encodes one response's frames as AI SDK UI message stream chunks (stateful: it tracks the
    open text/reasoning block and the tool calls of the step).

    ``message_id`` is the id of the assistant message the chunks build (default: a new one;
    never the stream id, which is the capability to read the stream). When the client continues
    an assistant message (its last message is the assistant's, e.g. after tool results), the
    SDK expects that message's id back, as its own server does.
    """

    def __init__(self, stream_id: str, model: str = "", *, message_id: str | None = None) -> None:
        self._message_id = message_id or "msg-" + secrets.token_urlsafe(12)
        self._open: tuple[str, str] | None = None  # (kind, block id)
        self._blocks = 0
        self._calls = ToolCalls()
        self._usage: Usage | None = None
        self._failed = False

    def encode(self, frames: Sequence[Frame]) -> bytes:
        chunks: list[dict[str, Any]] = []
        done = False
        for _seq, event in frames:
            done = self._event(event, chunks) or done
        data = "".join(f"data: {dumps(chunk)}\n\n" for chunk in chunks).encode()
        return data + _DONE if done else data

    # --- one event -> chunks --------------------------------------------------------------

    def _event(self, event: StreamEvent, out: list[dict[str, Any]]) -> bool:
        """Append the chunks for ``event``; True once the stream is over."""
        if type(event) is TextDelta:
            self._delta("text", event.text, out)
        elif type(event) is ReasoningDelta:
            self._delta("reasoning", event.text, out)
        elif type(event) is ToolCallDelta:
            self._tool_call(event, out)
        elif type(event) is Start:
            out += [{"type": "start", "messageId": self._message_id}, {"type": "start-step"}]
        elif type(event) is Usage:
            self._usage = event  # cumulative: the last one wins
        elif type(event) is Error:
            self._close_block(out)
            self._failed = True
            out.append({"type": "error", "errorText": f"{event.code}: {event.message}"})
        elif type(event) is Done:
            self._finish(event, out)
            return True
        return False

    def _delta(self, kind: str, text: str, out: list[dict[str, Any]]) -> None:
        if not text:
            return
        if self._open is None or self._open[0] != kind:
            self._close_block(out)
            block_id = f"{kind}-{self._blocks}"
            self._blocks += 1
            self._open = (kind, block_id)
            out.append({"type": f"{kind}-start", "id": block_id})
        out.append({"type": f"{kind}-delta", "id": self._open[1], "delta": text})

    def _close_block(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            kind, block_id = self._open
            out.append({"type": f"{kind}-end", "id": block_id})
            self._open = None

    def _tool_call(self, event: ToolCallDelta, out: list[dict[str, Any]]) -> None:
        self._close_block(out)
        call, new = self._calls.add(event)
        if new:
            # Providers put id and name on a call's first fragment; should one not, the SDK
            # still needs strings to key the part by.
            call.id = call.id or f"{self._message_id}-call-{event.index}"
            call.name = call.name or "unknown"
            out.append({"type": "tool-input-start", "toolCallId": call.id, "toolName": call.name})
        if event.arguments:
            delta = {"type": "tool-input-delta", "toolCallId": call.id}
            out.append({**delta, "inputTextDelta": event.arguments})

    def _finish(self, event: Done, out: list[dict[str, Any]]) -> None:
        self._close_block(out)
        if not self._failed and event.finish_reason != "cancelled":
            for call in self._calls:
                out.append(
                    {
                        "type": "tool-input-available",
                        "toolCallId": call.id,
                        "toolName": call.name,
                        "input": _parse_arguments(call.arguments),
                    }
                )
        self._calls.clear()
        out.append({"type": "finish-step"})
        finish: dict[str, Any] = {"type": "finish"}
        if self._usage is not None:
            u = self._usage
            finish["messageMetadata"] = {
                "usage": {
                    "inputTokens": u.prompt_tokens,
                    "outputTokens": u.completion_tokens,
                    "totalTokens": u.total_tokens,
                }
            }
        out.append(finish)


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    async def ai_sdk_chat(request: Request) -> Response:
        try:
            body = await read_json_body(request, policy.max_body_bytes)
            parsed = parse_ui_body(body)
            chat = build_request(policy, parsed.fields)
        except LLMSSEError as exc:
            return error_response(exc)
        encoder = partial(AISDKEncoder, message_id=parsed.continued_message_id)
        reply = Reply(
            error_response, encoder=encoder, headers=UI_MESSAGE_STREAM_HEADERS, protocol="ai-sdk"
        )
        return NewStream(ctx, chat, reply)

    return [Route("/ai-sdk/chat", ai_sdk_chat, methods=["POST"])]


#: ``POST /ai-sdk/chat``.
AI_SDK = ClientProtocol("ai-sdk", _routes)
