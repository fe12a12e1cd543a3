"""The validated chat request: what a client may ask for, in one typed shape.

Client protocols (native JSON body, ``GET /chat`` query, OpenAI body, AI SDK body) each parse
into :class:`ChatRequest`; providers only ever see this. Parsing is strict: an unknown field,
a wrong type or an out-of-range value is a :class:`~llm_sse_mount.errors.RequestError` with a
stable code, never a 500.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import RequestError

ROLES = frozenset(("system", "user", "assistant", "tool"))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant made earlier in the conversation (OpenAI shape)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class TextPart:
    """A run of text inside a message made of parts."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message: an ``https`` URL or a ``data:`` URI. The mount never fetches a
    URL itself; it hands it to the upstream in the upstream's own form."""

    url: str
    #: From the ``data:`` URI (``image/png``, ...), when known.
    media_type: str | None = None
    #: OpenAI's ``"auto"`` | ``"low"`` | ``"high"``.
    detail: str | None = None


ContentPart = TextPart | ImagePart


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
class ResponseFormat:
    """Structured output: any JSON object, or one matching ``schema`` (OpenAI's
    ``response_format`` / Responses' ``text.format``)."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    """How hard the model should think, in whichever form the upstream takes."""

    #: ``"none"`` | ``"minimal"`` | ``"low"`` | ``"medium"`` | ``"high"`` | ``"xhigh"`` | ``"max"``.
    effort: str | None = None
    #: Anthropic's thinking budget, in tokens.
    budget_tokens: int | None = None


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
        return sum(len(m.content) for m in self.messages)

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(image for m in self.messages for image in m.images)


# --- parsing helpers -------------------------------------------------------------------------


_FIELD = re.compile(r"[a-z_]+(?=$|[.\[])")


def invalid(code: str, message: str, at: str | None = None) -> RequestError:
    """A request error about the field at path ``at`` (``messages[2].content``): its top-level
    name is the error's ``param``."""
    match = _FIELD.match(at) if at else None
    return RequestError(message, code=code, param=match.group(0) if match else None)


def _expect_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid("invalid_request", f"{where} must be a JSON object", where)
    return value


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        at = unknown[0] if where == "the request body" else where
        raise invalid("unknown_field", f"unknown field {unknown[0]!r} in {where}", at)


def parse_content(value: Any, where: str) -> str:
    """Content as plain text (images refused): a string, ``null``, or a list of text parts."""
    text, parts = parse_parts(value, where)
    for i, part in enumerate(parts):
        if isinstance(part, ImagePart):
            raise invalid(
                "unsupported_content", f"{where}[{i}]: images are not supported here", where
            )
    return text


def parse_parts(value: Any, where: str) -> tuple[str, tuple[ContentPart, ...]]:
    """OpenAI content → ``(joined text, parts)``: a string, ``null`` (assistant turns that only
    call tools), or a list of ``text`` and ``image_url`` parts. ``parts`` is ``()`` unless the
    list holds an image, so text-only messages look exactly as before to every provider."""
    if value is None:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if isinstance(value, list):
        parts: list[ContentPart] = []
        for i, raw in enumerate(value):
            part = _expect_mapping(raw, f"{where}[{i}]")
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(TextPart(part["text"]))
            elif kind == "image_url":
                parts.append(parse_image_url(part.get("image_url"), f"{where}[{i}].image_url"))
            else:
                raise invalid(
                    "unsupported_content",
                    f"{where}[{i}]: only text and image_url parts are supported "
                    f"(got type {kind!r})",
                    where,
                )
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        has_image = any(isinstance(p, ImagePart) for p in parts)
        return text, (tuple(parts) if has_image else ())
    raise invalid("invalid_request", f"{where} must be a string or a list of content parts", where)


_DETAILS = frozenset(("auto", "low", "high"))


def parse_image_url(value: Any, where: str) -> ImagePart:
    """OpenAI's ``image_url`` object ``{"url", "detail"?}`` (a bare string is accepted too,
    as several clients send it)."""
    if isinstance(value, str):
        value = {"url": value}
    obj = _expect_mapping(value, where)
    _check_keys(obj, frozenset(("url", "detail")), where)
    detail = obj.get("detail")
    if detail is not None and (not isinstance(detail, str) or detail not in _DETAILS):
        raise invalid(
            "invalid_parameter", f"{where}.detail must be one of {sorted(_DETAILS)}", where
        )
    return image_part(obj.get("url"), where, detail=detail)


def image_part(url: Any, where: str, *, detail: str | None = None) -> ImagePart:
    """An image from its URL: ``https://...`` or ``data:image/<type>;base64,<data>``."""
    if not isinstance(url, str) or not url:
        raise invalid("invalid_request", f"{where}.url must be a non-empty string", where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/") or not data:
            raise invalid(
                "invalid_image",
                f"{where}.url: a data: URI must look like data:image/<type>;base64,<data>",
                where,
            )
        return ImagePart(url, media_type=media_type.lower(), detail=detail)
    if url.startswith("https://") and len(url) > len("https://"):
        return ImagePart(url, detail=detail)
    # http:// (and file:, ftp:, ...) is refused: the upstream would fetch it in the clear,
    # or not at all; the mount itself never fetches anything.
    raise invalid("invalid_image", f"{where}.url must be an https URL or a data: URI", where)


def data_uri_bytes(image: ImagePart) -> int:
    """Decoded size of a ``data:`` URI image (0 for a URL), without decoding it."""
    if not image.url.startswith("data:"):
        return 0
    data = image.url.partition(",")[2]
    return len(data) * 3 // 4 - data[-2:].count("=")


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


def parse_response_format(value: Any, key: str = "response_format") -> ResponseFormat | None:
    """OpenAI chat's ``response_format``: ``{"type": "text"}`` (``None``: nothing asked),
    ``{"type": "json_object"}``, or ``{"type": "json_schema", "json_schema": {"name",
    "schema", "strict", "description"}}``."""
    if value is None:
        return None
    obj = _expect_mapping(value, key)
    kind = obj.get("type")
    if kind == "text":
        _check_keys(obj, frozenset(("type",)), key)
        return None
    if kind == "json_object":
        _check_keys(obj, frozenset(("type",)), key)
        return ResponseFormat("json_object")
    if kind == "json_schema":
        _check_keys(obj, frozenset(("type", "json_schema")), key)
        spec = _expect_mapping(obj.get("json_schema"), f"{key}.json_schema")
        return json_schema_format(spec, f"{key}.json_schema")
    raise invalid(
        "invalid_parameter", f"{key}.type must be 'text', 'json_object' or 'json_schema'", key
    )


def json_schema_format(spec: Mapping[str, Any], where: str) -> ResponseFormat:
    """The ``{"name", "schema", "strict", "description"}`` of a JSON-schema format (OpenAI
    chat nests it under ``json_schema``; Responses' ``text.format`` has it flat)."""
    _check_keys(spec, frozenset(("name", "schema", "strict", "description", "type")), where)
    name, schema, strict = spec.get("name"), spec.get("schema"), spec.get("strict")
    if not isinstance(name, str) or not name:
        raise invalid("invalid_parameter", f"{where}.name must be a non-empty string", where)
    if schema is not None and not isinstance(schema, Mapping):
        raise invalid("invalid_parameter", f"{where}.schema must be an object", where)
    if strict is not None and not isinstance(strict, bool):
        raise invalid("invalid_parameter", f"{where}.strict must be a boolean", where)
    return ResponseFormat("json_schema", schema=schema or {}, name=name, strict=strict)


#: OpenAI's ``ReasoningEffort`` values (openai-python ``types/shared/reasoning_effort.py``).
_EFFORTS = frozenset(("none", "minimal", "low", "medium", "high", "xhigh", "max"))


def parse_reasoning_effort(value: Any, key: str = "reasoning_effort") -> Reasoning | None:
    """OpenAI's ``reasoning_effort`` (chat) or ``reasoning.effort`` (Responses)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in _EFFORTS:
        raise invalid("invalid_parameter", f"{key!r} must be one of {sorted(_EFFORTS)}", key)
    return Reasoning(effort=value)


def parse_thinking(value: Any, key: str = "thinking") -> Reasoning | None:
    """Anthropic's ``thinking``: ``{"type": "enabled", "budget_tokens": n}`` or
    ``{"type": "disabled"}`` (``None``)."""
    if value is None:
        return None
    obj = _expect_mapping(value, key)
    kind = obj.get("type")
    if kind == "disabled":
        _check_keys(obj, frozenset(("type",)), key)
        return None
    if kind != "enabled":
        raise invalid("invalid_parameter", f"{key}.type must be 'enabled' or 'disabled'", key)
    _check_keys(obj, frozenset(("type", "budget_tokens")), key)
    budget = parse_number(
        obj.get("budget_tokens"), f"{key}.budget_tokens", low=1024, high=10_000_000, integer=True
    )
    if budget is None:
        raise invalid("invalid_parameter", f"{key}.budget_tokens is required", key)
    return Reasoning(budget_tokens=int(budget))


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


def parse_number(
    value: Any, key: str, *, low: float, high: float, integer: bool = False
) -> float | int | None:
    if value is None:
        return None
    # bool is an int in Python; a client sending true for temperature is a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid("invalid_parameter", f"{key!r} must be a number", key)
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise invalid("invalid_parameter", f"{key!r} must be an integer", key)
    if not math.isfinite(value) or not low <= value <= high:
        raise invalid(
            "invalid_parameter", f"{key!r} must be between {_num(low)} and {_num(high)}", key
        )
    return int(value) if integer else float(value)


def _num(value: float) -> str:
    # 10_000_000, not 1e+07: people read these limits.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
