"""Images, structured output and thinking for Anthropic's Messages API (used by
:mod:`.anthropic`; kept apart so the translation of plain chat stays small).

- **Images** become ``image`` blocks: a ``data:`` URI a ``base64`` source (Anthropic takes
  ``image/jpeg``, ``image/png``, ``image/gif`` and ``image/webp``; any other type is a 400), an
  https URL a ``url`` source. ``detail`` has no Anthropic equivalent and is dropped.
- **Structured output**, ``json_schema``: Anthropic's structured outputs,
  ``output_config: {"format": {"type": "json_schema", "schema": ...}}``, streamed as plain text
  (the default, ``structured_output="native"``; Claude 4.5-era models). With
  ``structured_output="tool"``, and always for ``json_object`` (which structured outputs cannot
  express), a forced tool: one tool whose ``input_schema`` is the schema and
  ``tool_choice: {"type": "tool"}``; :class:`AnswerToolParser` turns that tool's streamed input
  back into answer text, so the client sees JSON text as from any other upstream. A forced
  tool cannot be combined with the client's own tools or with extended thinking (Anthropic
  refuses both): those requests are a 400 before the upstream is called.
- **Thinking**: ``Reasoning.budget_tokens`` is the thinking budget; an OpenAI effort maps to a
  budget (``low`` 1024, ``medium`` 4096, ``high`` 16384, ``xhigh``/``max`` 32768; ``none`` and
  ``minimal`` switch thinking off, even the provider's own ``thinking_budget``). ``max_tokens``
  must exceed a budget the request asked for (Anthropic's rule): a request's own ``max_tokens``
  that does not is a 400; without one, the provider's default, raised to budget + default
  when it is not larger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import RequestError
from ..events import Finish, ProviderEvent, TextDelta, ToolCallDelta
from ..request import ChatRequest, ContentPart, ImagePart, Message, ResponseFormat, TextPart
from ..sse_decoder import ServerSentEvent
from .capabilities import Capabilities
from .http import EventParser

__all__ = [
    "ANTHROPIC_CAPABILITIES",
    "AnswerToolParser",
    "add_structured_output",
    "add_thinking",
    "answer_tool_name",
    "capabilities",
    "content_blocks",
    "image_block",
    "parser_for",
    "uses_answer_tool",
]

ANTHROPIC_CAPABILITIES = Capabilities(
    image_urls=True, image_data=True, response_formats=frozenset({"json_object", "json_schema"})
)

_MEDIA_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))

_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768, "max": 32768}

#: Tool names Anthropic accepts.
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def image_block(image: ImagePart) -> dict[str, Any]:
    """One image as an Anthropic ``image`` content block."""
    if not image.url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    if image.media_type not in _MEDIA_TYPES:
        raise RequestError(
            f"the upstream 'anthropic' does not accept {image.media_type} images "
            f"(only {', '.join(sorted(_MEDIA_TYPES))})",
            code="unsupported_content",
        )
    data = image.url.partition(",")[2]
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": image.media_type, "data": data},
    }


def capabilities(provider: object, model: str) -> Capabilities:
    """What every Claude model takes (``Anthropic.capabilities``)."""
    return ANTHROPIC_CAPABILITIES


def content_blocks(message: Message) -> list[dict[str, Any]]:
    """A message's text and images as Anthropic content blocks (it refuses empty text)."""
    parts: Iterable[ContentPart] = message.parts or (TextPart(message.content),)
    return [
        image_block(p) if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
        for p in parts
        if isinstance(p, ImagePart) or p.text
    ]


def parser_for(inner: EventParser, request: ChatRequest, mode: str) -> EventParser:
    """The stream parser: wrapped when the answer comes as a forced tool's input."""
    return AnswerToolParser(inner) if uses_answer_tool(request, mode) else inner


def answer_tool_name(fmt: ResponseFormat) -> str:
    """The forced tool's name: the format's own when Anthropic takes it."""
    if fmt.name and _TOOL_NAME.fullmatch(fmt.name):
        return fmt.name
    return "json_answer"


def uses_answer_tool(request: ChatRequest, mode: str) -> bool:
    fmt = request.response_format
    return fmt is not None and (mode == "tool" or fmt.type == "json_object")


def add_structured_output(body: dict[str, Any], request: ChatRequest, mode: str) -> None:
    """Ask for ``request.response_format`` in Anthropic's form (see the module docstring)."""
    fmt = request.response_format
    if fmt is None:
        return
    if not uses_answer_tool(request, mode):
        body["output_config"] = {
            **body.get("output_config", {}),
            "format": {"type": "json_schema", "schema": dict(fmt.schema or {})},
        }
        return
    if request.tools:
        raise RequestError(
            "the upstream 'anthropic' cannot combine tools with this response_format "
            "(it is sent as a forced tool)",
            code="unsupported_parameter",
        )
    if "thinking" in body:
        raise RequestError(
            "the upstream 'anthropic' cannot combine thinking with this response_format "
            "(it is sent as a forced tool)",
            code="unsupported_parameter",
        )
    name = answer_tool_name(fmt)
    schema = dict(fmt.schema or {}) if fmt.type == "json_schema" else {"type": "object"}
    body["tools"] = [
        {"name": name, "description": "Give the answer as this JSON.", "input_schema": schema}
    ]
    body["tool_choice"] = {"type": "tool", "name": name}


def add_thinking(
    body: dict[str, Any], request: ChatRequest, default_budget: int | None, max_tokens: int
) -> None:
    """Switch extended thinking on (or off) as the request and the provider say."""
    reasoning = request.reasoning
    if reasoning is None or (reasoning.budget_tokens is None and reasoning.effort is None):
        # The host's own budget, sent as configured (as before requests could ask).
        if default_budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": default_budget}
        return
    budget = reasoning.budget_tokens
    if budget is None:
        budget = _BUDGETS.get(reasoning.effort or "")  # none / minimal: off
    if budget is None:
        return
    if request.max_tokens is not None and request.max_tokens <= budget:
        raise RequestError(
            f"max_tokens must be larger than the thinking budget ({budget}) for 'anthropic'",
            code="invalid_parameter",
        )
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if request.max_tokens is None and body["max_tokens"] <= budget:
        body["max_tokens"] = budget + max_tokens


class AnswerToolParser:
    """Wraps the Messages parser when the answer comes as a forced tool's input: the tool's
    argument fragments are the answer text, and its ``tool_use`` stop is a normal stop."""

    def __init__(self, inner: EventParser) -> None:
        self._inner = inner
        self.finished = False

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        events = self._map(self._inner.feed(event))
        self.finished = self._inner.finished
        return events

    def end_of_body(self) -> Iterable[ProviderEvent]:
        return self._map(self._inner.end_of_body())

    @staticmethod
    def _map(events: Iterable[ProviderEvent]) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        for event in events:
            if isinstance(event, ToolCallDelta):
                if event.arguments:
                    out.append(TextDelta(event.arguments))
            elif isinstance(event, TextDelta):
                continue  # a preamble before the tool call is not part of the JSON
            elif isinstance(event, Finish) and event.reason == "tool_calls":
                out.append(Finish("stop"))
            else:
                out.append(event)
        return out
