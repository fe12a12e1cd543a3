"""OpenAI's Responses API as the upstream (``POST {base}/responses`` with ``stream: true``).

Reasoning summaries of OpenAI's reasoning models only come this way (chat completions never
carry them). The request, from our :class:`~llm_sse_mount.request.ChatRequest`:

============================  ======================================================
ChatRequest                   Responses API body
============================  ======================================================
``system`` messages           ``instructions`` (joined by a blank line)
``user`` / ``assistant``      ``input[]`` ``{"role", "content": "<text>"}``
assistant ``tool_calls``      ``input[]`` ``{"type": "function_call", "call_id", "name",
                              "arguments"}``
``tool`` message              ``input[]`` ``{"type": "function_call_output", "call_id",
                              "output"}``
``tools[]``                   ``tools[]`` ``{"type": "function", "name", "description",
                              "parameters", "strict": false}`` (flat, not nested)
``tool_choice``               ``"auto"`` / ``"none"`` / ``"required"`` /
                              ``{"type": "function", "name"}``
``max_tokens``                ``max_output_tokens``; ``temperature``, ``top_p`` as is
``stop``                      refused (``invalid_parameter``): the API has no stop
(always)                      ``store: false`` (the mount keeps no server-side state),
                              ``reasoning.summary`` when ``reasoning_summary`` is set
============================  ======================================================

The typed events in (shapes from openai-python ``types/responses/``), normalized:

==========================================  ============================================
event                                       normalized
==========================================  ============================================
``response.output_text.delta``              ``TextDelta``
``response.refusal.delta``                  ``TextDelta``; the finish is ``content_filter``
``response.reasoning_summary_text.delta``   ``ReasoningDelta`` (a blank line between two
                                            summary parts, as ChatGPT shows them)
``response.reasoning_text.delta``           ``ReasoningDelta`` (raw reasoning, open models)
``response.output_item.added``              ``ToolCallDelta`` (``call_id``, name) for a
(``function_call``)                         ``function_call`` item
``response.function_call_arguments.delta``  ``ToolCallDelta`` arguments
``response.function_call_arguments.done``   its ``arguments``, only if no delta came
``response.completed``                      ``Usage``, ``Finish("stop" | "tool_calls")``
``response.incomplete``                     ``Usage``, ``Finish("length")`` for
                                            ``max_output_tokens``, ``content_filter`` for
                                            ``content_filter``, else ``stop``
``response.failed``, ``error``              ``UpstreamError``: ``rate_limit_exceeded`` →
                                            ``upstream_rate_limited``, ``server_error`` and
                                            unknown codes → ``upstream_error`` (both
                                            retryable), the request's own faults
                                            (``invalid_prompt``…) → ``upstream_rejected``
everything else                             ignored (``created``, ``in_progress``, ``*.done``,
                                            built-in tool progress)
==========================================  ============================================

Usage: ``input_tokens`` → prompt, ``output_tokens`` (reasoning included) → completion. The
stream's end marker is the terminal event (``completed``/``incomplete``/``failed``); errors
before the stream are OpenAI's JSON error bodies (the generic mapping of ``http``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ..errors import RequestError, UpstreamError
from ..events import Finish, FinishReason, ProviderEvent, ReasoningDelta, TextDelta, Usage
from ..request import ChatRequest, ImagePart, Message, ResponseFormat
from ..sse_decoder import ServerSentEvent
from .http import SSEUpstream, incomplete_unless, json_object, open_event_stream
from .openai import mid_stream_error, openai_capabilities
from .tool_calls import ToolCallAssembler

__all__ = ["OpenAIResponses", "ResponsesStreamParser", "responses_input"]


def responses_input(messages: Iterable[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """``(instructions, input)`` for these messages."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
        elif message.role == "tool":
            call_id = message.tool_call_id or ""
            items.append(
                {"type": "function_call_output", "call_id": call_id, "output": message.content}
            )
        else:
            if message.parts:
                items.append({"role": message.role, "content": _input_parts(message)})
            elif message.content or not message.tool_calls:
                items.append({"role": message.role, "content": message.content})
            for call in message.tool_calls:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                    }
                )
    return ("\n\n".join(system) if system else None), items


def _input_parts(message: Message) -> list[dict[str, Any]]:
    return [
        {"type": "input_image", "image_url": p.url, "detail": p.detail or "auto"}
        if isinstance(p, ImagePart)
        else {"type": "input_text", "text": p.text}
        for p in message.parts
    ]


def text_format(fmt: ResponseFormat) -> dict[str, Any]:
    """``text.format`` for a response format."""
    if fmt.type == "json_object":
        return {"type": "json_object"}
    out = {"type": "json_schema", "name": fmt.name or "response", "schema": dict(fmt.schema or {})}
    return out if fmt.strict is None else {**out, "strict": fmt.strict}


def _tool_choice(choice: str | Mapping[str, Any]) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return str(choice)
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, Mapping) and fn.get("name"):
            return {"type": "function", "name": str(fn["name"])}
        if choice.get("type") == "function" and choice.get("name"):
            return dict(choice)  # already the Responses shape
    raise RequestError(
        "tool_choice cannot be expressed for this provider", code="invalid_parameter"
    )


#: ``ResponseError.code`` values (openai-python ``types/responses/response_error.py``) that say
#: the request itself cannot be answered.
_REJECTED = frozenset(
    (
        "invalid_prompt",
        "bio_policy",
        "misalignment_policy_violation",
        "data_residency_mismatch",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    )
)

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def _usage(obj: Any) -> Usage | None:
    if not isinstance(obj, Mapping):
        return None
    prompt, completion = obj.get("input_tokens"), obj.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = obj.get("total_tokens")
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


def response_error(error: Any, fallback: str = "the upstream failed the response") -> UpstreamError:
    """A Responses ``error`` object (``{"code", "message"}``) as the client-facing error:
    ``rate_limit_exceeded`` → ``upstream_rate_limited``, ``server_error`` and codes we do not
    know → ``upstream_error`` (both retryable), any other known code (``invalid_prompt``,
    ``bio_policy``, image errors…) → ``upstream_rejected``: asking again gets the same answer."""
    code = message = None
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
    text = f"upstream error: {message or fallback}" + (f" ({code})" if code else "")
    if code == "rate_limit_exceeded":
        return UpstreamError(text, code="upstream_rate_limited")
    if code in _REJECTED:
        return UpstreamError(text, code="upstream_rejected")
    return UpstreamError(text, code="upstream_error")


class ResponsesStreamParser:
    """Typed Responses events → provider events. One instance per stream."""

    def __init__(self) -> None:
        self.finished = False
        self._tools = ToolCallAssembler()
        self._args_seen: set[int] = set()  # output_index of calls whose arguments came
        self._summary: tuple[str, int] | None = None  # (item_id, summary_index) last seen
        self._refused = False

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        if event.data == "[DONE]":
            self.finished = True
            return ()
        data = json_object(event)
        kind = data.get("type") or event.event
        delta = data.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str) and delta:
            return (TextDelta(delta),)
        if kind == "response.refusal.delta" and isinstance(delta, str) and delta:
            self._refused = True
            return (TextDelta(delta),)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._reasoning(data, delta)
        if kind == "response.output_item.added":
            item = data.get("item")
            if isinstance(item, Mapping) and item.get("type") == "function_call":
                return self._tools.feed(
                    index=data.get("output_index"), id=item.get("call_id"), name=item.get("name")
                )
            return ()
        if kind == "response.function_call_arguments.delta":
            return self._arguments(data, delta)
        if kind == "response.function_call_arguments.done":
            if data.get("output_index") in self._args_seen:
                return ()  # the deltas already carried them
            return self._arguments(data, data.get("arguments"))
        if kind in ("response.completed", "response.incomplete"):
            return self._end(kind, data.get("response"))
        if kind == "response.failed":
            self.finished = True
            response = data.get("response")
            raise response_error(response.get("error") if isinstance(response, Mapping) else None)
        if kind == "error":
            if isinstance(data.get("error"), Mapping):
                raise mid_stream_error(data)
            raise response_error(data, "the upstream reported an error")
        return ()

    def _reasoning(self, data: Mapping[str, Any], delta: Any) -> Iterable[ProviderEvent]:
        if not isinstance(delta, str) or not delta:
            return ()
        part = (str(data.get("item_id")), int(data.get("summary_index") or 0))
        out: list[ProviderEvent] = []
        if self._summary is not None and self._summary != part:
            out.append(ReasoningDelta("\n\n"))  # a new summary part is a new paragraph
        self._summary = part
        out.append(ReasoningDelta(delta))
        return out

    def _arguments(self, data: Mapping[str, Any], text: Any) -> Iterable[ProviderEvent]:
        index = data.get("output_index")
        if not isinstance(text, str):
            raise UpstreamError(
                "malformed tool call fragment: arguments is not a string",
                code="upstream_bad_response",
            )
        if not text:
            return ()
        if isinstance(index, int):
            self._args_seen.add(index)
        return self._tools.feed(index=index, arguments=text)

    def _end(self, kind: str, response: Any) -> Iterable[ProviderEvent]:
        self.finished = True
        response = response if isinstance(response, Mapping) else {}
        finish: FinishReason = "tool_calls" if self._tools.count else "stop"
        if kind == "response.incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, Mapping) else None
            finish = _INCOMPLETE.get(str(reason), finish)
        if self._refused:
            finish = "content_filter"
        usage = _usage(response.get("usage"))
        # A call still waiting for its name is released nameless, never dropped.
        out: list[ProviderEvent] = [*self._tools.flush()]
        return [*out, Finish(finish)] if usage is None else [*out, usage, Finish(finish)]

    def end_of_body(self) -> Iterable[ProviderEvent]:
        return incomplete_unless(False)  # only a terminal event ends a response


class OpenAIResponses:
    """OpenAI's Responses API.

    Example::

        provider = OpenAIResponses(api_key=os.environ["OPENAI_API_KEY"], default_model="gpt-5-mini")

    ``reasoning_summary`` (``"auto"``, ``"concise"``, ``"detailed"``) asks reasoning models for
    a summary of their thinking, which streams as reasoning; set ``None`` for models that refuse
    the ``reasoning`` parameter (``gpt-4o``, ``gpt-4.1``). ``store`` is sent as is (default
    ``False``: the mount is stateless and never refers to a stored response).
    """

    name = "openai-responses"

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str = "https://api.openai.com/v1",
        default_model: str | None = "gpt-5-mini",
        client: httpx.AsyncClient | None = None,
        reasoning_summary: str | None = "auto",
        store: bool = False,
        headers: Mapping[str, str] | None = None,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.default_model = default_model
        self.client = client
        self.reasoning_summary = reasoning_summary
        self.store = store
        self._extra_headers = dict(headers or {})
        self.max_line_bytes = max_line_bytes

    def __repr__(self) -> str:
        key = "***" if self._api_key else None
        return f"OpenAIResponses(base_url={self.base_url!r}, api_key={key})"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def build_headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream", **self._extra_headers}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        if request.stop:
            raise RequestError(
                "stop sequences are not supported by the Responses API", code="invalid_parameter"
            )
        instructions, items = responses_input(request.messages)
        body: dict[str, Any] = {"model": request.model, "input": items, "stream": True}
        body["store"] = self.store
        if instructions is not None:
            body["instructions"] = instructions
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": dict(t.parameters)
                    if t.parameters is not None
                    else {"type": "object", "properties": {}},
                    "strict": False,
                }
                for t in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if self.reasoning_summary:
            body["reasoning"] = {"summary": self.reasoning_summary}
        if request.reasoning is not None and request.reasoning.effort:
            body["reasoning"] = {**body.get("reasoning", {}), "effort": request.reasoning.effort}
        if request.response_format is not None:
            body["text"] = {"format": text_format(request.response_format)}
        return body

    capabilities = openai_capabilities  # images and formats as is: the server decides

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> SSEUpstream:
        response = await open_event_stream(
            http,
            f"{self.base_url}/responses",
            headers=self.build_headers(),
            body=self.build_body(request),
            on_json_body=_json_instead_of_stream,
            secrets=self.secrets(),
        )
        return SSEUpstream(response, ResponsesStreamParser(), max_line_bytes=self.max_line_bytes)


def _json_instead_of_stream(payload: Any) -> UpstreamError:
    if isinstance(payload, Mapping) and payload.get("error"):
        return mid_stream_error(payload)
    return UpstreamError(
        "the upstream answered with a complete JSON body instead of an event stream",
        code="upstream_bad_response",
    )
