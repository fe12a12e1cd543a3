"""The validated chat request: what a client may ask for, in one typed shape.

Client protocols (native JSON body, ``GET /chat`` query, OpenAI body, AI SDK body) each parse
into :class:`ChatRequest`; providers only ever see this. Parsing is strict: an unknown field,
a wrong type or an out-of-range value is a :class:`~llm_sse_mount.errors.RequestError` with a
stable code, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .request_fields import check_keys as _check_keys
from .request_fields import expect_mapping as _expect_mapping
from .request_fields import invalid as invalid
from .request_fields import parse_number as parse_number
from .request_parts import ContentPart as ContentPart
from .request_parts import ImagePart as ImagePart
from .request_parts import Reasoning as Reasoning
from .request_parts import ResponseFormat as ResponseFormat
from .request_parts import TextPart as TextPart
from .request_parts import data_uri_bytes as data_uri_bytes
from .request_parts import image_part as image_part
from .request_parts import json_schema_format as json_schema_format
from .request_parts import parse_image_url as parse_image_url
from .request_parts import parse_parts as parse_parts
from .request_parts import parse_reasoning_effort as parse_reasoning_effort
from .request_parts import parse_response_format as parse_response_format
from .request_parts import parse_thinking as parse_thinking

ROLES = frozenset(("system", "user", "assistant", "tool"))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant made earlier in the conversation (OpenAI shape)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    #: ``()`` for plain text; otherwise every part in order (``content`` stays the joined text).
    parts: tuple[ContentPart, ...] = ()

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call (OpenAI ``tools`` entry of type ``function``)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One conversation to send upstream. ``model`` is always resolved (never empty)."""

    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None

    @property
    def total_chars(self) -> int:
        """Characters the upstream reads as prompt: message text, earlier tool calls, and the
        tool definitions (names, descriptions, parameter schemas) and tool choice, which are
        prompt too (``max_chars`` and the token estimate are both based on this)."""
        total = 0
        for m in self.messages:
            total += len(m.content)
            for call in m.tool_calls:
                total += len(call.name) + len(call.arguments)
        for tool in self.tools:
            total += len(tool.name) + len(tool.description or "")
            if tool.parameters is not None:
                total += _json_chars(tool.parameters)
        if isinstance(self.tool_choice, Mapping):
            total += _json_chars(self.tool_choice)
        if self.response_format is not None and self.response_format.schema:
            total += _json_chars(self.response_format.schema)  # the schema is prompt too
        return total

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(image for m in self.messages for image in m.images)


def _json_chars(value: Any) -> int:
    # Compact JSON, as a provider sends it; depth is bounded at parse time (edge.too_deep).
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


# --- parsing helpers -------------------------------------------------------------------------


def parse_content(value: Any, where: str) -> str:
    """Content as plain text (images refused): a string, ``null``, or a list of text parts."""
    text, parts = parse_parts(value, where)
    for i, part in enumerate(parts):
        if isinstance(part, ImagePart):
            raise invalid(
                "unsupported_content", f"{where}[{i}]: images are not supported here", where
            )
    return text


def check_images(chat: ChatRequest, *, max_images: int, max_image_bytes: int) -> None:
    """The mount's bounds on images: how many per request, how large each ``data:`` URI."""
    images = chat.images
    if len(images) > max_images:
        raise invalid(
            "too_many_images", f"too many images (at most {max_images} per request)", "messages"
        )
    for image in images:
        if data_uri_bytes(image) > max_image_bytes:
            raise invalid(
                "image_too_large", f"an image is larger than {max_image_bytes} bytes", "messages"
            )


def _parse_tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("invalid_request", f"{where} must be a list", where)
    calls = []
    for i, raw in enumerate(value):
        item = _expect_mapping(raw, f"{where}[{i}]")
        fn = _expect_mapping(item.get("function"), f"{where}[{i}].function")
        call_id, name, args = item.get("id"), fn.get("name"), fn.get("arguments", "")
        if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(args, str):
            raise invalid(
                "invalid_request", f"{where}[{i}] needs string id, name and arguments", where
            )
        calls.append(ToolCall(call_id, name, args))
    return tuple(calls)


_MESSAGE_KEYS = frozenset(("role", "content", "name", "tool_call_id", "tool_calls"))


def parse_messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise invalid("invalid_request", "'messages' must be a non-empty list", "messages")
    out = []
    for i, raw in enumerate(value):
        where = f"messages[{i}]"
        msg = _expect_mapping(raw, where)
        _check_keys(msg, _MESSAGE_KEYS, where)
        role = msg.get("role")
        # isinstance first: a list or object is unhashable, and `in` a frozenset would raise
        # TypeError (a 500; found by tests/test_fuzz_requests.py).
        if not isinstance(role, str) or role not in ROLES:
            raise invalid("invalid_role", f"{where}.role must be one of {sorted(ROLES)}", where)
        name = msg.get("name")
        tool_call_id = msg.get("tool_call_id")
        if name is not None and not isinstance(name, str):
            raise invalid("invalid_request", f"{where}.name must be a string", where)
        if tool_call_id is not None and not isinstance(tool_call_id, str):
            raise invalid("invalid_request", f"{where}.tool_call_id must be a string", where)
        if role == "user" and msg.get("content") is None:
            # An upstream refuses it; say so before opening one.
            raise invalid(
                "invalid_request", f"{where}.content is required for a user message", where
            )
        text, parts = parse_parts(msg.get("content"), f"{where}.content")
        if parts and role != "user":
            # Every vendor takes images from the user only; saying so beats an upstream 400.
            raise invalid(
                "unsupported_content", f"{where}: only user messages may hold images", where
            )
        out.append(
            Message(
                role=role,
                content=text,
                name=name,
                tool_call_id=tool_call_id,
                tool_calls=_parse_tool_calls(msg.get("tool_calls"), f"{where}.tool_calls"),
                parts=parts,
            )
        )
    if all(m.role == "system" for m in out):
        raise invalid(
            "invalid_request", "'messages' needs at least one message besides 'system'", "messages"
        )
    return tuple(out)


def parse_stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 4:
        return tuple(value)
    raise invalid(
        "invalid_parameter", "'stop' must be a string or a list of up to 4 strings", "stop"
    )


def parse_tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("invalid_parameter", "'tools' must be a list", "tools")
    tools = []
    for i, raw in enumerate(value):
        item = _expect_mapping(raw, f"tools[{i}]")
        fn = _expect_mapping(item.get("function"), f"tools[{i}].function")
        name = fn.get("name")
        if item.get("type", "function") != "function" or not isinstance(name, str) or not name:
            raise invalid(
                "invalid_parameter", f"tools[{i}] must be a function with a name", "tools"
            )
        params = fn.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise invalid(
                "invalid_parameter", f"tools[{i}].function.parameters must be an object", "tools"
            )
        desc = fn.get("description")
        tools.append(Tool(name, desc if isinstance(desc, str) else None, params))
    return tuple(tools)


def parse_tool_choice(value: Any) -> str | Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str) and value in ("auto", "none", "required"):
        return value
    if isinstance(value, Mapping):
        return value
    raise invalid(
        "invalid_parameter",
        "'tool_choice' must be 'auto', 'none', 'required' or an object",
        "tool_choice",
    )


#: The fields every client protocol shares (each maps its own names onto these).
COMMON_FIELDS = frozenset(
    (
        "messages",
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning_effort",
    )
)
NATIVE_KEYS = COMMON_FIELDS


def parse_native_body(body: Any, *, allowed: frozenset[str] = NATIVE_KEYS) -> dict[str, Any]:
    """Parse the JSON body of ``POST /chat`` into keyword arguments for :class:`ChatRequest`
    (``model`` may be ``None``: the mount resolves it against its default and allow-list)."""
    obj = _expect_mapping(body, "the request body")
    _check_keys(obj, allowed, "the request body")
    return parse_common(obj)


def parse_common(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every client protocol shares, validated."""
    return {"messages": parse_messages(obj.get("messages")), **parse_params(obj)}


def parse_params(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Every shared field but ``messages`` (a protocol with its own message shape parses those
    itself), validated."""
    model = obj.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise invalid("invalid_parameter", "'model' must be a non-empty string", "model")
    return {
        "model": model,
        "temperature": parse_number(obj.get("temperature"), "temperature", low=0, high=2),
        "top_p": parse_number(obj.get("top_p"), "top_p", low=0, high=1),
        "max_tokens": parse_number(
            obj.get("max_tokens"), "max_tokens", low=1, high=10_000_000, integer=True
        ),
        "stop": parse_stop(obj.get("stop")),
        "tools": parse_tools(obj.get("tools")),
        "tool_choice": parse_tool_choice(obj.get("tool_choice")),
        "response_format": parse_response_format(obj.get("response_format")),
        "reasoning": parse_reasoning_effort(obj.get("reasoning_effort")),
    }
