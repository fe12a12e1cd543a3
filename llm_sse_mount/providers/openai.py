"""OpenAI's chat completions stream, as spoken by OpenAI and every compatible server
(DeepSeek, Moonshot, vLLM, Ollama, llama.cpp's server, Zhipu GLM with a few differences).

What the parser copes with, all seen in the wild:

- ``delta.content`` and ``delta.reasoning_content`` (DeepSeek, GLM; ``delta.reasoning`` on
  vLLM and OpenRouter) in any order, possibly in the same chunk;
- ``delta.tool_calls`` fragments, of which only the first per call carries ``id`` and name,
  repaired by :class:`~llm_sse_mount.providers.tool_calls.ToolCallAssembler` (no ``index``,
  parallel calls all at ``index: 0``, no ``id``, ``arguments`` as an object);
- inline ``<think>…</think>`` at the start of ``content`` (R1-style models without a reasoning
  parser), split into reasoning by :class:`~llm_sse_mount.providers.think_tags.ThinkTagSplitter`
  when ``think_tags`` is on (the default here; off for Zhipu);
- ``finish_reason`` (sent twice by GLM: the last one wins), with vendor values mapped;
- usage on a trailing chunk with empty ``choices`` (OpenAI with ``stream_options``), on the last
  chunk together with choices (GLM), or inside the choice (Moonshot);
- ``: keep-alive`` comments (the decoder drops them), ``{"error": {...}}`` as a data frame
  mid-stream, ``data: [DONE]``, and a body that ends without ``[DONE]`` after a finish reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ..errors import UpstreamError
from ..events import (
    Finish,
    FinishReason,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ..request import ChatRequest, ImagePart, Message, ResponseFormat, TextPart
from ..sse_decoder import ServerSentEvent
from .capabilities import Capabilities
from .http import SSEUpstream, incomplete_unless, json_object, open_event_stream
from .think_tags import ThinkTagSplitter
from .tool_calls import ToolCallAssembler

__all__ = ["OpenAICompatible", "OpenAIStreamParser"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "sensitive": "content_filter",  # GLM
}


def usage_from(obj: Any) -> Usage | None:
    """An OpenAI-style usage object as :class:`Usage` (``None`` when absent or not numeric)."""
    if not isinstance(obj, Mapping):
        return None
    prompt = obj.get("prompt_tokens")
    completion = obj.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = obj.get("total_tokens")
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


def mid_stream_error(payload: Any) -> UpstreamError:
    """An ``{"error": ...}`` data frame as an error (vendor code kept in the message)."""
    err = payload.get("error") if isinstance(payload, Mapping) else None
    if isinstance(err, Mapping):
        message = str(err.get("message") or "the upstream reported an error")
        code = err.get("code") or err.get("type")
        if code is not None:
            message = f"{message} ({code})"
    else:
        message = str(err) if err else "the upstream reported an error"
    return UpstreamError(f"upstream error: {message}", code="upstream_error")


class OpenAIStreamParser:
    """Chat-completion chunks → provider events. One instance per stream."""

    def __init__(self, *, think_tags: bool = True) -> None:
        self.finished = False
        self._saw_finish = False
        self._think = ThinkTagSplitter() if think_tags else None
        self._tools = ToolCallAssembler()

    def _flush(self, out: list[ProviderEvent]) -> None:
        # The answer is over: held-back tag prefixes belong to the answer (or to a think that
        # never closed), and a tool call still waiting for its name goes out without one.
        if self._think is not None:
            out.extend(self._think.flush())
        out.extend(self._tools.flush())

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        data = event.data
        if data == "[DONE]":
            self.finished = True
            out: list[ProviderEvent] = []
            self._flush(out)
            return out
        chunk = json_object(event, "a chunk")
        if chunk.get("error") or event.event == "error":
            raise mid_stream_error(chunk)
        out = []
        choices = chunk.get("choices")
        if choices and isinstance(choices, list):
            # n > 1 is not supported downstream: the first choice is the answer.
            choice = choices[0]
            if isinstance(choice, dict):
                self._choice(choice, out)
        usage = usage_from(chunk.get("usage"))
        if usage is not None:
            out.append(usage)
        return out

    def _choice(self, choice: dict[str, Any], out: list[ProviderEvent]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if content and isinstance(content, str):
                if self._think is None:
                    out.append(TextDelta(content))
                else:
                    out.extend(self._think.feed(content))
                    if self._think.state == "answer":
                        # Settled (its buffer is empty): later content is plain answer text,
                        # with no splitter call per token.
                        self._think = None
            tool_calls = delta.get("tool_calls")
            if tool_calls and isinstance(tool_calls, list):
                for call in tool_calls:
                    out.extend(self._tool_call(call))
        usage = usage_from(choice.get("usage"))  # Moonshot puts it inside the choice
        if usage is not None:
            out.append(usage)
        reason = choice.get("finish_reason")
        if reason:
            if reason == "network_error":  # GLM: inference failed mid-answer
                raise UpstreamError(
                    "the upstream reported a network error while generating",
                    code="upstream_network_error",
                )
            self._saw_finish = True
            self._flush(out)
            out.append(Finish(_FINISH.get(str(reason), "stop")))

    def _tool_call(self, call: Any) -> Iterable[ToolCallDelta]:
        if not isinstance(call, dict):
            raise UpstreamError("malformed tool call fragment", code="upstream_bad_response")
        fn = call.get("function")
        if fn is not None and not isinstance(fn, dict):
            raise UpstreamError("malformed tool call fragment", code="upstream_bad_response")
        fn = fn or {}
        return self._tools.feed(
            index=call.get("index"),
            id=call.get("id"),
            name=fn.get("name"),
            arguments=fn.get("arguments"),
        )

    def end_of_body(self) -> Iterable[ProviderEvent]:
        return incomplete_unless(self._saw_finish)


def image_to_openai(image: ImagePart) -> dict[str, Any]:
    """OpenAI's ``image_url`` part, the URL (or ``data:`` URI) as the client gave it."""
    url: dict[str, Any] = {"url": image.url}
    if image.detail:
        url["detail"] = image.detail
    return {"type": "image_url", "image_url": url}


def message_to_openai(
    message: Message, image: Callable[[ImagePart], dict[str, Any]] = image_to_openai
) -> dict[str, Any]:
    content: str | list[dict[str, Any]] = message.content
    if message.parts:
        content = [
            {"type": "text", "text": p.text} if isinstance(p, TextPart) else image(p)
            for p in message.parts
        ]
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        if not message.content:
            out["content"] = None
    return out


class OpenAICompatible:
    """Any server speaking OpenAI's ``/chat/completions`` stream.

    Example::

        provider = OpenAICompatible("https://api.deepseek.com/v1", api_key="sk-...",
                                    default_model="deepseek-chat")

    ``base_url`` is the API root (the part before ``/chat/completions``). ``client`` is an
    optional ``httpx.AsyncClient`` of the host's (transport, proxies, limits); without one the
    mount's own client is used. ``stream_usage`` asks for ``stream_options.include_usage``
    (switch it off for servers that reject the option). ``think_tags`` splits an inline
    ``<think>…</think>`` at the start of the content into reasoning (see ``think_tags``); switch
    it off for a model whose answers may legitimately begin with that tag.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        *,
        default_model: str | None = None,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        stream_usage: bool = True,
        think_tags: bool = True,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.think_tags = think_tags
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.default_model = default_model
        self.client = client
        self._extra_headers = dict(headers or {})
        self.stream_usage = stream_usage
        self.max_line_bytes = max_line_bytes

    def __repr__(self) -> str:
        key = "***" if self._api_key else None
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def authorization(self) -> str | None:
        return f"Bearer {self._api_key}" if self._api_key else None

    def build_headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream", **self._extra_headers}
        auth = self.authorization()
        if auth:
            headers["authorization"] = auth
        return headers

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [message_to_openai(m, self.image_part) for m in request.messages],
            "stream": True,
        }
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        for key in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        **({"parameters": dict(t.parameters)} if t.parameters is not None else {}),
                    },
                }
                for t in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            body["response_format"] = response_format_to_openai(request.response_format)
        if request.reasoning is not None and request.reasoning.effort:
            body["reasoning_effort"] = request.reasoning.effort
        return body

    def capabilities(self, model: str) -> Capabilities:
        """Everything, passed on as is: what a server cannot take, it refuses itself."""
        return openai_capabilities(self, model)

    def image_part(self, image: ImagePart) -> dict[str, Any]:
        """One image in this server's form (OpenAI's ``image_url`` part)."""
        return image_to_openai(image)

    def new_parser(self) -> OpenAIStreamParser:
        return OpenAIStreamParser(think_tags=self.think_tags)

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> SSEUpstream:
        headers = self.build_headers()  # first: it may sign a new token that secrets() names
        response = await open_event_stream(
            http,
            f"{self.base_url}/chat/completions",
            headers=headers,
            body=self.build_body(request),
            on_json_body=_json_instead_of_stream,
            secrets=self.secrets(),
        )
        return SSEUpstream(response, self.new_parser(), max_line_bytes=self.max_line_bytes)


def response_format_to_openai(fmt: ResponseFormat) -> dict[str, Any]:
    """OpenAI chat's ``response_format``."""
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": dict(fmt.schema or {})}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


#: An OpenAI-compatible server gets images and formats as is: the server decides.
_EVERYTHING = Capabilities(
    image_urls=True, image_data=True, response_formats=frozenset({"json_object", "json_schema"})
)


def openai_capabilities(provider: object, model: str) -> Capabilities:
    """What an OpenAI API server takes: everything, passed on as is."""
    return _EVERYTHING


def _json_instead_of_stream(payload: Any) -> UpstreamError:
    if isinstance(payload, Mapping) and payload.get("error"):
        return mid_stream_error(payload)
    return UpstreamError(
        "the upstream answered with a complete JSON body instead of an event stream",
        code="upstream_bad_response",
    )
