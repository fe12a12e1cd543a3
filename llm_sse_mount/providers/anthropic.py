"""Anthropic's Messages API (``POST /v1/messages`` with ``stream: true``).

The request is translated from our OpenAI-shaped :class:`~llm_sse_mount.request.ChatRequest`:
system messages become the top-level ``system``, assistant tool calls ``tool_use`` blocks,
tool messages ``tool_result`` blocks in a user turn (consecutive turns of one role merged, as
the API wants every result of a turn in the next user message), tools get ``input_schema``.

The stream, event by event::

    message_start         usage.input_tokens (+ cache tokens) remembered as prompt tokens
    content_block_start   text / thinking: their initial text, if any;
                          tool_use: ToolCallDelta(id, name) with a 0-based tool index
    content_block_delta   text_delta → TextDelta, thinking_delta → ReasoningDelta,
                          input_json_delta → ToolCallDelta arguments; signature_delta ignored
    content_block_stop    a tool call that got no argument fragment gets "{}"
    message_delta         stop_reason → Finish, cumulative usage.output_tokens → Usage
    message_stop          the end (``finished``)
    ping, unknown events  ignored (Anthropic may add event types)
    error                 UpstreamError (overloaded_error, api_error: retryable)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import httpx

from ..errors import RequestError, UpstreamError, UpstreamTimeout
from ..events import (
    Finish,
    FinishReason,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ..request import ChatRequest, Message
from ..sse_decoder import ServerSentEvent
from . import anthropic_extras as extras
from .http import SSEUpstream, incomplete_unless, json_object, open_event_stream

__all__ = ["Anthropic", "AnthropicStreamParser"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-4-5"

_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: Anthropic ``error.type`` → our code (the catalogue says whether asking again may work).
_ERRORS: dict[str, str] = {
    "overloaded_error": "upstream_overloaded",
    "api_error": "upstream_error",
    "rate_limit_error": "upstream_rate_limited",
    "timeout_error": "upstream_timeout",
    "invalid_request_error": "upstream_rejected",
    "request_too_large": "upstream_rejected",
    "authentication_error": "upstream_auth",
    "permission_error": "upstream_auth",
    "not_found_error": "upstream_not_found",
}


def anthropic_error(payload: Any) -> UpstreamError:
    """An ``{"type": "error", "error": {"type", "message"}}`` payload as an error."""
    err = payload.get("error") if isinstance(payload, Mapping) else None
    kind = str(err.get("type") or "") if isinstance(err, Mapping) else ""
    message = str(err.get("message") or "") if isinstance(err, Mapping) else ""
    code = _ERRORS.get(kind, "upstream_error")
    detail = f"upstream error ({kind or 'unknown'})" + (f": {message}" if message else "")
    if code == "upstream_timeout":
        return UpstreamTimeout(detail)
    return UpstreamError(detail, code=code)


class AnthropicStreamParser:
    """Messages API stream events → provider events. One instance per stream."""

    def __init__(self) -> None:
        self.finished = False
        self._prompt_tokens = 0
        self._stop_seen = False
        #: content block index → 0-based tool call index (OpenAI numbers tool calls alone).
        self._tool_index: dict[int, int] = {}
        self._tool_has_arguments: dict[int, bool] = {}

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        data = json_object(event)
        kind = data.get("type") or event.event
        if kind == "content_block_delta":  # nearly every event: checked first
            return self._delta(data)
        if kind == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self._prompt_tokens = _prompt_tokens(usage) or 0
            return ()
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            index = data.get("index")
            if index in self._tool_index and not self._tool_has_arguments.get(index):
                # No input_json_delta at all means an empty input; OpenAI clients parse "{}".
                self._tool_has_arguments[index] = True
                return (ToolCallDelta(self._tool_index[index], None, None, "{}"),)
            return ()
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self.finished = True
            return ()
        if kind == "error":
            raise anthropic_error(data)
        return ()  # ping, and event types added after this was written

    def _block_start(self, data: dict[str, Any]) -> list[ProviderEvent]:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            tool = self._tool_index.setdefault(index, len(self._tool_index))
            out: list[ProviderEvent] = [
                ToolCallDelta(tool, str(block.get("id") or ""), str(block.get("name") or ""), "")
            ]
            # The input is normally streamed as input_json_delta; a start that already holds
            # a non-empty input (seen from proxies) is sent as the arguments.
            initial = block.get("input")
            if isinstance(initial, dict) and initial:
                self._tool_has_arguments[index] = True
                out.append(ToolCallDelta(tool, None, None, json.dumps(initial)))
            return out
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [TextDelta(block["text"])]
        if kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            return [ReasoningDelta(block["thinking"])]
        return []  # redacted_thinking, server tool blocks: nothing to show

    def _delta(self, data: dict[str, Any]) -> list[ProviderEvent]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            index = data.get("index")
            partial = delta.get("partial_json")
            if index not in self._tool_index or not isinstance(partial, str) or not partial:
                return []
            self._tool_has_arguments[index] = True
            return [ToolCallDelta(self._tool_index[index], None, None, partial)]
        return []  # signature_delta, citations_delta

    def _message_delta(self, data: dict[str, Any]) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        usage = data.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
            # Newer API versions repeat (or correct) the input counts here.
            prompt = _prompt_tokens(usage) or self._prompt_tokens
            completion = usage["output_tokens"]
            out.append(Usage(prompt, completion, prompt + completion))
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if reason:
            self._stop_seen = True
            out.append(Finish(_STOP.get(str(reason), "stop")))
        return out

    def end_of_body(self) -> Iterable[ProviderEvent]:
        return incomplete_unless(self._stop_seen)


def _prompt_tokens(usage: Any) -> int | None:
    """Input tokens as OpenAI counts them: cached ones included."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    total: int = usage["input_tokens"]
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        if isinstance(usage.get(key), int):
            total += usage[key]
    return total


# --- the request ------------------------------------------------------------------------------


def _tool_input(arguments: str, where: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        raise RequestError(
            f"{where}: tool call arguments must be JSON for this provider",
            code="invalid_request",
        ) from None
    if not isinstance(value, dict):
        raise RequestError(f"{where}: tool call arguments must be a JSON object")
    return value


def _blocks(message: Message, i: int) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
        ]
    out = extras.content_blocks(message)  # text and images
    for call in message.tool_calls:
        out.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments, f"messages[{i}].tool_calls"),
            }
        )
    return out


def messages_to_anthropic(
    messages: Iterable[Message],
) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system, messages)`` in the Messages API's shape."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role == "system":
            system.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message, i)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), turns


def _tool_choice(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, Mapping) and fn.get("name"):
            return {"type": "tool", "name": fn["name"]}
        if choice.get("type") in ("auto", "any", "tool", "none"):
            return dict(choice)  # already Anthropic's shape
    raise RequestError(
        "tool_choice cannot be expressed for this provider", code="invalid_parameter"
    )


class Anthropic:
    """Anthropic's Claude models.

    Example::

        app.mount("/llm", LLMMount(provider=Anthropic(api_key="sk-ant-..."),
                                   model="claude-sonnet-4-5"))

    ``max_tokens_default`` is sent when the request names no ``max_tokens`` (the API requires
    one). ``thinking_budget`` switches extended thinking on with that many tokens (it streams
    as reasoning; a request's own reasoning wins). ``structured_output``: a JSON schema as
    structured outputs (``"native"``) or as a forced tool (``"tool"``); see ``anthropic_extras``.
    ``headers`` adds request headers (e.g. ``anthropic-beta``). ``client`` is an
    optional ``httpx.AsyncClient`` of the host's; ``None`` for ``base_url`` or
    ``default_model`` means Anthropic's API and ``claude-sonnet-4-5``.
    """

    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = ANTHROPIC_BASE_URL,
        default_model: str | None = ANTHROPIC_DEFAULT_MODEL,
        client: httpx.AsyncClient | None = None,
        version: str = "2023-06-01",
        max_tokens_default: int = 4096,
        thinking_budget: int | None = None,
        headers: Mapping[str, str] | None = None,
        max_line_bytes: int = 1 << 20,
        structured_output: Literal["native", "tool"] = "native",
    ) -> None:
        self.structured_output = structured_output
        self.base_url = (base_url or ANTHROPIC_BASE_URL).rstrip("/")
        self._api_key = api_key
        self.default_model: str | None = default_model or ANTHROPIC_DEFAULT_MODEL
        self.client = client
        self.version = version
        self.max_tokens_default = max_tokens_default
        self.thinking_budget = thinking_budget
        self._extra_headers = dict(headers or {})
        self.max_line_bytes = max_line_bytes

    def __repr__(self) -> str:
        return f"Anthropic(base_url={self.base_url!r}, api_key='***')"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def build_headers(self) -> dict[str, str]:
        return {
            "accept": "text/event-stream",
            "anthropic-version": self.version,
            **self._extra_headers,
            "x-api-key": self._api_key,
        }

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = messages_to_anthropic(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.max_tokens_default,
            "stream": True,
        }
        if system is not None:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "input_schema": (
                        dict(t.parameters)
                        if t.parameters is not None
                        else {"type": "object", "properties": {}}
                    ),
                }
                for t in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        extras.add_thinking(body, request, self.thinking_budget, self.max_tokens_default)
        extras.add_structured_output(body, request, self.structured_output)
        return body

    capabilities = extras.capabilities

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> SSEUpstream:
        response = await open_event_stream(
            http,
            f"{self.base_url}/v1/messages",
            headers=self.build_headers(),
            body=self.build_body(request),
            on_json_body=_json_instead_of_stream,
            secrets=self.secrets(),
        )
        parser = extras.parser_for(AnthropicStreamParser(), request, self.structured_output)
        return SSEUpstream(response, parser, max_line_bytes=self.max_line_bytes)


def _json_instead_of_stream(payload: Any) -> UpstreamError:
    if isinstance(payload, Mapping) and payload.get("type") == "error":
        return anthropic_error(payload)
    return UpstreamError(
        "the upstream answered with a complete JSON body instead of an event stream",
        code="upstream_bad_response",
    )
